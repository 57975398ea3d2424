// The benchmark proper; runs inside the cluster's network namespace (bench/main.ts starts it there).
// Same workloads, same backend pod, three paths: direct to the pod IP, HAProxy (TCP mode, Debian package,
// default settings) and the gateway as a process with its ServiceAccount, exactly as the integration
// tests start it (test/integration/harness.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TestContext } from 'node:test';
import { parseArgs } from 'node:util';
import { Watch, loadAllYaml, type V1EndpointSlice, type V1Pod } from '@kubernetes/client-node';
import { artifactsRoot, freePort, repoRoot, setup, sleep, waitFor, type Env, type Gateway } from '../test/integration/harness.ts';
import { median, summary, table, type Figure } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    // Extra Node.js flags for the gateway (e.g. --cpu-prof), after the manifest's NODE_OPTIONS.
    'gateway-node-options': { type: 'string' },
  },
});
const short = args.short;
const plan = {
  runs: Number(args.runs ?? (short ? 2 : 3)),
  iperfSeconds: short ? 2 : 10,
  rttCount: short ? 3000 : 20_000,
  rateMs: short ? 1500 : 4000,
  parallel: 64,
  // 10,000 proxied connections are 20,000 sockets in the proxy; the file-descriptor limit here may be
  // lower (20,000, and raising it needs CAP_SYS_RESOURCE), so the top count is cut to what fits.
  idleCounts: [1000, Math.min(10_000, Math.floor((fdLimit() - 200) / 2 / 100) * 100)],
  churnCount: short ? 20_000 : 100_000,
  coldCycles: short ? 4 : 20,
};
function fdLimit(): number {
  const match = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match ? Number(match[1]) : 1024;
}
const only = new Set((args.only ?? 'throughput,latency,rate,memory,churn,cold').split(','));
const out = join(artifactsRoot, '..', 'bench');
mkdirSync(out, { recursive: true });
const say = (text: string) => process.stderr.write(`[bench] ${text}\n`);

const ECHO_PORT = 8273;
const IPERF_PORT = 5201;
type Target = 'direct' | 'haproxy' | 'gateway';
const targets: Target[] = ['direct', 'haproxy', 'gateway'];

/** NODE_OPTIONS as the shipped Deployment sets it, so the gateway runs here as it runs in a cluster. */
function manifestNodeOptions(): string | undefined {
  const docs = loadAllYaml(readFileSync(join(repoRoot, 'deploy', 'kubernetes', '04-deployment.yaml'), 'utf8')) as Array<{
    spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
  }>;
  const env = docs[0]?.spec?.template?.spec?.containers?.[0]?.env ?? [];
  return env.find((e) => e.name === 'NODE_OPTIONS')?.value;
}

function backendYaml(): string {
  const echo = JSON.stringify([process.execPath, join(repoRoot, 'bench', 'echo-server.ts'), String(ECHO_PORT)]);
  return `apiVersion: v1
kind: Service
metadata: {name: buildkitd-headless}
spec:
  clusterIP: None
  selector: {app: buildkitd}
  ports: [{name: echo, port: ${ECHO_PORT}}, {name: iperf, port: ${IPERF_PORT}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: buildkitd}
spec:
  replicas: 0
  serviceName: buildkitd-headless
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: buildkitd}}
  template:
    metadata: {labels: {app: buildkitd}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: buildkitd
          image: alpine/socat:latest
          command: ${echo}
          readinessProbe: {tcpSocket: {port: ${ECHO_PORT}}, periodSeconds: 1}
        - name: iperf3
          image: alpine/socat:latest
          command: ["iperf3", "-s", "-p", "${IPERF_PORT}"]
`;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

async function waitListening(port: number, host = '127.0.0.1'): Promise<void> {
  await waitFor(`${host}:${port} listening`, () => new Promise<boolean>((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  }), 20_000, 50);
}

interface Running { child: ChildProcess; stdoutLines: string[]; exited: Promise<number | null> }

function start(command: string, argv: string[], input = false): Running {
  const child = spawn(command, argv, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const stdoutLines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    stdoutLines.push(...parts.filter((l) => l.trim() !== ''));
  });
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = once(child, 'exit').then(([code]) => {
    if (partial.trim()) stdoutLines.push(partial);
    if (code !== 0 && code !== null) say(`${command} ${argv.join(' ')} exited ${String(code)}: ${stderr.trim()}`);
    return code as number | null;
  });
  return { child, stdoutLines, exited };
}

