import assert from 'node:assert/strict';
import { type Scenario, access, kubectlOk, seconds } from './context.ts';
import { connectToGateway, podCarryingConnection } from './gateway-pods.ts';
import { lineClient } from './line-client.ts';

export const drainOnSigterm: Scenario = {
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
};
