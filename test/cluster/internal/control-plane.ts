// Brings the local control plane up and down: network namespace + bridge, PKI, etcd, kube-apiserver,
// kube-controller-manager and the process kubelet, each a detached process with its log in the state dir.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import {
  API_PORT,
  API_URL,
  BINARIES,
  BRIDGE,
  BRIDGE_IP,
  DEFAULT_NODE_COUNT,
  NODE_NAME,
  POD_PREFIX_LEN,
  nodeNames,
  SA_ISSUER,
  SERVICE_CIDR,
  binDir,
  clusterNetnses,
  clusterPaths,
  hostMountArgs,
  inNetns,
  ipArgv,
  netnsExists,
  netnsInode,
  netnsPath,
  nsenterArgs,
  pidAlive,
  pidsInNetns,
  readInfo,
  which,
  type ClusterInfo,
  type ClusterPaths,
} from './common.ts';
import { run, runOk } from '../../support/command.ts';
import { REPO_ROOT } from '../../support/repo-root.ts';
import { sleep, waitFor } from '../../support/wait.ts';
import { kubeconfigYaml, makePki, pkiFiles } from './pki.ts';
import { resolvConf } from '../kubelet/services.ts';

export type Logger = (line: string) => void;
const defaultLog: Logger = (l) => process.stderr.write(`[cluster] ${l}\n`);

/** One message per missing requirement; empty when everything is there. */
export function checkRequirements(opts: { needGo: boolean }): string[] {
  const problems: string[] = [];
  if (process.platform !== 'linux')
    problems.push(`Linux is required (network namespaces, veth, mount namespaces); this is ${process.platform}`);
  if (process.getuid?.() !== 0) {
    problems.push(
      'root is required: the cluster uses `ip netns`, veth pairs, a bridge and mount namespaces (user namespaces alone are not enough for named netns); run as root (e.g. sudo -E npm run cluster -- up)',
    );
  }
  const tools: [string, string][] = [
    ['ip', 'iproute2 (apt-get install -y iproute2)'],
    ['nsenter', 'util-linux nsenter'],
    ['unshare', 'util-linux unshare'],
    ['mount', 'util-linux mount'],
    ['openssl', 'openssl (apt-get install -y openssl)'],
    ['socat', 'socat (apt-get install -y socat), it runs the alpine/socat pods'],
    ['runc', 'runc (apt-get install -y runc), buildkitd pods need it'],
  ];
  for (const [cmd, what] of tools) if (!which(cmd)) problems.push(`missing \`${cmd}\`: install ${what}`);
  if (opts.needGo && !which('go'))
    problems.push(
      'missing `go`: the Go toolchain (>= 1.24) builds etcd/kube-apiserver/kube-controller-manager/kubectl/buildkitd once (scripts/build-binaries.sh)',
    );
  return problems;
}

function binariesPresent(dir: string): boolean {
  return BINARIES.every((b) => fs.existsSync(path.join(dir, b)));
}