async function run(command: string, argv: string[]): Promise<string[]> {
  const r = start(command, argv);
  const code = await r.exited;
  if (code !== 0) throw new Error(`${command} ${argv.join(' ')} failed with exit code ${String(code)}`);
  return r.stdoutLines;
}

const load = async <T>(...argv: string[]): Promise<T> => {
  const lines = await run(process.execPath, [join(repoRoot, 'bench', 'load.ts'), ...argv]);
  return JSON.parse(lines.at(-1) ?? 'null') as T;
};

async function iperf(host: string, port: number, seconds: number, reverse: boolean): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      const lines = await run('iperf3', ['-c', host, '-p', String(port), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])]);
      const result = JSON.parse(lines.join('\n')) as { end: { sum_received: { bits_per_second: number } } };
      return result.end.sum_received.bits_per_second / 1e9;
    } catch (error) {
      if (attempt >= 3) throw error;
      await sleep(1000); // "the server is busy": the previous test's sockets are still closing
    }
  }
}

class HAProxy {
  private running: Running | undefined;
  echoPort = 0;
  iperfPort = 0;
  private readonly backendHost: string;
  constructor(backendHost: string) {
    this.backendHost = backendHost;
  }
  get pid(): number { return this.running?.child.pid ?? 0; }
  async start(): Promise<void> {
    [this.echoPort, this.iperfPort] = [await freePort(), await freePort()];
    // Default settings: only what TCP mode requires (mode and timeouts; an hour so idle connections stay).
    const cfg = `defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend echo
  bind 127.0.0.1:${this.echoPort}
  default_backend echo
backend echo
  server pod ${this.backendHost}:${ECHO_PORT}
frontend iperf
  bind 127.0.0.1:${this.iperfPort}
  default_backend iperf
backend iperf
  server pod ${this.backendHost}:${IPERF_PORT}
`;
    const file = join(out, 'haproxy.cfg');
    writeFileSync(file, cfg);
    this.running = start('haproxy', ['-db', '-f', file]);
    await waitListening(this.echoPort);
    await waitListening(this.iperfPort);
  }
  async stop(): Promise<void> {
    if (!this.running || this.running.child.exitCode !== null) return;
    this.running.child.kill('SIGTERM');
    await this.running.exited;
  }
}

interface Paths { echo: Record<Target, { host: string; port: number }>; iperf: Record<Target, { host: string; port: number }> }

const figures: Figure[] = [];
const fig = (f: Omit<Figure, 'gateway'> & { gateway?: number[] }) => {
  const figure: Figure = { ...f, gateway: f.gateway ?? [] };
  figures.push(figure);
  return figure;
};
const push = (figure: Figure, target: Target, value: number) => (figure[target] ??= []).push(value);

async function startGateway(env: Env, extra: Record<string, string>): Promise<Gateway> {
  const nodeOptions = [manifestNodeOptions(), args['gateway-node-options']].filter(Boolean).join(' ');
  const gateway = await env.startGateway({
    LOG_LEVEL: 'info',
    SCALE_DOWN_IDLE_TIMEOUT: '1h',
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
    ...extra,
  });
  await waitFor('gateway ready', async () => (await gateway.readyz()).status === 200, 30_000);
  return gateway;
}

