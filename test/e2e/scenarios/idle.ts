// Scale to zero on idle: an open connection keeps buildkitd up past the idle timeout; the last close lets it go.
import assert from 'node:assert/strict';
import { type Scenario, access, seconds, transitions, waitForZero } from './context.ts';
import { lineClient } from './line-client.ts';

export const openConnectionKeepsAwake: Scenario = {
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
};

export const idleScaleDown: Scenario = {
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