/** Runs scripts/build-binaries.sh (skips what is built); returns the bin dir. */
export async function ensureBinaries(log: Logger = defaultLog): Promise<string> {
  const dir = binDir();
  const debsMissing = ['socat', 'runc', 'ip', 'openssl'].some((c) => !which(c));
  if (binariesPresent(dir) && !debsMissing) return dir;
  if (!binariesPresent(dir)) log(`building binaries into ${dir} (first time only; takes a long while on 2 cores)`);
  else log('installing missing Debian packages (scripts/build-binaries.sh)');
  const code = await new Promise<number>((resolve, reject) => {
    const c = spawn('bash', [path.join(REPO_ROOT, 'scripts/build-binaries.sh')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    c.on('error', reject);
    c.on('exit', (c2) => resolve(c2 ?? 1));
  });
  if (code !== 0 || !binariesPresent(dir)) throw new Error(`scripts/build-binaries.sh failed (exit ${code})`);
  return dir;
}

/** GET against the API server with the admin client certificate (only from inside the netns). */
export function apiGet(
  p: ClusterPaths,
  urlPath: string,
  base = API_URL,
  timeoutMs = 3000,
): Promise<{ status: number; body: string }> {
  const pki = pkiFiles(p.pkiDir);
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${base}${urlPath}`,
      {
        ca: fs.readFileSync(pki.caCert),
        cert: fs.readFileSync(pki.adminCert),
        key: fs.readFileSync(pki.adminKey),
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (body += d))
          .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The command of a component started inside the netns, detached, logging to <state>/logs/<name>.log. */
const commands: Record<string, { cmd: string; args: string[] }> = {};

function startDaemon(
  p: ClusterPaths,
  name: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): number {
  commands[name] = { cmd, args };
  const mnt = hostMountArgs();
  if (!inNetns(p.netns) || mnt.length) {
    args = [...mnt, ...nsenterArgs(p.netns), cmd, ...args];
    cmd = 'nsenter';
  }
  const logFile = path.join(p.logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `--- ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env, cwd: p.stateDir });
  fs.closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${name}`);
  return child.pid;
}

export interface UpResult {
  info: ClusterInfo;
  alreadyUp: boolean;
}

/** Is the recorded cluster running and serving? Works from inside or outside the netns. */
export async function health(name?: string): Promise<{ healthy: boolean; details: string[]; info?: ClusterInfo }> {
  const p = clusterPaths(name);
  const info = readInfo(p);
  const details: string[] = [];
  if (!info) return { healthy: false, details: ['not up (no cluster.json)'] };
  let ok = true;
  if (!netnsExists(p.netns)) {
    details.push(`netns ${p.netns}: missing`);
    ok = false;
  } else details.push(`netns ${p.netns}: present`);
  for (const [comp, pid] of Object.entries(info.pids)) {
    const alive = pidAlive(pid);
    if (!alive) ok = false;
    details.push(`${comp} (pid ${pid}): ${alive ? 'running' : 'NOT RUNNING'}`);
  }
  if (ok) {
    const kubectl = path.join(info.binDir, 'kubectl');
    const pre = inNetns(p.netns) ? [] : ['nsenter', ...nsenterArgs(p.netns)];
    const cmd = [...pre, kubectl, '--kubeconfig', p.kubeconfig, '--request-timeout=5s'];
    const ready = await run(cmd[0] ?? kubectl, [...cmd.slice(1), 'get', '--raw=/readyz']);
    details.push(`apiserver /readyz: ${ready.code === 0 ? ready.stdout.trim() : `FAILED ${ready.stderr.trim()}`}`);
    if (ready.code !== 0) ok = false;
    else {
      for (const nodeName of info.nodes ?? [NODE_NAME]) {
        const node = await run(cmd[0] ?? kubectl, [
          ...cmd.slice(1),
          'get',
          'node',
          nodeName,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        details.push(`node ${nodeName} Ready: ${node.stdout.trim() || node.stderr.trim()}`);
        if (node.stdout.trim() !== 'True') ok = false;
      }
    }
  }
  return { healthy: ok, details, info };
}

/** Whether a signalled process exits within timeoutMs (the caller SIGKILLs it if not). */
function exitedWithin(pid: number, timeoutMs: number, intervalMs: number): Promise<boolean> {
  return waitFor(`process ${pid} to exit`, () => !pidAlive(pid), timeoutMs, intervalMs).then(
    () => true,
    () => false,
  );
}

/** Serializes up/down of one cluster across processes (parallel test files may all call ensureCluster). */
async function withLock<T>(p: ClusterPaths, log: Logger, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(p.stateDir, { recursive: true });
  const lock = path.join(p.stateDir, '.lock');
  let warned = false;
  // No deadline: an up of a cold cluster takes minutes, and a dead holder's lock is taken over at once.
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      const holder = Number(fs.readFileSync(lock, 'utf8').trim() || '0');
      if (!pidAlive(holder) || holder === process.pid) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (!warned) log(`waiting for process ${holder} (up/down of cluster ${p.name} in progress)`);
      warned = true;
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Brings the cluster up (idempotent). Runs from anywhere; the daemons are started inside the netns. */
export async function up(opts: { name?: string; log?: Logger; nodes?: number } = {}): Promise<UpResult> {
  const log = opts.log ?? defaultLog;
  const p = clusterPaths(opts.name);
  const nodes = opts.nodes ?? (Number(process.env.BKA_CLUSTER_NODES ?? DEFAULT_NODE_COUNT) || DEFAULT_NODE_COUNT);
  nodeNames(nodes);
  return withLock(p, log, () => upLocked(p, log, nodes));
}

async function upLocked(p: ClusterPaths, log: Logger, nodes: number): Promise<UpResult> {
  const t0 = Date.now();
  // Platform, root and Go first; then the build script installs missing Debian packages and builds
  // missing binaries; then everything is checked once more.
  const early = checkRequirements({ needGo: !binariesPresent(binDir()) }).filter(
    (m) => !/^missing `(socat|runc|ip|openssl)`/.test(m),
  );
  if (early.length) throw new Error(`cannot run the local cluster:\n  - ${early.join('\n  - ')}`);
  const bins = await ensureBinaries(log);
  const problems = checkRequirements({ needGo: false });
  if (problems.length) throw new Error(`cannot run the local cluster:\n  - ${problems.join('\n  - ')}`);
  const h = await health(p.name);
  if (h.healthy && h.info && (h.info.nodes?.length ?? 1) === nodes) {
    log(`cluster ${p.name} is already up and healthy (netns ${p.netns}, kubeconfig ${p.kubeconfig})`);
    return { info: h.info, alreadyUp: true };
  }
  if (h.healthy)
    log(`cluster ${p.name} has ${h.info?.nodes?.length ?? 1} node(s), ${nodes} wanted: bringing it up again`);
  if (readInfo(p) || netnsExists(p.netns)) {
    log(`cluster ${p.name} is partly up or unhealthy: tearing it down first`);
    await downLocked(p, log, false);
  }
  log(`creating netns ${p.netns} with bridge ${BRIDGE} ${BRIDGE_IP}/${POD_PREFIX_LEN}`);
  await runOk(...ipArgv(['netns', 'add', p.netns]));
  const ipn = (...a: string[]) => runOk(...ipArgv(['-n', p.netns, ...a]));
  await ipn('link', 'set', 'lo', 'up');
  await ipn('link', 'add', BRIDGE, 'type', 'bridge');
  await ipn('addr', 'add', `${BRIDGE_IP}/${POD_PREFIX_LEN}`, 'dev', BRIDGE);
  await ipn('link', 'set', BRIDGE, 'up');
  // The rest runs inside the netns (health checks need to reach 127.0.0.1/10.244.0.1 there).
  const inner = spawn(
    'nsenter',
    [
      ...nsenterArgs(p.netns),
      process.execPath,
      path.join(import.meta.dirname, '..', 'cli.ts'),
      '__up-inner',
      p.name,
      bins,
      String(t0),
      String(nodes),
    ],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const code = await new Promise<number>((resolve) => inner.on('exit', (c) => resolve(c ?? 1)));
  const info = readInfo(p);
  if (code !== 0 || !info) {
    throw new Error(`cluster ${p.name} failed to come up (exit ${code}); logs in ${p.logDir}`);
  }
  return { info, alreadyUp: false };
}

/** Second half of up(), executed inside the netns by `cli.ts __up-inner`. */
export async function upInner(
  name: string,
  bins: string,
  t0: number,
  nodeCount = 1,
  log: Logger = defaultLog,
): Promise<ClusterInfo> {
  const p = clusterPaths(name);
  const nodes = nodeNames(nodeCount);
  if (!inNetns(p.netns)) throw new Error(`upInner must run inside netns ${p.netns}`);
  fs.rmSync(p.etcdDir, { recursive: true, force: true });
  fs.rmSync(p.podsDir, { recursive: true, force: true });
  fs.rmSync(p.logDir, { recursive: true, force: true });
  for (const d of [p.stateDir, p.logDir, p.podsDir]) fs.mkdirSync(d, { recursive: true });
  fs.mkdirSync(p.etcdDir, { recursive: true, mode: 0o700 });
  log('making certificates (openssl)');
  const pki = await makePki(p.pkiDir);
  fs.writeFileSync(
    p.kubeconfig,
    kubeconfigYaml({
      server: API_URL,
      caCert: pki.caCert,
      user: 'bka-admin',
      clientCert: pki.adminCert,
      clientKey: pki.adminKey,
    }),
    { mode: 0o600 },
  );
  const localKubeconfig = path.join(p.stateDir, 'kubeconfig.local');
  fs.writeFileSync(
    localKubeconfig,
    kubeconfigYaml({
      server: `https://127.0.0.1:${API_PORT}`,
      caCert: pki.caCert,
      user: 'bka-admin',
      clientCert: pki.adminCert,
      clientKey: pki.adminKey,
    }),
    { mode: 0o600 },
  );
  fs.writeFileSync(path.join(p.stateDir, 'resolv.conf'), resolvConf('default'));
  const pids: Record<string, number> = {};
  const bin = (b: string) => path.join(bins, b);

  log('starting etcd');
  pids.etcd = startDaemon(p, 'etcd', bin('etcd'), [
    '--name=bka',
    `--data-dir=${p.etcdDir}`,
    '--listen-client-urls=http://127.0.0.1:2379',
    '--advertise-client-urls=http://127.0.0.1:2379',
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=bka=http://127.0.0.1:2380',
    '--listen-metrics-urls=http://127.0.0.1:2381',
    '--unsafe-no-fsync',
    '--log-level=warn',
    '--quota-backend-bytes=2147483648',
  ]);
  await waitFor(
    'etcd /health',
    async () => {
      if (!pidAlive(pids.etcd)) throw new Error('etcd exited, see etcd.log');
      const r = await fetch('http://127.0.0.1:2379/health');
      return r.ok && ((await r.json()) as { health?: string }).health === 'true';
    },
    30_000,
  );

  log('starting kube-apiserver');
  pids['kube-apiserver'] = startDaemon(p, 'kube-apiserver', bin('kube-apiserver'), [
    '--etcd-servers=http://127.0.0.1:2379',
    '--bind-address=0.0.0.0',
    `--secure-port=${API_PORT}`,
    `--advertise-address=${BRIDGE_IP}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--service-account-issuer=${SA_ISSUER}`,
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`,
    '--authorization-mode=Node,RBAC',
    '--anonymous-auth=false',
    '--allow-privileged=true',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--endpoint-reconciler-type=none',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=1',
    // `kubectl logs` goes through the API server to the process kubelet's log endpoint.
    `--kubelet-client-certificate=${pki.adminCert}`,
    `--kubelet-client-key=${pki.adminKey}`,
    '--kubelet-preferred-address-types=InternalIP',
    `--cert-dir=${path.join(p.stateDir, 'apiserver-certs')}`,
  ]);
  await waitFor(
    'kube-apiserver /readyz',
    async () => {
      if (!pidAlive(pids['kube-apiserver'])) throw new Error('kube-apiserver exited, see kube-apiserver.log');
      return (await apiGet(p, '/readyz')).status === 200;
    },
    90_000,
    300,
  );

  log('starting kube-controller-manager');
  pids['kube-controller-manager'] = startDaemon(p, 'kube-controller-manager', bin('kube-controller-manager'), [
    `--kubeconfig=${localKubeconfig}`,
    '--leader-elect=false',
    '--secure-port=0',
    '--controllers=statefulset-controller,endpointslice-controller,endpoints-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller,job-controller,disruption-controller,persistentvolumeclaim-protection-controller',
    `--service-account-private-key-file=${pki.saKey}`,
    `--root-ca-file=${pki.caCert}`,
    '--use-service-account-credentials=false',
    '--concurrent-statefulset-syncs=5',
    '--v=1',
  ]);

  log('starting the process kubelet');
  pids.kubelet = startDaemon(p, 'kubelet', process.execPath, [
    path.join(import.meta.dirname, '..', 'kubelet', 'main.ts'),
    '--name',
    p.name,
    '--bin-dir',
    bins,
    '--nodes',
    nodes.join(','),
  ]);

  await waitFor(
    `nodes ${nodes.join(', ')} Ready and ServiceAccount default/default`,
    async () => {
      for (const [k, pid] of Object.entries(pids))
        if (!pidAlive(pid)) throw new Error(`${k} exited, see ${path.join(p.logDir, `${k}.log`)}`);
      for (const nodeName of nodes) {
        const node = await apiGet(p, `/api/v1/nodes/${nodeName}`);
        if (node.status !== 200) return false;
        const conds =
          (JSON.parse(node.body) as { status?: { conditions?: { type: string; status: string }[] } }).status
            ?.conditions ?? [];
        if (!conds.some((c) => c.type === 'Ready' && c.status === 'True')) return false;
      }
      return (await apiGet(p, '/api/v1/namespaces/default/serviceaccounts/default')).status === 200;
    },
    90_000,
    300,
  );

  const info: ClusterInfo = {
    name: p.name,
    netns: p.netns,
    binDir: bins,
    apiServerUrl: API_URL,
    kubeconfigPath: p.kubeconfig,
    stateDir: p.stateDir,
    startedAt: new Date().toISOString(),
    upSeconds: (Date.now() - t0) / 1000,
    pids,
    commands,
    nodes,
  };
  fs.writeFileSync(p.infoFile, JSON.stringify(info, null, 2) + '\n');
  log(
    `cluster ${p.name} is up in ${info.upSeconds.toFixed(1)}s: netns ${p.netns}, API ${API_URL}, KUBECONFIG=${p.kubeconfig}`,
  );
  return info;
}

function ancestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.pid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!ppid) break;
      out.add(ppid);
      pid = ppid;
    } catch {
      break;
    }
  }
  return out;
}

function ourNetnses(p: ClusterPaths): string[] {
  return clusterNetnses(p.netns);
}

/** Stops every process of the cluster and deletes every netns it made. Leaves state and logs on disk. */
export async function down(opts: { name?: string; log?: Logger; purge?: boolean } = {}): Promise<void> {
  const log = opts.log ?? defaultLog;
  const p = clusterPaths(opts.name);
  await withLock(p, log, () => downLocked(p, log, opts.purge ?? false));
  if (opts.purge) {
    fs.rmSync(p.stateDir, { recursive: true, force: true });
    log(`removed ${p.stateDir}`);
  }
}

async function downLocked(p: ClusterPaths, log: Logger, _purge: boolean): Promise<void> {
  const info = readInfo(p);
  const order = ['kubelet', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
  const skip = ancestors();
  for (const comp of order) {
    const pid = info?.pids[comp];
    if (!pid || !pidAlive(pid) || skip.has(pid)) continue;
    log(`stopping ${comp} (pid ${pid})`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    if (!(await exitedWithin(pid, comp === 'kubelet' ? 15_000 : 5_000, 100))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  // Sweep: anything still living in one of our network namespaces (pod processes, strays) is killed.
  const nses = ourNetnses(p);
  const inodes = new Set(nses.map((n) => netnsInode(netnsPath(n))).filter((i): i is number => i !== undefined));
  for (let round = 0; round < 20 && inodes.size; round++) {
    const pids = pidsInNetns(inodes).filter((x) => !skip.has(x));
    if (!pids.length) break;
    if (round === 0) log(`killing ${pids.length} leftover process(es) in the cluster's network namespaces`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(200);
  }
  for (const n of nses.sort((a, b) => b.length - a.length)) {
    const r = await run(...ipArgv(['netns', 'del', n]));
    if (r.code !== 0) log(`ip netns del ${n}: ${r.stderr.trim()}`);
  }
  if (nses.length) log(`deleted netns ${nses.join(', ')}`);
  fs.rmSync(p.infoFile, { force: true });
  log(`cluster ${p.name} is down`);
}