async function throughput(paths: Paths): Promise<void> {
  const up = fig({ workload: 'throughput', metric: 'client→pod', unit: 'Gbit/s', better: 'higher' });
  const down = fig({ workload: 'throughput', metric: 'pod→client', unit: 'Gbit/s', better: 'higher' });
  for (let r = 0; r < plan.runs; r++) {
    for (const t of targets) {
      const { host, port } = paths.iperf[t];
      push(up, t, await iperf(host, port, plan.iperfSeconds, false));
      push(down, t, await iperf(host, port, plan.iperfSeconds, true));
      say(`throughput run ${r + 1} ${t}: up ${up[t]?.at(-1)?.toFixed(2)} down ${down[t]?.at(-1)?.toFixed(2)} Gbit/s`);
    }
  }
}

async function latency(paths: Paths): Promise<void> {
  const p50 = fig({ workload: 'round trip 64 B', metric: 'p50', unit: 'µs', better: 'lower' });
  const p99 = fig({ workload: 'round trip 64 B', metric: 'p99', unit: 'µs', better: 'lower' });
  const p999 = fig({ workload: 'round trip 64 B', metric: 'p99.9', unit: 'µs', better: 'lower' });
  for (let r = 0; r < plan.runs; r++) {
    for (const t of targets) {
      const { host, port } = paths.echo[t];
      const res = await load<{ p50us: number; p99us: number; p999us: number }>('rtt', host, String(port), String(plan.rttCount), '64');
      push(p50, t, res.p50us);
      push(p99, t, res.p99us);
      push(p999, t, res.p999us);
      say(`latency run ${r + 1} ${t}: p50 ${res.p50us.toFixed(0)} p99 ${res.p99us.toFixed(0)} p99.9 ${res.p999us.toFixed(0)} µs`);
    }
  }
  const added = fig({ workload: 'round trip 64 B', metric: 'p99 added over direct', unit: 'µs', better: 'lower' });
  for (let r = 0; r < plan.runs; r++) {
    for (const t of ['haproxy', 'gateway'] as const) push(added, t, (p99[t]?.[r] ?? NaN) - (p99.direct?.[r] ?? NaN));
  }
}

async function connectionRate(paths: Paths): Promise<void> {
  const seq = fig({ workload: 'connection rate', metric: 'sequential', unit: 'conn/s', better: 'higher' });
  const par = fig({ workload: 'connection rate', metric: `${plan.parallel} parallel`, unit: 'conn/s', better: 'higher' });
  for (let r = 0; r < plan.runs; r++) {
    for (const t of targets) {
      const { host, port } = paths.echo[t];
      for (const [figure, concurrency] of [[seq, 1], [par, plan.parallel]] as const) {
        const res = await load<{ perSecond: number; errors: number }>('rate', host, String(port), String(concurrency), String(plan.rateMs));
        if (res.errors > 0) throw new Error(`${res.errors} failed connections (${t}, concurrency ${concurrency})`);
        push(figure, t, res.perSecond);
      }
      say(`connection rate run ${r + 1} ${t}: sequential ${seq[t]?.at(-1)?.toFixed(0)} parallel ${par[t]?.at(-1)?.toFixed(0)} conn/s`);
    }
  }
}

/** Opens `count` idle connections through `port`, reads the proxy's RSS, closes them. */
async function rssWithIdle(pid: number, port: number, count: number): Promise<number> {
  const holder = start(process.execPath, [join(repoRoot, 'bench', 'load.ts'), 'hold', '127.0.0.1', String(port), String(count)], true);
  await waitFor(`${count} idle connections`, () => holder.stdoutLines.length > 0 || holder.child.exitCode !== null, 120_000, 50);
  const res = JSON.parse(holder.stdoutLines[0] ?? '{}') as { held?: number; errors?: number };
  if (res.held !== count) throw new Error(`held ${String(res.held)} of ${count} connections (${String(res.errors)} errors)`);
  await sleep(1000);
  const rss = rssMiB(pid);
  holder.child.stdin?.end();
  if ((await holder.exited) !== 0) throw new Error('the idle-connection holder failed');
  return rss;
}

