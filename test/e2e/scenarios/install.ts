import assert from 'node:assert/strict';
import { httpGet } from '../clients.ts';
import { type Scenario, seconds } from './context.ts';
import { connectToGateway } from './gateway-pods.ts';

export const install: Scenario = {
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
