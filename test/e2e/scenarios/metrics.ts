import assert from 'node:assert/strict';
import { metricSum } from '../../support/prom-text.ts';
import { type Scenario, kubectlOk } from './context.ts';
import { metricsOfEachPod } from './gateway-pods.ts';

export const metrics: Scenario = {
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
};