async function memory(env: Env, haproxy: HAProxy): Promise<void> {
  const idle = fig({ workload: 'memory (RSS)', metric: 'idle', unit: 'MiB', better: 'lower' });
  const perCount = plan.idleCounts.map((n) => fig({ workload: 'memory (RSS)', metric: `${n.toLocaleString('en')} idle conns`, unit: 'MiB', better: 'lower' }));
  for (let r = 0; r < plan.runs; r++) {
    // Fresh processes per run: RSS rarely shrinks, so each count is measured from a clean start.
    const gateway = await startGateway(env, {});
    await sleep(3000);
    push(idle, 'gateway', rssMiB(gateway.process.pid ?? 0));
    await haproxy.stop();
    await haproxy.start();
    await sleep(1000);
    push(idle, 'haproxy', rssMiB(haproxy.pid));
    for (const [i, n] of plan.idleCounts.entries()) {
      const figure = perCount[i]!;
      push(figure, 'gateway', await rssWithIdle(gateway.process.pid ?? 0, gateway.proxyPort, n));
      await waitFor('gateway connections closed', async () => (await gateway.metric('bka_connections_open')) === 0, 60_000);
      push(figure, 'haproxy', await rssWithIdle(haproxy.pid, haproxy.echoPort, n));
    }
    say(`memory run ${r + 1}: gateway ${[idle, ...perCount].map((f) => f.gateway.at(-1)?.toFixed(1)).join(' / ')} MiB, HAProxy ${[idle, ...perCount].map((f) => f.haproxy?.at(-1)?.toFixed(1)).join(' / ')} MiB`);
    await gateway.stop();
  }

}

/** Leak check: many short connections through one fresh gateway, RSS sampled every 10,000. */
async function churnMemory(env: Env): Promise<void> {
  const gateway = await startGateway(env, {});
  await sleep(2000);
  const pid = gateway.process.pid ?? 0;
  const samples: Array<{ connections: number; rssMiB: number }> = [{ connections: 0, rssMiB: rssMiB(pid) }];
  const churn = start(process.execPath, [join(repoRoot, 'bench', 'load.ts'), 'churn', '127.0.0.1', String(gateway.proxyPort), String(plan.parallel), String(plan.churnCount)]);
  let seen = 0;
  const sampler = setInterval(() => {
    for (const line of churn.stdoutLines.slice(seen)) {
      const progress = (JSON.parse(line) as { progress?: number }).progress;
      if (progress !== undefined) samples.push({ connections: progress, rssMiB: rssMiB(pid) });
    }
    seen = churn.stdoutLines.length;
  }, 20);
  const code = await churn.exited;
  clearInterval(sampler);
  if (code !== 0) throw new Error('the churn load failed');
  const result = JSON.parse(churn.stdoutLines.at(-1) ?? '{}') as { errors: number; perSecond: number };
  if (result.errors > 0) throw new Error(`${result.errors} of ${plan.churnCount} churn connections failed`);
  await waitFor('gateway connections closed', async () => (await gateway.metric('bka_connections_open')) === 0, 60_000);
  await sleep(5000);
  const after = rssMiB(pid);
  samples.push({ connections: plan.churnCount, rssMiB: after });
  writeFileSync(join(out, 'churn-rss.json'), JSON.stringify(samples, null, 2));
  // Growth trend: least-squares slope over the second half of the run (the first half includes warm-up).
  const tail = samples.filter((s) => s.connections >= plan.churnCount / 2);
  const slope = leastSquaresSlope(tail.map((s) => s.connections / 10_000), tail.map((s) => s.rssMiB));
  const label = plan.churnCount.toLocaleString('en');
  fig({ workload: 'memory (RSS)', metric: `after ${label} conns came and went`, unit: 'MiB', better: 'lower', gateway: [after], note: `samples every 10,000: ${samples.map((s) => s.rssMiB.toFixed(1)).join(' ')}` });
  fig({ workload: 'memory (RSS)', metric: `growth, 2nd half of ${label}`, unit: 'MiB/10k conns', better: 'lower', gateway: [slope] });
  fig({ workload: 'memory (RSS)', metric: 'peak (VmHWM) after all of the above', unit: 'MiB', better: 'lower', gateway: [hwmMiB(pid)] });
  say(`churn: ${result.perSecond.toFixed(0)} conn/s; RSS ${samples.map((s) => s.rssMiB.toFixed(1)).join(' ')} MiB; slope ${slope.toFixed(2)} MiB/10k`);
  await gateway.stop();
}

