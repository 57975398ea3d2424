// The E2E scenarios: what a user of the gateway is promised (ARCHITECTURE.md, "Failure behaviour"),
// checked through the shipped manifests on a real cluster. Each returns one line of what it observed;
// a failed expectation throws. They run in order and build on each other's state.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import type { Diagnostic } from '../../scripts/ci-report.ts';
import { run, runOk } from '../cluster/common.ts';
import type { Backend, Endpoint, GatewayAccess } from './backends.ts';
import { echoRoundTrip, http2Handshake, httpGet, metricSum } from './clients.ts';
import { ConnectionProber } from './connection-prober.ts';
import type { Timeline } from './timeline.ts';

export const GATEWAY_SELECTOR = 'app.kubernetes.io/name=buildkitd-autoscaler';
export const STATEFULSET = 'buildkitd';

export interface Settings {
  idleTimeoutS: number;
  readyWaitS: number;
  burst: number;
  /** endpoints or dns (BUILDKITD_BACKEND_DISCOVERY). */
  discovery: string;
  /** mock: socat echo in place of buildkitd; real: the example's moby/buildkit, driven with buildctl. */
  buildkitd: 'mock' | 'real';
  /** kustomize: deploy/kubernetes; helm: charts/buildkitd-autoscaler. */
  install: 'kustomize' | 'helm';
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
  /** The ready gateway pods (the Deployment may run several replicas); gatewayPod is the first. */
  gatewayPods: string[];
  gatewayPod?: string;
}

export interface Scenario {
  name: string;
  promise: string;
  run(ctx: Context): Promise<string>;
}

export async function kubectlOk(ctx: Context, args: string[], input?: string): Promise<string> {
  const r = await ctx.backend.kubectl(['-n', ctx.namespace, ...args], input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The gateway pods that are Ready and not terminating. */
async function readyGatewayPods(ctx: Context): Promise<{ ready: string[]; all: number }> {
  const pods = JSON.parse(await kubectlOk(ctx, ['get', 'pods', '-l', GATEWAY_SELECTOR, '-o', 'json'])) as {
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status?: { conditions?: { type: string; status: string }[] };
    }[];
  };
  const ready = pods.items
    .filter(
      (p) =>
        !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    )
    .map((p) => p.metadata.name)
    .sort();
  return { ready, all: pods.items.length };
}

/** Waits for the gateway Deployment to be available with all its replicas ready and (re)opens access to it. */
export async function connectToGateway(ctx: Context): Promise<GatewayAccess> {
  await kubectlOk(ctx, ['rollout', 'status', 'deployment/buildkitd-autoscaler', '--timeout=240s']);
  const desired = Number(
    (await kubectlOk(ctx, ['get', 'deployment/buildkitd-autoscaler', '-o', 'jsonpath={.spec.replicas}'])).trim() || '1',
  );
  const podsDeadline = Date.now() + 60_000;
  let pods = await readyGatewayPods(ctx);
  while (pods.ready.length !== desired) {
    assert.ok(
      Date.now() < podsDeadline,
      `expected ${desired} ready gateway pods, found ${pods.ready.length} of ${pods.all} for 60s`,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    pods = await readyGatewayPods(ctx);
  }
  const { ready } = pods;
  ctx.access?.close();
  ctx.gatewayPods = ready;
  ctx.gatewayPod = ready[0];
  const gw = await ctx.backend.gatewayAccess(ctx.namespace, ready[0] ?? '');
  ctx.access = gw;
  // The Service may still point at nothing for a moment after a new pod got Ready.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await httpGet(gw.metrics, '/readyz').then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`/readyz of ${ready[0] ?? ''} answered ${status} for 60s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return gw;
}

export function access(ctx: Context): GatewayAccess {
  assert.ok(ctx.access, 'the gateway is not reachable (install failed)');
  return ctx.access;
}

export async function waitForZero(ctx: Context, what: string): Promise<number> {
  const timeout = (ctx.settings.idleTimeoutS + 120) * 1000;
  return ctx.timeline.until(what, () => ctx.timeline.replicas === 0 && ctx.timeline.readyReplicas === 0, timeout);
}

/** Replica counts as transitions: 0 → 1 → 0, without repeats from readiness-only updates. */
export function transitions(counts: number[]): string {
  return counts.filter((n, i) => i === 0 || counts[i - 1] !== n).join(' → ') || 'nothing';
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

let payloadCounter = 0;
function payload(): string {
  return `e2e-${process.pid}-${++payloadCounter}-${Math.random().toString(36).slice(2)}\n`;
}

/** One long-lived client connection to the echo mock, line by line. */
function lineClient(endpoint: Endpoint) {
  const socket = net.connect(endpoint.port, endpoint.host);
  const lines: string[] = [];
  let buffered = '';
  let closedByPeer = false;
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  socket.on('end', () => (closedByPeer = true));
  socket.on('error', () => (closedByPeer = true));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    lines,
    get closedByPeer() {
      return closedByPeer;
    },
    /** Sends a fresh line and resolves when the same line came back. */
    async echo(ctx: Context, what: string, timeoutMs: number): Promise<void> {
      const line = payload();
      socket.write(line);
      await ctx.timeline.until(what, () => lines.includes(line.trim()) || closedByPeer, timeoutMs);
      assert.ok(lines.includes(line.trim()), `${what}: the connection was closed by the gateway`);
    },
    async close(): Promise<void> {
      socket.destroy();
      await closed;
    },
  };
}

/** Each ready gateway pod's /metrics, read from the pod itself (the Service would pick one replica). */
async function metricsOfEachPod(ctx: Context): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const pod of ctx.gatewayPods) {
    const pa = await ctx.backend.podAccess(ctx.namespace, pod);
    try {
      const { status, body } = await httpGet(pa.metrics, '/metrics').catch(() => ({ status: 0, body: '' }));
      out.set(pod, status === 200 ? body : '');
    } finally {
      pa.close();
    }
  }
  return out;
}

