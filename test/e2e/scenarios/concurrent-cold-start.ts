import assert from 'node:assert/strict';
import { echoRoundTrip } from '../../support/echo-client.ts';
import { type Scenario, access, seconds, waitForZero } from './context.ts';
import { payload } from './line-client.ts';

export const concurrentColdStart: Scenario = {
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
};