function hwmMiB(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? NaN) / 1024;
}

function leastSquaresSlope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] ?? 0) - mx) * ((ys[i] ?? 0) - my);
    den += ((xs[i] ?? 0) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/**
 * Cold start: the gateway at zero replicas holds a client; the bench watches Pods and EndpointSlices
 * itself and times the gateway's share from the pod's Ready (both events, as delivered to a watcher)
 * to the first echoed byte at the held client. As a floor, on the same EndpointSlice event the bench
 * dials the pod itself ("direct": a client that watches and dials on its own).
 */
async function coldStart(env: Env): Promise<void> {
  const gateway = await startGateway(env, { SCALE_DOWN_IDLE_TIMEOUT: '1s' });
  const kc = env.cluster.kubeConfig();
  const podReadyAt = new Map<string, number>();
  const sliceReadyAt = new Map<string, { at: number; host: string }>();
  const directFirstByte = new Map<string, number>();
  let armed = false;
  const dialDirect = (uid: string, host: string, at: number) => {
    const socket = connect({ host, port: ECHO_PORT, noDelay: true });
    socket.on('error', () => undefined);
    socket.once('connect', () => socket.write('ping'));
    socket.once('data', () => {
      directFirstByte.set(uid, performance.now() - at);
      socket.destroy();
    });
  };
  const watch = new Watch(kc);
  const controllers = [
    await watch.watch(`/api/v1/namespaces/${env.namespace}/pods`, {}, (_phase, pod: V1Pod) => {
      const now = performance.now();
      const uid = pod.metadata?.uid ?? '';
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (ready && !podReadyAt.has(uid)) podReadyAt.set(uid, now);
    }, () => undefined),
    await watch.watch(`/apis/discovery.k8s.io/v1/namespaces/${env.namespace}/endpointslices`, {}, (_phase, slice: V1EndpointSlice) => {
      const now = performance.now();
      for (const e of slice.endpoints ?? []) {
        const uid = e.targetRef?.uid ?? '';
        if (e.conditions?.ready === false || e.conditions?.terminating || sliceReadyAt.has(uid)) continue;
        const host = e.addresses[0] ?? '';
        sliceReadyAt.set(uid, { at: now, host });
        if (armed) dialDirect(uid, host, now);
      }
    }, () => undefined),
  ];
  const fromSlice: number[] = [];
  const fromPod: number[] = [];
  const direct: number[] = [];
  try {
    for (let cycle = 0; cycle < plan.coldCycles; cycle++) {
      await waitFor('scaled to zero, pod gone', async () => {
        const pods = await env.core.listNamespacedPod({ namespace: env.namespace });
        return (await env.replicas()).spec === 0 && pods.items.length === 0;
      }, 60_000, 100);
      await sleep(300);
      armed = true;
      const connectedAt = performance.now();
      const firstByteAt = await new Promise<number>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: gateway.proxyPort, noDelay: true });
        socket.on('error', reject);
        socket.once('connect', () => socket.write('ping'));
        socket.once('data', () => {
          const at = performance.now();
          socket.end();
          resolve(at);
        });
      });
      armed = false;
      const pod = [...sliceReadyAt.entries()].find(([, v]) => v.at > connectedAt);
      if (!pod) throw new Error('first byte arrived but no EndpointSlice ready event was seen');
      const [uid, slice] = pod;
      const podAt = podReadyAt.get(uid);
      fromSlice.push(firstByteAt - slice.at);
      if (podAt !== undefined) fromPod.push(firstByteAt - podAt);
      await waitFor('direct dial done', () => directFirstByte.has(uid), 5000, 10).catch(() => undefined);
      const d = directFirstByte.get(uid);
      if (d !== undefined) direct.push(d);
      say(`cold start ${cycle + 1}/${plan.coldCycles}: connect→first byte ${(firstByteAt - connectedAt).toFixed(0)} ms; pod Ready→first byte ${podAt === undefined ? '?' : (firstByteAt - podAt).toFixed(1)} ms; EndpointSlice→first byte ${(firstByteAt - slice.at).toFixed(1)} ms (direct ${d?.toFixed(1) ?? '?'} ms)`);
    }
  } finally {
    for (const c of controllers) c.abort();
    await gateway.stop();
  }
  for (const p of [50, 99]) {
    fig({ workload: 'cold start', metric: `EndpointSlice ready → first byte p${p}`, unit: 'ms', better: 'lower', direct: [percentile(direct, p)], gateway: [percentile(fromSlice, p)] });
  }
  for (const p of [50, 99]) {
    fig({ workload: 'cold start', metric: `pod Ready → first byte p${p}`, unit: 'ms', better: 'lower', gateway: [percentile(fromPod, p)] });
  }
  writeFileSync(join(out, 'cold-start.json'), JSON.stringify({ fromSlice, fromPod, direct }, null, 2));
}

