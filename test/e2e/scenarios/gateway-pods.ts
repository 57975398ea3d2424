// The gateway's pods as the scenarios see them: wait for every replica to be ready and open access to
// it, read each pod's /metrics and log, find the pod that splices a connection.
import type { GatewayAccess } from '../backends.ts';
import { metricSum } from '../../support/prom-text.ts';
import { httpGet } from '../clients.ts';
import { waitFor } from '../../support/wait.ts';
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
  const ready = await waitFor(
    `${desired} ready gateway pods`,
    async () => {
      const pods = await readyGatewayPods(ctx);
      if (pods.ready.length !== desired) throw new Error(`found ${pods.ready.length} ready of ${pods.all}`);
      return pods.ready;
    },
    60_000,
    500,
  );
  ctx.access?.close();
  ctx.gatewayPods = ready;
  ctx.gatewayPod = ready[0];
  const gw = await ctx.backend.gatewayAccess(ctx.namespace, ready[0] ?? '');
  ctx.access = gw;
  // The Service may still point at nothing for a moment after a new pod got Ready.
  await waitFor(
    `/readyz of ${ready[0] ?? ''} to answer 200`,
    async () => {
      const status = await httpGet(gw.metrics, '/readyz').then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) throw new Error(`answered ${status}`);
      return true;
    },
    60_000,
    500,
  );
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
  return waitFor(
    `${what}'s connection to be seen open on one gateway pod`,
    async () => {
      const carrying = [...(await metricsOfEachPod(ctx))]
        .filter(
          ([, m]) => (metricSum(m, 'bka_connections_open') ?? 0) >= 1 && metricSum(m, 'bka_connections_held') === 0,
        )
        .map(([pod]) => pod);
      if (carrying.length === 1 && carrying[0]) return carrying[0];
      throw new Error(`no single gateway pod splices its connection (seen on ${carrying.join(', ') || 'none'})`);
    },
    timeoutMs,
    200,
    () => {
      const gone = ended();
      return gone === undefined ? undefined : `${what} ended: ${gone}`;
    },
  );
}

/** Waits until any ready gateway pod's log matches (with several replicas, the one that served the client). */
export async function waitForLog(ctx: Context, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<void> {
  const logs = async () =>
    (await Promise.all(ctx.gatewayPods.map((pod) => ctx.backend.containerLog(ctx.namespace, pod, 'gateway')))).join(
      '\n',
    );
  await waitFor(`the gateway log to show ${what}`, async () => pattern.test(await logs()), timeoutMs, 500);
}