export const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubelet'] as const;
export type Component = (typeof COMPONENTS)[number];

function requireInfo(p: ClusterPaths): ClusterInfo {
  const info = readInfo(p);
  if (!info) throw new Error(`cluster ${p.name} is not up`);
  return info;
}

/**
 * Sends a signal to one control-plane component (SIGSTOP/SIGCONT pause and resume it). With SIGTERM or
 * SIGKILL, waits until it is gone (SIGKILL after timeoutMs). For failure-injection tests.
 */
export async function signalComponent(
  name: string | undefined,
  comp: Component,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 5_000,
): Promise<void> {
  const p = clusterPaths(name);
  const pid = requireInfo(p).pids[comp];
  if (!pid || !pidAlive(pid)) return;
  process.kill(pid, signal);
  if (signal !== 'SIGTERM' && signal !== 'SIGKILL' && signal !== 'SIGINT') return;
  if (!(await exitedWithin(pid, timeoutMs, 50))) process.kill(pid, 'SIGKILL');
  while (pidAlive(pid)) await sleep(50);
}

/** Starts a stopped component again with its recorded command line; for the API server waits for /readyz. */
export async function startComponent(name: string | undefined, comp: Component, timeoutMs = 90_000): Promise<void> {
  const p = clusterPaths(name);
  const info = requireInfo(p);
  if (pidAlive(info.pids[comp])) return;
  const c = info.commands?.[comp];
  if (!c) throw new Error(`no recorded command for ${comp}: bring the cluster up again`);
  const pid = startDaemon(p, comp, c.cmd, c.args);
  info.pids[comp] = pid;
  fs.writeFileSync(p.infoFile, JSON.stringify(info, null, 2) + '\n');
  if (comp === 'kube-apiserver' || comp === 'etcd') {
    const kubectl = path.join(info.binDir, 'kubectl');
    const pre = inNetns(p.netns) ? [] : ['nsenter', ...nsenterArgs(p.netns)];
    const argv = [...pre, kubectl, '--kubeconfig', p.kubeconfig, '--request-timeout=3s', 'get', '--raw=/readyz'];
    await waitFor(
      `${comp} to serve again (kube-apiserver /readyz)`,
      async () => {
        if (!pidAlive(pid)) throw new Error(`${comp} exited, see ${path.join(p.logDir, `${comp}.log`)}`);
        return (await run(argv[0] ?? kubectl, argv.slice(1))).code === 0;
      },
      timeoutMs,
      250,
    );
    // kube-controller-manager's informers back off for up to 30 s per resource after losing the API server,
    // so tests after an outage saw a new namespace wait over a minute for its default ServiceAccount and a
    // scaled-down pod linger as long. A fresh one lists everything at once. (No kubelet exists to do the same.)
    if (pidAlive(info.pids['kube-controller-manager'])) {
      await signalComponent(name, 'kube-controller-manager', 'SIGTERM');
      await startComponent(name, 'kube-controller-manager', timeoutMs);
    }
  } else {
    await sleep(500);
    if (!pidAlive(pid)) throw new Error(`${comp} exited, see ${path.join(p.logDir, `${comp}.log`)}`);
  }
}

/** Stops (SIGTERM) and starts a component; e.g. restart the API server under a running gateway. */
export async function restartComponent(name: string | undefined, comp: Component): Promise<void> {
  await signalComponent(name, comp, 'SIGTERM');
  await startComponent(name, comp);
}