function targetsMet() {
  const get = (workload: string, metric: string) => figures.find((f) => f.workload === workload && f.metric === metric);
  const m = (f: Figure | undefined, t: Target) => (f?.[t]?.length ? median(f[t]) : NaN);
  const checks: Array<{ target: string; met: boolean | null; figure: string }> = [];
  const add = (target: string, ok: boolean | null, figure: string) => checks.push({ target, met: ok, figure });
  for (const metric of ['client→pod', 'pod→client']) {
    const f = get('throughput', metric);
    if (f) add(`throughput ${metric}: gateway >= HAProxy`, m(f, 'gateway') >= m(f, 'haproxy'), `${m(f, 'gateway').toFixed(2)} vs ${m(f, 'haproxy').toFixed(2)} Gbit/s`);
  }
  const added = get('round trip 64 B', 'p99 added over direct');
  if (added) add('round trip p99 added over direct: gateway <= HAProxy', m(added, 'gateway') <= m(added, 'haproxy'), `${m(added, 'gateway').toFixed(0)} vs ${m(added, 'haproxy').toFixed(0)} µs`);
  for (const metric of ['sequential', `${plan.parallel} parallel`]) {
    const f = get('connection rate', metric);
    if (f) add(`connection rate ${metric}: gateway >= 0.8x HAProxy`, m(f, 'gateway') >= 0.8 * m(f, 'haproxy'), `${(m(f, 'gateway') / m(f, 'haproxy')).toFixed(2)}x`);
  }
  const limits: Array<[string, number]> = [['idle', 64], ...plan.idleCounts.map((n): [string, number] => [`${n.toLocaleString('en')} idle conns`, n <= 1000 ? 64 : 256])];
  for (const [metric, limit] of limits) {
    const f = get('memory (RSS)', metric);
    if (f) add(`memory ${metric}: RSS <= ${limit} MiB`, m(f, 'gateway') <= limit, `${m(f, 'gateway').toFixed(1)} MiB`);
  }
  const growth = figures.find((f) => f.metric.startsWith('growth'));
  // A short run has too few samples for a trend: reported, not judged.
  if (growth) add('no growth trend after many connections (< 0.5 MiB per 10k)', short ? null : m(growth, 'gateway') < 0.5, `${m(growth, 'gateway').toFixed(2)} MiB/10k`);
  const cold = get('cold start', 'EndpointSlice ready → first byte p99');
  if (cold) add('cold start share p99 <= 50 ms', m(cold, 'gateway') <= 50, `${m(cold, 'gateway').toFixed(1)} ms`);
  return checks;
}

