// npm run demo: the product's main job on this machine. Builds the gateway, brings up the local cluster
// (test/cluster, cluster name `demo` unless --name or BKA_CLUSTER_NAME say otherwise), installs the shipped
// manifests (deploy/kubernetes + the real moby/buildkit example at 0 replicas) with a short idle timeout,
// runs a real `buildctl build` through the gateway and prints what happens as it happens: the events come
// from watches on the API server and from the gateway's own log, never from this script's expectations.
//   npm run demo [-- --name NAME] [--keep | --no-keep] [--idle-timeout 20s]
// --keep leaves everything running (the default on a terminal); --no-keep (the default with CI=true or
// without a terminal) deletes the namespace, and the cluster too when this run brought it up.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, styleText } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { parseGoDuration } from '../src/duration.ts';
import { down, ensureCluster } from '../test/cluster/index.ts';
import { REPO_ROOT } from '../test/support/repo-root.ts';

// The shipped manifests' namespace and names, so the printed addresses are the documented ones.
const NAMESPACE = 'buildkit';
const GATEWAY = 'buildkitd-autoscaler';
const STATEFULSET = 'buildkitd';
const SHIPPED_IDLE_TIMEOUT = '2m0s';

interface Options {
  name: string;
  keep: boolean;
  idleTimeout: string;
  inner: boolean;
}

function usage(message: string): never {
  process.stderr.write(
    `demo: ${message}\nusage: npm run demo [-- --name NAME] [--keep | --no-keep] [--idle-timeout 20s]\n`,
  );
  process.exit(2);
}

