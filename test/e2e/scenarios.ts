// The E2E scenarios: what a user of the gateway is promised (ARCHITECTURE.md, "Failure behaviour"),
// checked through the shipped manifests on a real cluster. Each returns one line of what it observed;
// a failed expectation throws. They run in order and build on each other's state.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Diagnostic } from '../../scripts/ci-report.ts';
import type { Backend, GatewayAccess } from './backends.ts';
import { echoRoundTrip, httpGet, metricSum } from './clients.ts';
import type { Timeline } from './timeline.ts';

export const GATEWAY_SELECTOR = 'app.kubernetes.io/name=buildkitd-autoscaler';
export const STATEFULSET = 'buildkitd';

export interface Settings {
  idleTimeoutS: number;
  readyWaitS: number;
  burst: number;
}

export interface Context {
  backend: Backend;
  namespace: string;
  timeline: Timeline;
  settings: Settings;
  /** Applies the E2E overlay of the shipped manifests. */
  install(): Promise<void>;
  figures: Map<string, string>;
  diagnostics: Diagnostic[];
  /** Connections served so far, to compare with the gateway's own count. */
  served: number;
  access?: GatewayAccess;
  gatewayPod?: string;
}

export interface Scenario {
  name: string;
  promise: string;
  run(ctx: Context): Promise<string>;
}