async function main(): Promise<number> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const context = { name: 'bench', after: (fn: () => Promise<void> | void) => cleanups.push(fn) } as unknown as TestContext;
  const startedAt = new Date();
  let haproxy: HAProxy | undefined;
  try {
    const env = await setup(context, { buildkitd: false });
    const applied = await env.cluster.kubectl(['-n', env.namespace, 'apply', '-f', '-'], { input: backendYaml() });
    if (applied.code !== 0) throw new Error(applied.stderr);
    say(`namespace ${env.namespace}; waking the backend pod`);
    await env.setReplicas(1);
    await waitFor('backend pod ready', async () => (await env.replicas()).ready === 1, 60_000);
    const pod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
    const podIp = pod.status?.podIP ?? '';
    await waitListening(IPERF_PORT, podIp);
    haproxy = new HAProxy(podIp);
    await haproxy.start();
    const gwEcho = await startGateway(env, {});
    const gwIperf = await startGateway(env, { BUILDKITD_TARGET_PORT: String(IPERF_PORT) });
    const paths: Paths = {
      echo: { direct: { host: podIp, port: ECHO_PORT }, haproxy: { host: '127.0.0.1', port: haproxy.echoPort }, gateway: { host: '127.0.0.1', port: gwEcho.proxyPort } },
      iperf: { direct: { host: podIp, port: IPERF_PORT }, haproxy: { host: '127.0.0.1', port: haproxy.iperfPort }, gateway: { host: '127.0.0.1', port: gwIperf.proxyPort } },
    };
    say(`pod ${podIp}; HAProxy ${haproxy.echoPort}/${haproxy.iperfPort}; gateway ${gwEcho.proxyPort}/${gwIperf.proxyPort}; ${plan.runs} runs${short ? ' (short)' : ''}`);
    if (only.has('throughput')) await throughput(paths);
    if (only.has('latency')) await latency(paths);
    if (only.has('rate')) await connectionRate(paths);
    await gwEcho.stop();
    await gwIperf.stop();
    if (only.has('memory')) await memory(env, haproxy);
    if (only.has('churn')) await churnMemory(env);
    await haproxy.stop();
    if (only.has('cold')) await coldStart(env);
  } catch (error) {
    say(`run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    (context as unknown as { passed: boolean }).passed = false;
    return 1;
  } finally {
    await haproxy?.stop();
    for (const cleanup of cleanups) await cleanup();
    report(startedAt);
  }
  return 0;
}

function report(startedAt: Date): void {
  const checks = targetsMet();
  const markdown = [
    `Benchmark ${short ? '(short) ' : ''}on ${startedAt.toISOString()}: ${plan.runs} runs per figure, median ±half-range; ratios of medians. ↑ higher is better, ↓ lower.`,
    '',
    table(figures),
    '',
    ...checks.map((c) => `- ${c.met === null ? 'not judged (short run)' : c.met ? 'met' : 'NOT met'}: ${c.target} (${c.figure})`),
  ].join('\n');
  const result = { startedAt: startedAt.toISOString(), short, plan, figures: figures.map(summary), targets: checks, node: process.version, nodeOptions: manifestNodeOptions() ?? null };
  writeFileSync(join(out, 'result.md'), `${markdown}\n`);
  writeFileSync(join(out, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  if (args.json) {
    process.stderr.write(`${markdown}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    process.stdout.write(`${markdown}\n`);
  }
}

process.exitCode = await main();