function parseOptions(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        name: { type: 'string' },
        keep: { type: 'boolean' },
        'no-keep': { type: 'boolean' },
        'idle-timeout': { type: 'string', default: '20s' },
        inner: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if (values.keep && values['no-keep']) usage('--keep and --no-keep exclude each other');
  const ci = (process.env.CI ?? '') !== '' && process.env.CI !== 'false';
  const name = values.name ?? process.env.BKA_CLUSTER_NAME ?? 'demo';
  if (!/^[a-z0-9][a-z0-9-]{0,20}$/.test(name)) usage(`--name ${name}: lowercase letters, digits and dashes`);
  try {
    idleTimeoutMs(values['idle-timeout']);
  } catch (error) {
    usage(`--idle-timeout ${values['idle-timeout']}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    name,
    keep: values.keep ?? (values['no-keep'] ? false : process.stdout.isTTY && !ci),
    idleTimeout: values['idle-timeout'],
    inner: values.inner,
  };
}

/** --idle-timeout in milliseconds; throws on a value the gateway's SCALE_DOWN_IDLE_TIMEOUT would not take. */
export function idleTimeoutMs(text: string): number {
  const ms = parseGoDuration(text);
  if (ms <= 0) throw new Error(`${JSON.stringify(text)} is not a positive duration (such as 20s or 1m30s)`);
  return ms;
}

const say = (line = '') => process.stdout.write(`${line}\n`);
const heading = (text: string) => say(`\n${styleText('bold', `== ${text}`)}`);
const dim = (text: string) => styleText('dim', text);

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: readonly string[],
  opts: { input?: string; inherit?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: REPO_ROOT,
      stdio: [
        opts.input === undefined ? 'ignore' : 'pipe',
        opts.inherit ? 'inherit' : 'pipe',
        opts.inherit ? 'inherit' : 'pipe',
      ],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', (error) => resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

async function kubectl(args: readonly string[], input?: string): Promise<string> {
  const r = await run('kubectl', ['-n', NAMESPACE, ...args], input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------------
// Outside the cluster's network namespace: build, bring the cluster up, run the inner part there, clean up.

async function outer(o: Options): Promise<number> {
  say(styleText('bold', 'buildkitd-autoscaler demo: a scale-to-zero gateway in front of a real buildkitd'));
  say(
    dim(
      `cluster "${o.name}" (test/cluster: etcd, kube-apiserver, kube-controller-manager and a process kubelet in netns bka-${o.name}); ` +
        `${o.keep ? 'it stays up afterwards (--keep)' : 'it is cleaned up afterwards (--no-keep)'}`,
    ),
  );

  heading('build');
  const t0 = Date.now();
  const build = await run('npm', ['run', '--silent', 'build'], { inherit: true });
  if (build.code !== 0) {
    say('npm run build failed');
    return 1;
  }
  say(`gateway compiled to dist/ (${((Date.now() - t0) / 1000).toFixed(1)}s)`);

  heading(`cluster ${o.name}`);
  const t1 = Date.now();
  say(
    dim(
      'first run on a machine builds etcd, kube-apiserver, kube-controller-manager, kubectl, buildkitd and buildctl (about 12 min on 2 cores), cached afterwards',
    ),
  );
  const cluster = await ensureCluster({ name: o.name, log: (line) => say(dim(`  ${line}`)) });
  say(
    `${cluster.startedHere ? 'brought up' : 'already up'} in ${((Date.now() - t1) / 1000).toFixed(1)}s: API server ${cluster.apiServerUrl}, binaries ${cluster.binDir}`,
  );

  // The rest needs pod and Service addresses, which exist only inside the cluster's netns.
  const inner = spawn(
    process.execPath,
    [
      path.join(REPO_ROOT, 'test/cluster/cli.ts'),
      'exec',
      '--name',
      o.name,
      '--',
      process.execPath,
      path.join(REPO_ROOT, 'scripts/demo.ts'),
      '--inner',
      '--name',
      o.name,
      '--idle-timeout',
      o.idleTimeout,
      o.keep ? '--keep' : '--no-keep',
    ],
    { cwd: REPO_ROOT, stdio: 'inherit' },
  );
  let interrupted = false;
  const onSignal = () => (interrupted = true); // the child gets the same SIGINT from the terminal
  process.on('SIGINT', onSignal);
  const code = await new Promise<number>((resolve) => inner.on('exit', (c, s) => resolve(c ?? (s ? 130 : 1))));
  process.off('SIGINT', onSignal);

  heading(o.keep && !interrupted ? 'left running' : 'clean-up');
  if (o.keep && !interrupted) {
    say(`cluster ${o.name} and namespace ${NAMESPACE} stay up (--keep). Tear down with:`);
    say(
      `  npm run cluster -- down --name ${o.name}            ${dim('# stops every process, deletes the netns; --purge also removes the state')}`,
    );
    return code;
  }
  if (cluster.startedHere) {
    await down({ name: o.name, log: (line) => say(dim(`  ${line}`)) });
    say(`cluster ${o.name} is down (this run brought it up)`);
  } else {
    const r = await cluster.kubectl(
      ['delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=120s'],
      { timeoutMs: 150_000 },
    );
    say(r.code === 0 ? `namespace ${NAMESPACE} deleted` : `deleting namespace ${NAMESPACE} failed: ${r.stderr.trim()}`);
    say(`cluster ${o.name} was up before this run and stays up: npm run cluster -- down --name ${o.name}`);
  }
  return code;
}

// ---------------------------------------------------------------------------------------------------
// Inside the netns (KUBECONFIG, kubectl and buildctl from `npm run cluster -- exec`).

type Source = 'statefulset' | 'pod' | 'gateway' | 'buildctl' | 'demo';

/**
 * Prints events in time order as they arrive. The gateway's log reaches us through the API server a
 * little later than the watch events, so each entry waits briefly and is printed sorted by its own time.
 */
class TimelinePrinter {
  private readonly queue: { at: number; source: Source; text: string }[] = [];
  private readonly timer: NodeJS.Timeout;
  private origin = Date.now();
  private readonly holdMs: number;
  constructor(holdMs = 1000) {
    this.holdMs = holdMs;
    this.timer = setInterval(() => this.flush(false), 100);
  }
  start(): void {
    this.origin = Date.now();
  }
  add(source: Source, text: string, at = Date.now()): void {
    this.queue.push({ at, source, text });
  }
  flush(all: boolean): void {
    const cutoff = Date.now() - this.holdMs;
    this.queue.sort((a, b) => a.at - b.at);
    while (this.queue.length > 0 && (all || (this.queue[0]?.at ?? 0) <= cutoff)) {
      const e = this.queue.shift();
      if (!e) break;
      const t = `+${((e.at - this.origin) / 1000).toFixed(1)}s`.padStart(8);
      const colour = {
        statefulset: 'cyan',
        pod: 'blue',
        gateway: 'magenta',
        buildctl: 'green',
        demo: 'yellow',
      } as const;
      say(`${dim(t)}  ${styleText(colour[e.source], e.source.padEnd(11))} ${e.text}`);
    }
  }
  stop(): void {
    this.flush(true);
    clearInterval(this.timer);
  }
}

interface StatefulSetLike {
  spec?: { replicas?: number };
  status?: { readyReplicas?: number };
}
interface PodLike {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** The StatefulSet and its pods, from watches; `until` resolves on a condition over what was seen. */
class ClusterView {
  replicas: number | undefined;
  readyReplicas = 0;
  readonly pods = new Map<string, string>();
  private readonly waiters = new Set<() => void>();
  private readonly aborts: AbortController[] = [];
  private stopped = false;

  private readonly out: TimelinePrinter;
  constructor(out: TimelinePrinter) {
    this.out = out;
  }

  async watch(): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const watch = new Watch(kc);
    const start = async (
      apiPath: string,
      query: Record<string, string>,
      onEvent: (type: string, obj: unknown) => void,
    ) => {
      const restart = () => {
        if (!this.stopped) setTimeout(() => void start(apiPath, query, onEvent).catch(restart), 1000);
      };
      this.aborts.push(await watch.watch(apiPath, query, onEvent, restart));
    };
    await start(
      `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets`,
      { fieldSelector: `metadata.name=${STATEFULSET}` },
      (type, obj) => {
        const sts = obj as StatefulSetLike;
        const replicas = type === 'DELETED' ? 0 : (sts.spec?.replicas ?? 0);
        const ready = sts.status?.readyReplicas ?? 0;
        if (this.replicas !== undefined && replicas !== this.replicas) {
          this.out.add(
            'statefulset',
            styleText('bold', `scale ${this.replicas} -> ${replicas}`) +
              dim(' (spec.replicas, written through statefulsets/scale)'),
          );
        } else if (this.replicas === undefined) {
          this.out.add('statefulset', `${STATEFULSET}: replicas ${replicas}, ready ${ready}`);
        }
        if (this.replicas !== undefined && ready !== this.readyReplicas)
          this.out.add('statefulset', `ready replicas ${this.readyReplicas} -> ${ready}`);
        this.replicas = replicas;
        this.readyReplicas = ready;
        this.wake();
      },
    );
    await start(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector: `app.kubernetes.io/name=${STATEFULSET}` },
      (type, obj) => {
        const pod = obj as PodLike;
        const name = pod.metadata?.name ?? '?';
        const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
        const state =
          type === 'DELETED'
            ? 'deleted'
            : pod.metadata?.deletionTimestamp
              ? 'terminating'
              : `${pod.status?.phase ?? 'Unknown'}${ready ? ', Ready' : ''}`;
        if (this.pods.get(name) === state) return;
        const text = state === 'deleted' ? 'gone' : state === 'Pending' ? 'created (Pending)' : state;
        const ip = pod.status?.podIP && state.includes('Ready') ? ` at ${pod.status.podIP}` : '';
        this.out.add('pod', `${name}: ${text}${ip}`);
        if (state === 'deleted') this.pods.delete(name);
        else this.pods.set(name, state);
        this.wake();
      },
    );
  }

  async until(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 1000));
        this.waiters.add(done);
      });
    }
  }

  stop(): void {
    this.stopped = true;
    for (const abort of this.aborts) abort.abort();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Log events of the gateway worth a line in the timeline (the rest is in `kubectl logs`). */
const GATEWAY_EVENTS = new Set([
  'connection_held',
  'connection_routed',
  'connection_closed',
  'connection_rejected',
  'dial_failed',
  'scale',
  'scale_failed',
  'scale_skipped',
  'scale_down_proposed',
  'backends_changed',
  'shutdown_started',
]);

interface GatewayLogLine {
  /** Epoch ms (parsed from the gateway's ISO `time`). */
  at: number;
  time?: string | number;
  level?: number;
  msg?: string;
  event?: string;
  code?: string;
  client?: string;
  bytesUp?: number;
  bytesDown?: number;
  durationMs?: number;
}

function describeGatewayLine(line: GatewayLogLine): string | undefined {
  if (!line.event || (!GATEWAY_EVENTS.has(line.event) && (line.level ?? 0) < 40)) return undefined;
  let text = line.msg ?? line.event;
  if (line.event === 'connection_held' && line.client) text += ` (client ${line.client})`;
  if (line.event === 'connection_closed')
    text += ` (${line.bytesUp ?? 0} B up, ${line.bytesDown ?? 0} B down, open ${((line.durationMs ?? 0) / 1000).toFixed(1)}s)`;
  if (line.code && !text.includes(line.code)) text += ` [${line.code}]`;
  if (line.event === 'scale') text = styleText('bold', text);
  return text;
}

/** Follows a gateway pod's log through the API server (`kubectl logs -f`), as an operator would. */
function followGatewayLog(
  pod: string,
  replica: string | undefined,
  out: TimelinePrinter,
  seen: GatewayLogLine[],
): () => void {
  const child = spawn('kubectl', ['-n', NAMESPACE, 'logs', '-f', '--tail=0', pod], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  createInterface({ input: child.stdout }).on('line', (raw) => {
    let line: GatewayLogLine;
    try {
      line = JSON.parse(raw) as GatewayLogLine;
    } catch {
      return;
    }
    const at = typeof line.time === 'number' ? line.time : Date.parse(line.time ?? '');
    line.at = Number.isFinite(at) ? at : Date.now();
    seen.push(line);
    const text = describeGatewayLine(line);
    if (text) out.add('gateway', replica ? `[${replica}] ${text}` : text, line.at);
  });
  child.stderr.resume();
  return () => child.kill();
}

async function serviceAddress(): Promise<{ ip: string; port: number }> {
  const svc = JSON.parse(await kubectl(['get', 'service', GATEWAY, '-o', 'json'])) as {
    spec: { clusterIP?: string; ports?: { name?: string; port: number }[] };
  };
  return { ip: svc.spec.clusterIP ?? '', port: svc.spec.ports?.find((p) => p.name === 'buildkit')?.port ?? 8080 };
}

async function install(o: Options, workDir: string): Promise<void> {
  // An overlay over the shipped files: only the idle timeout changes, so the demo does not wait 2 minutes.
  const rel = (p: string) => path.relative(workDir, path.join(REPO_ROOT, p));
  await writeFile(
    path.join(workDir, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ${rel('deploy/kubernetes')}
  - ${rel('deploy/kubernetes/buildkitd')}
patches:
  - target:
      kind: Deployment
      name: ${GATEWAY}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: ${GATEWAY}
      spec:
        template:
          spec:
            containers:
              - name: gateway
                env:
                  - name: SCALE_DOWN_IDLE_TIMEOUT
                    value: "${o.idleTimeout}"
`,
  );
  const rendered = await run('kubectl', ['kustomize', workDir]);
  if (rendered.code !== 0) throw new Error(`kubectl kustomize: ${rendered.stderr.trim()}`);
  await writeFile(path.join(workDir, 'applied.yaml'), rendered.stdout);
  // Server-side, as deploy/README.md says: the gateway owns spec.replicas once it has scaled.
  const applied = await run('kubectl', ['apply', '--server-side', '--field-manager=bka-demo', '-f', '-'], {
    input: rendered.stdout,
  });
  if (applied.code !== 0) throw new Error(`kubectl apply: ${applied.stderr.trim()}`);
  for (const line of applied.stdout.trim().split('\n')) say(dim(`  ${line}`));
}

async function inner(o: Options): Promise<number> {
  const workDir = await mkdtemp(path.join(tmpdir(), 'bka-demo-'));
  const out = new TimelinePrinter();
  const view = new ClusterView(out);
  const gatewayLog: GatewayLogLine[] = [];
  let stopLog = () => undefined as void;
  const idleMs = idleTimeoutMs(o.idleTimeout);
  try {
    heading('install the shipped manifests');
    say(
      `kubectl kustomize over deploy/kubernetes + deploy/kubernetes/buildkitd, one patch: SCALE_DOWN_IDLE_TIMEOUT=${o.idleTimeout} ` +
        dim(`(the shipped default is ${SHIPPED_IDLE_TIMEOUT}; a demo should not make you wait that long)`),
    );
    const existing = await run('kubectl', [
      '-n',
      NAMESPACE,
      'get',
      'statefulset',
      STATEFULSET,
      '-o',
      'jsonpath={.spec.replicas}',
    ]);
    if (existing.code === 0 && existing.stdout.trim() !== '0') {
      say(
        `buildkitd is at ${existing.stdout.trim()} replicas from an earlier run; waiting for the gateway to scale it to 0 first`,
      );
      await run('kubectl', [
        '-n',
        NAMESPACE,
        'wait',
        `statefulset/${STATEFULSET}`,
        '--for=jsonpath={.spec.replicas}=0',
        `--timeout=${Math.ceil(idleMs / 1000) + 300}s`,
      ]);
    }
    await install(o, workDir);
    await kubectl(['rollout', 'status', `deployment/${GATEWAY}`, '--timeout=300s']);
    const pods = JSON.parse(
      await kubectl(['get', 'pods', '-l', `app.kubernetes.io/name=${GATEWAY}`, '-o', 'json']),
    ) as {
      items: {
        metadata: { name: string; deletionTimestamp?: string };
        spec: { serviceAccountName?: string };
        status?: { podIP?: string; conditions?: { type: string; status: string }[] };
      }[];
    };
    const readyPods = pods.items.filter(
      (p) =>
        !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    const gatewayPod = readyPods[0];
    if (!gatewayPod) throw new Error('no ready gateway pod after the rollout');
    const svc = await serviceAddress();
    for (const pod of readyPods) {
      say(
        `gateway pod ${pod.metadata.name} is Ready at ${pod.status?.podIP ?? '?'}, ServiceAccount ${pod.spec.serviceAccountName ?? '?'} ` +
          `(Role: get/watch the StatefulSet, patch statefulsets/scale, list/watch EndpointSlices, Leases)`,
      );
    }
    if (readyPods.length > 1)
      say(
        `${readyPods.length} gateway replicas share their activity through Leases; one leads and is the only one that scales down`,
      );
    say(`gateway Service ${GATEWAY}.${NAMESPACE}: ClusterIP ${svc.ip}:${svc.port}`);

    heading('timeline (StatefulSet and pod watches, the gateway log, buildctl)');
    out.start();
    await view.watch();
    await view.until('the StatefulSet in the watch', () => view.replicas !== undefined, 30_000);
    if (view.replicas !== 0 || view.pods.size > 0) {
      out.add(
        'demo',
        `waiting for buildkitd to be at 0 with no pods (now ${view.replicas ?? '?'} replicas, ${view.pods.size} pods)`,
      );
      await view.until(
        'buildkitd at 0 before the build',
        () => view.replicas === 0 && view.pods.size === 0,
        idleMs + 300_000,
      );
    }
    // Every replica's log: the Service picks which one carries the build, and the leader decides the scale-down.
    const stops = readyPods.map((pod) =>
      followGatewayLog(
        pod.metadata.name,
        readyPods.length > 1 ? pod.metadata.name.slice(-5) : undefined,
        out,
        gatewayLog,
      ),
    );
    stopLog = () => stops.forEach((stop) => stop());
    await new Promise((resolve) => setTimeout(resolve, 1000)); // let `kubectl logs -f` attach

    const context = path.join(workDir, 'context');
    const dest = path.join(workDir, 'out');
    await mkdir(context);
    const payload = Buffer.from(
      `hello from buildkitd-autoscaler, built ${new Date().toISOString()} (${Math.random().toString(36).slice(2)})\n`,
    );
    await writeFile(path.join(context, 'hello.txt'), payload);
    // No `# syntax=` line: the built-in dockerfile.v0 frontend, nothing fetched from a registry.
    await writeFile(path.join(context, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
    const addr = `tcp://${svc.ip}:${svc.port}`;
    const buildArgs = [
      '--addr',
      addr,
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${context}`,
      '--local',
      `dockerfile=${context}`,
      '--output',
      `type=local,dest=${dest}`,
      '--progress',
      'plain',
    ];
    out.add('buildctl', `buildctl ${buildArgs.map((a) => a.replace(workDir, '$TMP')).join(' ')}`);
    out.add('buildctl', dim('  Dockerfile: FROM scratch / COPY hello.txt /hello.txt'));
    const buildStarted = Date.now();
    const build = await run('buildctl', buildArgs);
    const buildDone = Date.now();
    await writeFile(path.join(workDir, 'buildctl.log'), build.stderr + build.stdout);
    if (build.code !== 0) {
      out.add(
        'buildctl',
        styleText('red', `build FAILED (exit ${build.code}) after ${((buildDone - buildStarted) / 1000).toFixed(1)}s`),
      );
      out.stop();
      say(build.stderr.trim().split('\n').slice(-15).join('\n'));
      say(
        `gateway log: npm run cluster -- exec --name ${o.name} -- kubectl -n ${NAMESPACE} logs ${gatewayPod.metadata.name}`,
      );
      return 1;
    }
    const steps = build.stderr
      .split('\n')
      .filter((l) => /^#\d+ \[/.test(l))
      .map((l) => l.replace(/^#\d+ /, ''))
      .filter((l, i, a) => a.indexOf(l) === i);
    out.add(
      'buildctl',
      `build done in ${((buildDone - buildStarted) / 1000).toFixed(1)}s (wake-up included): ${steps.join('; ')}`,
      buildDone,
    );
    const built = await readFile(path.join(dest, 'hello.txt')).catch(() => undefined);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
    if (!built?.equals(payload)) {
      out.add(
        'demo',
        styleText(
          'red',
          `output hello.txt does not match what was copied in (${built ? `${built.length} bytes, sha256 ${sha(built)}` : 'missing'})`,
        ),
      );
      out.stop();
      return 1;
    }
    out.add(
      'demo',
      `output verified: hello.txt, ${built.length} bytes, sha256 ${sha(built)}…, identical to the build context`,
    );
    out.add('demo', dim(`waiting for the idle timeout (${o.idleTimeout}) and the scale-down…`));
    await view.until(
      'the scale-down to 0 and the pod gone',
      () => view.replicas === 0 && view.pods.size === 0,
      idleMs + 180_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the gateway log trails the watches
    out.stop();

    const held = gatewayLog.find((l) => l.event === 'connection_held');
    const routed = gatewayLog.find((l) => l.event === 'connection_routed');
    heading('what happened');
    if (held && routed)
      say(
        `- the first connection was held ${((routed.at - held.at) / 1000).toFixed(1)}s while buildkitd went from 0 to a ready pod`,
      );
    say(
      `- the build finished ${((buildDone - buildStarted) / 1000).toFixed(1)}s after buildctl started, output verified`,
    );
    const idleStarted = gatewayLog
      .filter((l) => l.event === 'connection_closed')
      .sort((a, b) => a.at - b.at)
      .at(-1);
    const scaledDown = gatewayLog
      .filter((l) => l.event === 'scale')
      .sort((a, b) => a.at - b.at)
      .at(-1);
    if (idleStarted && scaledDown) {
      say(
        `- ${((scaledDown.at - idleStarted.at) / 1000).toFixed(1)}s after the last connection closed the gateway wrote replicas=0 (idle timeout ${o.idleTimeout})`,
      );
    }
    say(
      `- ${gatewayLog.filter((l) => l.event === 'connection_closed').length} connection(s) through the gateway; buildkitd is back at 0 replicas, no pods`,
    );

    heading('use it yourself');
    if (!o.keep) say(`This run cleans up next (--no-keep); start it with \`npm run demo -- --keep\` to try these:`);
    say(
      `Clients reach the gateway inside the cluster's network namespace (bka-${o.name}); run them through \`npm run cluster -- exec\`:`,
    );
    say(`  npm run cluster -- exec --name ${o.name} -- buildctl --addr tcp://${svc.ip}:${svc.port} debug workers`);
    say(
      `  npm run cluster -- exec --name ${o.name} --dns -- buildctl --addr tcp://${GATEWAY}.${NAMESPACE}.svc.cluster.local:${svc.port} \\`,
    );
    say(
      '      build --frontend dockerfile.v0 --local context=$DIR --local dockerfile=$DIR --output type=local,dest=$DIR/out',
    );
    say(
      dim(
        '  (DIR: an absolute path to a directory with a Dockerfile; `npm run` starts in the repo root, so `.` would be this repo)',
      ),
    );
    say(
      `  docker buildx create --name bka --driver remote tcp://${svc.ip}:${svc.port}   ${dim('# from a shell in the netns: npm run cluster -- exec --name ' + o.name + ' -- bash')}`,
    );
    say(
      `  gateway pod ${gatewayPod.metadata.name}: tcp://${gatewayPod.status?.podIP ?? '?'}:8080; metrics and /readyz: http://${svc.ip}:9090/metrics`,
    );
    say(`Watch it: npm run cluster -- exec --name ${o.name} -- kubectl -n ${NAMESPACE} get statefulset,pods -w`);
    say(
      `Its log:  npm run cluster -- exec --name ${o.name} -- kubectl -n ${NAMESPACE} logs -f ${gatewayPod.metadata.name}`,
    );
    say(
      dim(
        `On a real cluster: kubectl apply -k deploy/kubernetes && kubectl apply --server-side -k deploy/kubernetes/buildkitd, then tcp://${GATEWAY}.${NAMESPACE}.svc:8080 (deploy/README.md).`,
      ),
    );
    return 0;
  } catch (error) {
    out.stop();
    say(styleText('red', `demo failed: ${error instanceof Error ? error.message : String(error)}`));
    say(`objects: npm run cluster -- exec --name ${o.name} -- kubectl -n ${NAMESPACE} get all,events`);
    return 1;
  } finally {
    stopLog();
    view.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const options = parseOptions();
  process.exitCode = options.inner
    ? await inner(options)
    : await outer(options).catch((error: unknown) => {
        say(styleText('red', `demo failed: ${error instanceof Error ? error.message : String(error)}`));
        return 1;
      });
}