async function kubectlOk(ctx: Context, args: string[], input?: string): Promise<string> {
  const r = await ctx.backend.kubectl(['-n', ctx.namespace, ...args], input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Waits for the gateway Deployment to be available and (re)opens access to its pod. */
async function connectToGateway(ctx: Context): Promise<GatewayAccess> {
  await kubectlOk(ctx, ['rollout', 'status', 'deployment/buildkitd-autoscaler', '--timeout=240s']);
  const pods = JSON.parse(await kubectlOk(ctx, ['get', 'pods', '-l', GATEWAY_SELECTOR, '-o', 'json'])) as {
    items: { metadata: { name: string; deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
  };
  const ready = pods.items
    .filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((p) => p.metadata.name);
  assert.equal(ready.length, 1, `expected one ready gateway pod, found ${ready.length} of ${pods.items.length}`);
  ctx.access?.close();
  ctx.gatewayPod = ready[0];
  ctx.access = await ctx.backend.gatewayAccess(ctx.namespace, ready[0] ?? '');
  return ctx.access;
}

function access(ctx: Context): GatewayAccess {
  assert.ok(ctx.access, 'the gateway is not reachable (install failed)');
  return ctx.access;
}

async function waitForZero(ctx: Context, what: string): Promise<number> {
  const timeout = (ctx.settings.idleTimeoutS + 120) * 1000;
  return ctx.timeline.until(what, () => ctx.timeline.replicas === 0 && ctx.timeline.readyReplicas === 0, timeout);
}

/** Replica counts as transitions: 0 → 1 → 0, without repeats from readiness-only updates. */
function transitions(counts: number[]): string {
  return counts.filter((n, i) => i === 0 || counts[i - 1] !== n).join(' → ') || 'nothing';
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

let payloadCounter = 0;
function payload(): string {
  return `e2e-${process.pid}-${++payloadCounter}-${Math.random().toString(36).slice(2)}\n`;
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'install',
    promise: 'the shipped manifests install; the gateway becomes ready with its own ServiceAccount; buildkitd stays at 0',
    async run(ctx) {
      const t0 = ctx.timeline.now();
      await ctx.install();
      const gw = await connectToGateway(ctx);
      const readyz = await httpGet(gw.metrics, '/readyz');
      assert.equal(readyz.status, 200, `/readyz answered ${readyz.status}: ${readyz.body}`);
      assert.equal(ctx.timeline.replicas, 0, 'buildkitd is not at 0 replicas after install');
      const took = ctx.timeline.now() - t0;
      ctx.figures.set('install to gateway ready', seconds(took));
      return `gateway ${ctx.gatewayPod ?? ''} ready after ${seconds(took)}; /readyz 200; StatefulSet at 0`;
    },
  },
  {
    name: 'wake-on-connect',
    promise: 'a client connecting while buildkitd is at 0 is held, buildkitd is scaled to 1, and the client is served',
    async run(ctx) {
      assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
      const since = ctx.timeline.now();
      const result = await echoRoundTrip(access(ctx).proxy, payload(), ctx.settings.readyWaitS * 1000 + 30_000);
      assert.ok(result.ok, `the client was not served: ${result.failure ?? ''} ${result.detail ?? ''}`);
      ctx.served++;
      const seen = ctx.timeline.replicasSince(since);
      assert.ok(seen.includes(1), `the StatefulSet was never scaled to 1 (saw ${transitions(seen)})`);
      ctx.figures.set('wake: connect at 0 to echo', seconds(result.elapsedMs));
      if (result.elapsedMs > 30_000) {
        ctx.diagnostics.push({ level: 'warning', title: 'slow wake-up', message: `the first client waited ${seconds(result.elapsedMs)} for buildkitd` });
      }
      return `echo after ${seconds(result.elapsedMs)} (held while the pod started); replicas seen: ${transitions(seen)}`;
    },
  },
  {
    name: 'open-connection-keeps-awake',
    promise: 'while a connection stays open past the idle timeout, buildkitd is not scaled down and the connection keeps working',
    async run(ctx) {
      const gw = access(ctx);
      const holdMs = (ctx.settings.idleTimeoutS + 5) * 1000;
      const since = ctx.timeline.now();
      // One long-lived connection: echo, wait past the idle timeout, echo again on the same socket.
      const socket = net.connect(gw.proxy.port, gw.proxy.host);
      const lines: string[] = [];
      let buffered = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        lines.push(...parts);
      });
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('error', () => undefined);
      try {
        const first = payload();
        socket.write(first);
        await ctx.timeline.until('the first echo on the long connection', () => lines.includes(first.trim()), ctx.settings.readyWaitS * 1000 + 30_000);
        await new Promise((resolve) => setTimeout(resolve, holdMs));
        const second = payload();
        socket.write(second);
        await ctx.timeline.until('the echo after the idle timeout', () => lines.includes(second.trim()), 15_000);
      } finally {
        socket.destroy();
        await closed;
      }
      ctx.served++;
      const seen = ctx.timeline.replicasSince(since);
      assert.ok(!seen.includes(0), `buildkitd was scaled to 0 under an open connection (replicas seen: ${transitions(seen)})`);
      return `one connection open ${seconds(holdMs)} (idle timeout ${ctx.settings.idleTimeoutS}s): still echoing, no scale-down`;
    },
  },
  {
    name: 'idle-scale-down',
    promise: 'after the last connection closes and the idle timeout passes, buildkitd goes back to 0, and not before',
    async run(ctx) {
      const closedAt = ctx.timeline.now();
      const zeroAt = await waitForZero(ctx, 'scale-down to 0');
      const after = zeroAt - closedAt;
      const scaleDownWrite = ctx.timeline.entries.find((e) => e.source === 'statefulset' && e.t >= closedAt && e.replicas === 0);
      const writeAfter = (scaleDownWrite?.t ?? zeroAt) - closedAt;
      assert.ok(writeAfter >= ctx.settings.idleTimeoutS * 1000 - 1000, `scaled to 0 after ${seconds(writeAfter)}, before the ${ctx.settings.idleTimeoutS}s idle timeout`);
      ctx.figures.set('last close to replicas=0 written', `${seconds(writeAfter)} (idle timeout ${ctx.settings.idleTimeoutS}s)`);
      return `replicas=0 written ${seconds(writeAfter)} after the last close; no pod left after ${seconds(after)}`;
    },
  },
  {
    name: 'burst-at-zero',
    promise: 'many clients connecting at once while buildkitd is at 0 are all held and all served; none is refused',
    async run(ctx) {
      assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
      const since = ctx.timeline.now();
      const results = await Promise.all(
        Array.from({ length: ctx.settings.burst }, () => echoRoundTrip(access(ctx).proxy, payload(), ctx.settings.readyWaitS * 1000 + 30_000)),
      );
      const ok = results.filter((r) => r.ok);
      ctx.served += ok.length;
      const failures = results.filter((r) => !r.ok).map((r) => `${r.failure ?? ''} ${r.detail ?? ''}`.trim());
      const slowest = Math.max(...results.map((r) => r.elapsedMs));
      ctx.figures.set(`burst: ${ctx.settings.burst} clients at 0, served`, `${ok.length}/${results.length}, slowest ${seconds(slowest)}`);
      const maxReplicas = Math.max(0, ...ctx.timeline.replicasSince(since));
      if (maxReplicas > 1) {
        ctx.diagnostics.push({ level: 'warning', title: 'burst scaled past 1', message: `${ctx.settings.burst} held clients scaled buildkitd to ${maxReplicas}` });
      }
      assert.equal(ok.length, results.length, `${failures.length} of ${results.length} clients failed: ${[...new Set(failures)].join('; ')}`);
      await waitForZero(ctx, 'scale-down after the burst');
      return `${ok.length}/${results.length} echoed, slowest ${seconds(slowest)}; highest replicas ${maxReplicas}; back to 0`;
    },
  },
  {
    name: 'metrics',
    promise: '/metrics counts what happened: the connections served and the scale writes',
    async run(ctx) {
      const { status, body } = await httpGet(access(ctx).metrics, '/metrics');
      assert.equal(status, 200);
      const connections = metricSum(body, 'bka_connections_total');
      const scaleOps = metricSum(body, 'bka_scale_operations_total');
      assert.ok(connections !== undefined && connections >= ctx.served, `bka_connections_total ${connections} < ${ctx.served} served`);
      assert.ok(scaleOps !== undefined && scaleOps >= 4, `bka_scale_operations_total ${scaleOps}: expected at least 2 wakes and 2 scale-downs`);
      return `bka_connections_total ${connections} (served ${ctx.served}), bka_scale_operations_total ${scaleOps}`;
    },
  },
  {
    name: 'never-ready',
    promise: 'when buildkitd never becomes ready, a held client is closed at its deadline and the gateway says why',
    async run(ctx) {
      const readyWaitS = 10;
      // A readiness probe on a port nothing listens on: the pod runs but never becomes Ready.
      await kubectlOk(ctx, ['patch', 'statefulset', STATEFULSET, '--type=json', '-p',
        '[{"op":"replace","path":"/spec/template/spec/containers/0/readinessProbe/tcpSocket/port","value":1}]']);
      await kubectlOk(ctx, ['set', 'env', 'deployment/buildkitd-autoscaler', `READY_WAIT_TIMEOUT=${readyWaitS}s`]);
      ctx.timeline.mark(`READY_WAIT_TIMEOUT=${readyWaitS}s, buildkitd readiness on port 1`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const gw = await connectToGateway(ctx);
      const result = await echoRoundTrip(gw.proxy, payload(), readyWaitS * 1000 + 60_000);
      assert.equal(result.ok, false, 'the client was served by a pod that is not ready');
      assert.notEqual(result.failure, 'timeout', `the client was not closed within ${readyWaitS + 60}s`);
      assert.ok(result.elapsedMs >= readyWaitS * 1000 - 500, `closed after ${seconds(result.elapsedMs)}, before the ${readyWaitS}s deadline`);
      const log = await ctx.backend.containerLog(ctx.namespace, ctx.gatewayPod ?? '', 'gateway');
      assert.match(log, /BKA_READY_TIMEOUT/, 'the gateway log does not name the cause (BKA_READY_TIMEOUT)');
      const { body } = await httpGet(gw.metrics, '/metrics');
      ctx.figures.set(`never ready: client closed after (deadline ${readyWaitS}s)`, seconds(result.elapsedMs));
      return `client ${result.failure ?? ''} after ${seconds(result.elapsedMs)}; log names BKA_READY_TIMEOUT; bka_errors_total ${metricSum(body, 'bka_errors_total') ?? 'absent'}`;
    },
  },
];
