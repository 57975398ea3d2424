// The gateway's pods as the scenarios see them: wait for every replica to be ready and open access to
// it, read each pod's /metrics and log, find the pod that splices a connection.
import assert from 'node:assert/strict';
import type { GatewayAccess } from '../backends.ts';
import { httpGet, metricSum } from '../clients.ts';
import { type Context, GATEWAY_SELECTOR, kubectlOk } from './context.ts';

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

/** Each ready gateway pod's /metrics, read from the pod itself (the Service would pick one replica). */
export async function metricsOfEachPod(ctx: Context): Promise<Map<string, string>> {
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