/**
 * The gateway pod splicing the one open connection (open, none held), once exactly one pod has it;
 * `ended` says why the client is gone, if it is.
 */
export async function podCarryingConnection(
  ctx: Context,
  what: string,
  ended: () => string | undefined,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const carrying = [...(await metricsOfEachPod(ctx))]
      .filter(([, m]) => (metricSum(m, 'bka_connections_open') ?? 0) >= 1 && metricSum(m, 'bka_connections_held') === 0)
      .map(([pod]) => pod);
    if (carrying.length === 1 && carrying[0]) return carrying[0];
    const gone = ended();
    assert.ok(
      gone === undefined,
      `${what} ended before its connection was seen open on one gateway pod: ${gone ?? ''}`,
    );
    assert.ok(
      Date.now() < deadline,
      `${what}: no single gateway pod splices its connection (seen on ${carrying.join(', ') || 'none'})`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Waits until any ready gateway pod's log matches (with several replicas, the one that served the client). */
export async function waitForLog(ctx: Context, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const logs = async () =>
    (await Promise.all(ctx.gatewayPods.map((pod) => ctx.backend.containerLog(ctx.namespace, pod, 'gateway')))).join(
      '\n',
    );
  while (!pattern.test(await logs())) {
    assert.ok(Date.now() < deadline, `the gateway log does not show ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const install: Scenario = {
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
};

const idleScaleDown: Scenario = {
  name: 'idle-scale-down',
  promise: 'after the last connection closes and the idle timeout passes, buildkitd goes back to 0, and not before',
  async run(ctx) {
    const closedAt = ctx.timeline.now();
    const zeroAt = await waitForZero(ctx, 'scale-down to 0');
    const after = zeroAt - closedAt;
    const scaleDownWrite = ctx.timeline.entries.find(
      (e) => e.source === 'statefulset' && e.t >= closedAt && e.replicas === 0,
    );
    const writeAfter = (scaleDownWrite?.t ?? zeroAt) - closedAt;
    assert.ok(
      writeAfter >= ctx.settings.idleTimeoutS * 1000 - 1000,
      `scaled to 0 after ${seconds(writeAfter)}, before the ${ctx.settings.idleTimeoutS}s idle timeout`,
    );
    ctx.figures.set(
      'last close to replicas=0 written',
      `${seconds(writeAfter)} (idle timeout ${ctx.settings.idleTimeoutS}s)`,
    );
    return `replicas=0 written ${seconds(writeAfter)} after the last close; no pod left after ${seconds(after)}`;
  },
};

export const SCENARIOS: Scenario[] = [
  install,
  {
    name: 'seed-guide',
    promise:
      "the seed's E2E guide, automated: buildkitd (socat echo) at 0; a client connects and is held; buildkitd is scaled to 1; its bytes are echoed; it disconnects; after the idle timeout buildkitd is back at 0",
    async run(ctx) {
      assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
      const since = ctx.timeline.now();
      const client = lineClient(access(ctx).proxy);
      try {
        await client.echo(ctx, 'the echo through the gateway at 0 replicas', ctx.settings.readyWaitS * 1000 + 30_000);
      } finally {
        await client.close();
      }
      const echoedAfter = ctx.timeline.now() - since;
      ctx.served++;
      const closedAt = ctx.timeline.now();
      ctx.timeline.mark('seed guide: client disconnected');
      const seenWhileOpen = ctx.timeline.replicasSince(since);
      assert.ok(seenWhileOpen.includes(1), `the StatefulSet was never scaled to 1 (saw ${transitions(seenWhileOpen)})`);
      const zeroAt = await waitForZero(ctx, 'scale-down to 0 after the disconnect');
      const write = ctx.timeline.entries.find((e) => e.source === 'statefulset' && e.t >= closedAt && e.replicas === 0);
      const writeAfter = (write?.t ?? zeroAt) - closedAt;
      assert.ok(
        writeAfter >= ctx.settings.idleTimeoutS * 1000 - 1000,
        `scaled to 0 ${seconds(writeAfter)} after the disconnect, before the ${ctx.settings.idleTimeoutS}s idle timeout`,
      );
      ctx.figures.set(
        'seed guide: connect at 0 to echo / disconnect to replicas=0 written',
        `${seconds(echoedAfter)} / ${seconds(writeAfter)} (idle timeout ${ctx.settings.idleTimeoutS}s)`,
      );
      if (echoedAfter > 30_000) {
        ctx.diagnostics.push({
          level: 'warning',
          title: 'slow wake-up',
          message: `the first client waited ${seconds(echoedAfter)} for buildkitd`,
        });
      }
      return `held and echoed after ${seconds(echoedAfter)}; replicas ${transitions([0, ...ctx.timeline.replicasSince(since)])}; 0 written ${seconds(writeAfter)} after the disconnect`;
    },
  },
  {
    name: 'open-connection-keeps-awake',
    promise:
      'while a connection stays open past the idle timeout, buildkitd is not scaled down and the connection keeps working',
    async run(ctx) {
      const gw = access(ctx);
      const holdMs = (ctx.settings.idleTimeoutS + 5) * 1000;
      const since = ctx.timeline.now();
      // One long-lived connection: echo, wait past the idle timeout, echo again on the same socket.
      const client = lineClient(gw.proxy);
      try {
        await client.echo(ctx, 'the first echo on the long connection', ctx.settings.readyWaitS * 1000 + 30_000);
        await new Promise((resolve) => setTimeout(resolve, holdMs));
        await client.echo(ctx, 'the echo after the idle timeout', 15_000);
      } finally {
        await client.close();
      }
      ctx.served++;
      const seen = ctx.timeline.replicasSince(since);
      assert.ok(
        !seen.includes(0),
        `buildkitd was scaled to 0 under an open connection (replicas seen: ${transitions(seen)})`,
      );
      ctx.figures.set(
        'open connection held past the idle timeout',
        `${seconds(holdMs)}, no scale-down (idle timeout ${ctx.settings.idleTimeoutS}s)`,
      );
      return `one connection open ${seconds(holdMs)} (idle timeout ${ctx.settings.idleTimeoutS}s): still echoing, no scale-down`;
    },
  },
  idleScaleDown,
  {
    name: 'concurrent-cold-start',
    promise:
      'many clients connecting at once while buildkitd is at 0 (a cold start) are all held and all served; none is refused',
    async run(ctx) {
      assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
      const since = ctx.timeline.now();
      const results = await Promise.all(
        Array.from({ length: ctx.settings.burst }, () =>
          echoRoundTrip(access(ctx).proxy, payload(), ctx.settings.readyWaitS * 1000 + 30_000),
        ),
      );
      const ok = results.filter((r) => r.ok);
      ctx.served += ok.length;
      const failures = results.filter((r) => !r.ok).map((r) => `${r.failure ?? ''} ${r.detail ?? ''}`.trim());
      const slowest = Math.max(...results.map((r) => r.elapsedMs));
      ctx.figures.set(
        `burst: ${ctx.settings.burst} clients at 0, served`,
        `${ok.length}/${results.length}, slowest ${seconds(slowest)}`,
      );
      const maxReplicas = Math.max(0, ...ctx.timeline.replicasSince(since));
      if (maxReplicas > 1) {
        ctx.diagnostics.push({
          level: 'warning',
          title: 'burst scaled past 1',
          message: `${ctx.settings.burst} held clients scaled buildkitd to ${maxReplicas}`,
        });
      }
      assert.equal(
        ok.length,
        results.length,
        `${failures.length} of ${results.length} clients failed: ${[...new Set(failures)].join('; ')}`,
      );
      await waitForZero(ctx, 'scale-down after the burst');
      return `${ok.length}/${results.length} echoed, slowest ${seconds(slowest)}; highest replicas ${maxReplicas}; back to 0`;
    },
  },
  {
    name: 'metrics',
    promise: '/metrics counts what happened: the connections served and the scale writes',
    async run(ctx) {
      // Each replica counts what it did: the sum over the pods is what the gateway did.
      const perPod = [...(await metricsOfEachPod(ctx)).values()];
      assert.ok(perPod.length > 0 && perPod.every((m) => m !== ''), 'a gateway pod did not answer /metrics');
      const sum = (name: string) =>
        perPod.reduce<number | undefined>((acc, m) => {
          const v = metricSum(m, name);
          return v === undefined ? acc : (acc ?? 0) + v;
        }, undefined);
      const connections = sum('bka_connections_total');
      const scaleOps = sum('bka_scale_operations_total');
      assert.ok(
        connections !== undefined && connections >= ctx.served,
        `bka_connections_total ${connections} < ${ctx.served} served`,
      );
      assert.ok(
        scaleOps !== undefined && scaleOps >= 4,
        `bka_scale_operations_total ${scaleOps}: expected at least 2 wakes and 2 scale-downs`,
      );
      ctx.figures.set(
        '/metrics: connections counted / served by the E2E',
        `${connections} / ${ctx.served}; scale writes ${scaleOps}`,
      );
      // The memory limit in the manifests is sized from this figure (the largest replica); warn before it gets tight.
      const rssPerPod = perPod
        .map((m) => metricSum(m, 'bka_process_resident_memory_bytes'))
        .filter((v) => v !== undefined);
      const rss = rssPerPod.length > 0 ? Math.max(...rssPerPod) : undefined;
      const limit = (
        await kubectlOk(ctx, [
          'get',
          'deployment/buildkitd-autoscaler',
          '-o',
          'jsonpath={.spec.template.spec.containers[0].resources.limits.memory}',
        ])
      ).trim();
      const limitBytes = /^(\d+)Mi$/.test(limit) ? Number(limit.slice(0, -2)) * 2 ** 20 : undefined;
      if (rss !== undefined) {
        ctx.figures.set(
          'gateway resident memory after the burst',
          `${(rss / 2 ** 20).toFixed(0)} MiB of a ${limit || 'unset'} limit`,
        );
        if (limitBytes && rss > 0.8 * limitBytes) {
          ctx.diagnostics.push({
            level: 'warning',
            title: 'gateway memory',
            message: `resident ${(rss / 2 ** 20).toFixed(0)} MiB is over 80% of the ${limit} limit`,
          });
        }
      }
      return `bka_connections_total ${connections} (served ${ctx.served}), bka_scale_operations_total ${scaleOps}`;
    },
  },
  {
    name: 'drain-on-sigterm',
    promise:
      'when the gateway pod is deleted (rollout, node drain), an open connection keeps working until the client closes it',
    async run(ctx) {
      const gw = access(ctx);
      const client = lineClient(gw.proxy);
      let closedAt = 0;
      let oldPod = '';
      try {
        await client.echo(ctx, 'the echo before SIGTERM', ctx.settings.readyWaitS * 1000 + 30_000);
        oldPod = await podCarryingConnection(
          ctx,
          'the echo connection',
          () => (client.closedByPeer ? 'closed by the gateway' : undefined),
          30_000,
        );
        await kubectlOk(ctx, ['delete', 'pod', oldPod, '--wait=false']);
        ctx.timeline.mark(`deleted gateway pod ${oldPod} (SIGTERM) with a connection open`);
        await new Promise((resolve) => setTimeout(resolve, 5000));
        await client.echo(ctx, 'the echo 5s after SIGTERM', 15_000);
        assert.equal(client.closedByPeer, false, 'the gateway closed the connection while draining');
      } finally {
        await client.close();
        closedAt = ctx.timeline.now();
        ctx.timeline.mark('client closed the draining connection');
      }
      ctx.served++;
      const gone = await ctx.timeline.until(
        `${oldPod} to exit`,
        () => ctx.timeline.entries.some((e) => e.source === 'pod' && e.text === `${oldPod}: deleted`),
        60_000,
      );
      ctx.figures.set('draining gateway gone after its last connection closed', seconds(gone - closedAt));
      await connectToGateway(ctx);
      return `echo 5s after SIGTERM on the open connection; old pod gone ${seconds(gone - closedAt)} after the client closed; new gateway ${ctx.gatewayPod ?? ''} ready`;
    },
  },
  {
    name: 'rbac-denied',
    promise:
      'when RBAC forbids the scale write, a held client fails fast (not at READY_WAIT_TIMEOUT), the log names BKA_SCALE_FORBIDDEN and /readyz says why',
    async run(ctx) {
      await waitForZero(ctx, 'buildkitd at 0 before the permission is taken away');
      const role = JSON.parse(await kubectlOk(ctx, ['get', 'role', 'buildkitd-autoscaler', '-o', 'json'])) as {
        rules: { resources?: string[] }[];
      };
      const index = role.rules.findIndex((r) => r.resources?.includes('statefulsets/scale'));
      assert.ok(index >= 0, 'the gateway Role has no statefulsets/scale rule');
      const rule = role.rules[index];
      const subject = `system:serviceaccount:${ctx.namespace}:buildkitd-autoscaler`;
      const canScale = async () =>
        (
          await ctx.backend.kubectl([
            '-n',
            ctx.namespace,
            'auth',
            'can-i',
            'patch',
            'statefulsets',
            '--subresource=scale',
            '--as',
            subject,
          ])
        ).stdout.trim();
      await kubectlOk(ctx, [
        'patch',
        'role',
        'buildkitd-autoscaler',
        '--type=json',
        '-p',
        JSON.stringify([
          { op: 'test', path: `/rules/${index}`, value: rule },
          { op: 'remove', path: `/rules/${index}` },
        ]),
      ]);
      ctx.timeline.mark('Role: the statefulsets/scale rule removed');
      try {
        const deadline = Date.now() + 15_000;
        while ((await canScale()) !== 'no') {
          assert.ok(
            Date.now() < deadline,
            'kubectl auth can-i still allows the scale write 15s after the rule was removed',
          );
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        const gw = access(ctx);
        const result = await echoRoundTrip(gw.proxy, payload(), ctx.settings.readyWaitS * 1000 + 30_000);
        assert.equal(result.ok, false, 'the client was served although the gateway may not scale');
        assert.notEqual(result.failure, 'timeout', 'the client was not closed');
        assert.ok(
          result.elapsedMs < 15_000,
          `the held client was closed only after ${seconds(result.elapsedMs)} (READY_WAIT_TIMEOUT ${ctx.settings.readyWaitS}s)`,
        );
        await waitForLog(ctx, /BKA_SCALE_FORBIDDEN/, 'BKA_SCALE_FORBIDDEN');
        assert.equal(ctx.timeline.replicas, 0, 'buildkitd was scaled although the write is forbidden');
        // A re-check confirms the failure before /readyz turns red (a one-off 403 must not flap the pod); then it
        // stays. With several replicas the Service may answer from one that never tried to scale: ask each pod
        // whose own log names the failure.
        const failing: string[] = [];
        for (const pod of ctx.gatewayPods) {
          if (/BKA_SCALE_FORBIDDEN/.test(await ctx.backend.containerLog(ctx.namespace, pod, 'gateway')))
            failing.push(pod);
        }
        assert.ok(failing.length > 0, 'no gateway pod logged BKA_SCALE_FORBIDDEN');
        let readyz = { status: 0, body: '' };
        for (const pod of failing) {
          const pa = await ctx.backend.podAccess(ctx.namespace, pod);
          try {
            const readyzDeadline = Date.now() + 30_000;
            readyz = await httpGet(pa.metrics, '/readyz');
            while (!(readyz.status === 503 && readyz.body.includes('BKA_SCALE_FORBIDDEN'))) {
              assert.ok(
                Date.now() < readyzDeadline,
                `/readyz of ${pod} does not report BKA_SCALE_FORBIDDEN 30s after the failure: ${readyz.status} ${readyz.body.trim().slice(0, 200)}`,
              );
              await new Promise((resolve) => setTimeout(resolve, 500));
              readyz = await httpGet(pa.metrics, '/readyz');
            }
          } finally {
            pa.close();
          }
        }
        const readyzSays = `/readyz ${readyz.status} naming BKA_SCALE_FORBIDDEN on ${failing.join(', ')}`;
        ctx.figures.set(
          'RBAC denied: held client closed after',
          `${Math.round(result.elapsedMs)}ms (${result.failure ?? ''}; READY_WAIT_TIMEOUT ${ctx.settings.readyWaitS}s)`,
        );
        return `client ${result.failure ?? ''} after ${Math.round(result.elapsedMs)}ms; log names BKA_SCALE_FORBIDDEN; ${readyzSays}; StatefulSet stayed at 0`;
      } finally {
        await kubectlOk(ctx, [
          'patch',
          'role',
          'buildkitd-autoscaler',
          '--type=json',
          '-p',
          JSON.stringify([{ op: 'add', path: `/rules/${index}`, value: rule }]),
        ]);
        ctx.timeline.mark('Role restored');
      }
    },
  },
  {
    name: 'never-ready',
    promise: 'when buildkitd never becomes ready, a held client is closed at its deadline and the gateway says why',
    async run(ctx) {
      const readyWaitS = 10;
      // A readiness probe on a port nothing listens on: the pod runs but never becomes Ready.
      await kubectlOk(ctx, [
        'patch',
        'statefulset',
        STATEFULSET,
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/template/spec/containers/0/readinessProbe/tcpSocket/port","value":1}]',
      ]);
      await kubectlOk(ctx, ['set', 'env', 'deployment/buildkitd-autoscaler', `READY_WAIT_TIMEOUT=${readyWaitS}s`]);
      ctx.timeline.mark(`READY_WAIT_TIMEOUT=${readyWaitS}s, buildkitd readiness on port 1`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const gw = await connectToGateway(ctx);
      const result = await echoRoundTrip(gw.proxy, payload(), readyWaitS * 1000 + 60_000);
      assert.equal(result.ok, false, 'the client was served by a pod that is not ready');
      assert.notEqual(result.failure, 'timeout', `the client was not closed within ${readyWaitS + 60}s`);
      assert.ok(
        result.elapsedMs >= readyWaitS * 1000 - 500,
        `closed after ${seconds(result.elapsedMs)}, before the ${readyWaitS}s deadline`,
      );
      // The log line may land just after the socket closed (asynchronous logging): give it a moment.
      await waitForLog(ctx, /BKA_READY_TIMEOUT/, 'the cause (BKA_READY_TIMEOUT)');
      const { body } = await httpGet(gw.metrics, '/metrics');
      ctx.figures.set(`never ready: client closed after (deadline ${readyWaitS}s)`, seconds(result.elapsedMs));
      return `client ${result.failure ?? ''} after ${seconds(result.elapsedMs)}; log names BKA_READY_TIMEOUT; bka_errors_total ${metricSum(body, 'bka_errors_total') ?? 'absent'}`;
    },
  },
];

/** A real build through the gateway: buildctl wakes buildkitd, builds a FROM scratch image offline. */
const realBuild: Scenario = {
  name: 'real-build',
  promise:
    'buildctl through the gateway at 0 replicas wakes buildkitd and completes a build (gRPC over the spliced connection)',
  async run(ctx) {
    assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
    const gw = access(ctx);
    const addr = `tcp://${gw.proxy.host}:${gw.proxy.port}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-build-'));
    try {
      const marker = `built through the gateway ${Date.now()}\n`;
      await writeFile(path.join(dir, 'hello.txt'), marker);
      // No `# syntax=` line: the built-in frontend needs nothing from a registry.
      await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
      await mkdir(path.join(dir, 'out'));
      const started = performance.now();
      const timeout = String(ctx.settings.readyWaitS + 30);
      const workers = await run('buildctl', ['--addr', addr, '--timeout', timeout, 'debug', 'workers']);
      assert.equal(workers.code, 0, `buildctl debug workers: ${workers.stderr.trim()}`);
      const woke = performance.now() - started;
      const build = await run('buildctl', [
        '--addr',
        addr,
        '--timeout',
        timeout,
        'build',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${dir}`,
        '--local',
        `dockerfile=${dir}`,
        '--output',
        `type=local,dest=${path.join(dir, 'out')}`,
      ]);
      assert.equal(build.code, 0, `buildctl build: ${build.stderr.trim().split('\n').slice(-5).join(' / ')}`);
      assert.equal(
        await readFile(path.join(dir, 'out', 'hello.txt'), 'utf8'),
        marker,
        'the build output is not the file that was built',
      );
      ctx.served += 2;
      ctx.figures.set('real buildkitd: connect at 0 to `debug workers` answered', seconds(woke));
      ctx.figures.set(
        'real build (FROM scratch + COPY) through the gateway',
        seconds(performance.now() - started - woke),
      );
      return `debug workers answered after ${seconds(woke)} (wake included); build output matches`;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

/** Writes `bytes` of random data to file in 1 MiB pieces; returns its sha256. */
export async function randomFile(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  for (let left = bytes; left > 0; left -= 2 ** 20) {
    const chunk = randomBytes(Math.min(left, 2 ** 20));
    hash.update(chunk);
    chunks.push(chunk);
  }
  await writeFile(file, chunks);
  return hash.digest('hex');
}

/**
 * A build whose output the client reads at `bytesPerSecond` (`--output type=tar,dest=-`): buildkitd's
 * export is paced by flow control through the gateway, so the build's one connection streams for as
 * long as the client takes, without a registry or a RUN step. Resolves when buildctl exits.
 */
export function slowTarBuild(
  addr: string,
  dir: string,
  tarFile: string,
  bytesPerSecond: number,
  timeoutS: number,
): Promise<{ code: number; stderr: string }> {
  const child = spawn(
    'buildctl',
    [
      '--addr',
      addr,
      '--timeout',
      String(timeoutS),
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${dir}`,
      '--local',
      `dockerfile=${dir}`,
      '--output',
      'type=tar,dest=-',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<number>((resolve) => {
    child.on('error', (error) => {
      stderr += `cannot run buildctl: ${error.message}`;
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const reading = (async () => {
    const out = createWriteStream(tarFile);
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      if (!out.write(chunk)) await once(out, 'drain');
      await new Promise((resolve) => setTimeout(resolve, (chunk.length / bytesPerSecond) * 1000));
    }
    out.end();
    await once(out, 'finish');
  })();
  return Promise.all([exited, reading]).then(([code]) => ({ code, stderr }));
}

/** How fast the HA scenarios' client reads the build output: slow enough to outlast the idle timeout. */
export const HA_BUILD_BYTES_PER_SECOND = 2 * 2 ** 20;
/** The gateway's drain before SHUTDOWN_GRACE_PERIOD became 1h: the HA builds outlast it after the disruption. */
export const OLD_SHUTDOWN_GRACE_S = 30;
/** A new connection this often during the disruption, as the issue asks. */
const HA_PROBE_INTERVAL_MS = 200;

type Disruption = 'rollout restart' | 'delete pod';

/**
 * A real build longer than the idle timeout streams through the gateway Service while a client opens a
 * new connection every 200 ms; then the gateway is disrupted (every pod rolled, or the pod carrying the
 * build deleted). Every new connection is served, the build completes with its output intact, buildkitd
 * is never scaled to 0 under it, and the gateway converges to 0 once idle.
 */
async function disruptDuringBuild(ctx: Context, disruption: Disruption): Promise<string> {
  // A scenario before may have left other gateway pods than the ones last seen.
  const gw = await connectToGateway(ctx);
  await waitForZero(ctx, 'buildkitd at 0 before the build');
  const addr = `tcp://${gw.proxy.host}:${gw.proxy.port}`;
  const dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-ha-'));
  let prober: ConnectionProber | undefined;
  try {
    // The client reads the output for the idle timeout plus 10 s, and long enough to outlast the old 30 s drain.
    const buildBytes = HA_BUILD_BYTES_PER_SECOND * Math.max(ctx.settings.idleTimeoutS + 10, OLD_SHUTDOWN_GRACE_S + 15);
    const sha = await randomFile(path.join(dir, 'big.bin'), buildBytes);
    await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY big.bin /big.bin\n');
    const tarFile = path.join(dir, 'out.tar');
    let buildDoneAt: number | undefined;
    let buildError = '';
    const started = ctx.timeline.now();
    const building = slowTarBuild(addr, dir, tarFile, HA_BUILD_BYTES_PER_SECOND, ctx.settings.readyWaitS + 30).then(
      (r) => {
        buildDoneAt = ctx.timeline.now();
        buildError = r.code === 0 ? '' : `: exit ${r.code}, ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`;
        return r;
      },
    );
    const carrier = await podCarryingConnection(
      ctx,
      'the build',
      () => (buildDoneAt === undefined ? undefined : `exit${buildError}`),
      ctx.settings.readyWaitS * 1000 + 30_000,
    );
    ctx.timeline.mark(`the build's connection is spliced by ${carrier}`);

    prober = new ConnectionProber({
      endpoint: gw.proxy,
      check: http2Handshake,
      now: () => ctx.timeline.now(),
      intervalMs: HA_PROBE_INTERVAL_MS,
      timeoutMs: 30_000,
    });
    prober.start();
    const disruptedAt = ctx.timeline.now();
    if (disruption === 'rollout restart')
      await kubectlOk(ctx, ['rollout', 'restart', 'deployment/buildkitd-autoscaler']);
    else await kubectlOk(ctx, ['delete', 'pod', carrier, '--wait=false']);
    ctx.timeline.mark(`kubectl ${disruption} with the build open through ${carrier}`);
    const terminatingAt = await ctx.timeline.until(
      `${carrier} terminating`,
      () => ctx.timeline.entries.some((e) => e.source === 'pod' && e.text === `${carrier}: terminating`),
      120_000,
    );

    const build = await building;
    const doneAt = buildDoneAt ?? ctx.timeline.now();
    ctx.timeline.mark(`buildctl exited ${build.code}`);
    assert.equal(build.code, 0, `the build failed across the ${disruption}${buildError}`);
    assert.ok(
      terminatingAt < doneAt,
      `the build finished before ${carrier} began terminating, so the ${disruption} did not overlap it`,
    );
    const extracted = path.join(dir, 'out');
    await mkdir(extracted);
    await runOk('tar', ['-xf', tarFile, '-C', extracted]);
    const out = createHash('sha256')
      .update(await readFile(path.join(extracted, 'big.bin')))
      .digest('hex');
    assert.equal(out, sha, 'the build output differs from the build context');
    ctx.served++;
    const buildMs = doneAt - started;
    assert.ok(
      buildMs > ctx.settings.idleTimeoutS * 1000,
      `the build took ${seconds(buildMs)}, not longer than the ${ctx.settings.idleTimeoutS}s idle timeout`,
    );
    assert.ok(
      doneAt - terminatingAt > OLD_SHUTDOWN_GRACE_S * 1000,
      `the build ended ${seconds(doneAt - terminatingAt)} after SIGTERM, within the old ${OLD_SHUTDOWN_GRACE_S}s grace: it proves nothing about the drain`,
    );

    const goneAt = await ctx.timeline.until(
      `${carrier} to exit`,
      () => ctx.timeline.entries.some((e) => e.source === 'pod' && e.text === `${carrier}: deleted`),
      120_000,
    );
    await connectToGateway(ctx);
    assert.ok(!ctx.gatewayPods.includes(carrier), `${carrier} is still a ready gateway pod`);
    const probes = await prober.stop();
    prober = undefined;
    ctx.served += probes.served;

    // Once buildkitd was up for the build, it stays up until the build is done.
    const during = ctx.timeline.entries
      .filter((e) => e.source === 'statefulset' && e.t >= started && e.t <= doneAt)
      .map((e) => e.replicas ?? 0);
    const firstUp = during.findIndex((n) => n > 0);
    assert.ok(
      firstUp >= 0 && !during.slice(firstUp).includes(0),
      `buildkitd was scaled to 0 during the build (replicas seen: ${transitions(during)})`,
    );
    const name = disruption === 'rollout restart' ? 'rollout restart' : 'delete pod of the build';
    ctx.figures.set(
      `${name}: new connections every ${HA_PROBE_INTERVAL_MS} ms served / attempted`,
      `${probes.served}/${probes.attempted}, longest connect to served ${Math.round(probes.longestMs)} ms`,
    );
    ctx.figures.set(
      `${name}: build through the gateway (${buildBytes / 2 ** 20} MiB read at ${HA_BUILD_BYTES_PER_SECOND / 2 ** 20} MiB/s)`,
      `${seconds(buildMs)} (idle timeout ${ctx.settings.idleTimeoutS}s), output sha256 matches`,
    );
    ctx.figures.set(
      `${name}: pod carrying the build, terminating to gone`,
      `${seconds(goneAt - terminatingAt)} (build done ${seconds(doneAt - terminatingAt)} after SIGTERM)`,
    );
    // The figures first, so REPORT.md has them when a connection failed.
    const failures = probes.failed.map((r) =>
      `${seconds(r.startedAt - disruptedAt)} after the ${disruption}: ${r.failure ?? ''} ${r.detail ?? ''}`.trim(),
    );
    assert.equal(
      probes.failed.length,
      0,
      `${probes.failed.length} of ${probes.attempted} new connections were not served: ${failures.slice(0, 5).join('; ')}`,
    );
    const zeroAt = await waitForZero(ctx, 'the gateway replicas to scale the idle buildkitd to 0');
    ctx.figures.set(
      `${name}: build done to buildkitd at 0`,
      `${seconds(zeroAt - doneAt)} (idle timeout ${ctx.settings.idleTimeoutS}s)`,
    );
    return (
      `${probes.served}/${probes.attempted} new connections served (longest ${Math.round(probes.longestMs)} ms); build ${seconds(buildMs)}, output sha256 matches; ` +
      `${carrier} terminating ${seconds(doneAt - terminatingAt)} before the build finished, gone ${seconds(goneAt - terminatingAt)} after SIGTERM; ` +
      `replicas ${transitions(during)} during the build; gateway ${ctx.gatewayPods.join(', ')} ready, buildkitd at 0 ${seconds(zeroAt - doneAt)} after the build`
    );
  } finally {
    await prober?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const haRolloutRestartDuringBuild: Scenario = {
  name: 'ha-rollout-restart-during-build',
  promise:
    '`kubectl rollout restart` of the gateway while a build longer than the idle timeout, and running on for more than the old 30 s grace after SIGTERM, streams through it and a client opens a new connection every 200 ms: every connection is served, none refused or cut; the build output is intact (sha256); buildkitd is not scaled to 0 under it',
  run: (ctx) => disruptDuringBuild(ctx, 'rollout restart'),
};

const haDeletePodDuringBuild: Scenario = {
  name: 'ha-delete-pod-during-build',
  promise:
    '`kubectl delete pod` of the gateway replica carrying a build longer than the idle timeout, while a client opens a new connection every 200 ms: every connection is served, none refused or cut; the build output is intact; buildkitd is not scaled to 0 under it',
  run: (ctx) => disruptDuringBuild(ctx, 'delete pod'),
};

export const REAL_SCENARIOS: Scenario[] = [
  install,
  realBuild,
  idleScaleDown,
  haRolloutRestartDuringBuild,
  haDeletePodDuringBuild,
];
