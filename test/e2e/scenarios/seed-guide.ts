import assert from 'node:assert/strict';
import { type Scenario, access, seconds, transitions, waitForZero } from './context.ts';
import { lineClient } from './line-client.ts';

export const seedGuide: Scenario = {
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
};
