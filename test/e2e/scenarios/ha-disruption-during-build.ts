// The gateway disrupted (rollout restart, pod deleted) while a real build longer than the idle timeout
// streams through it and new connections keep arriving: nothing is cut, refused or scaled away.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { http2Handshake } from '../clients.ts';
import { ConnectionProber } from '../connection-prober.ts';
import { type Context, type Scenario, kubectlOk, seconds, transitions, waitForZero } from './context.ts';
import { connectToGateway, podCarryingConnection } from './gateway-pods.ts';
import { HA_BUILD_BYTES_PER_SECOND, OLD_SHUTDOWN_GRACE_S, startSlowBuild } from '../slow-build.ts';

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
    const build = await startSlowBuild(ctx, addr, dir, buildBytes / HA_BUILD_BYTES_PER_SECOND);
    const started = build.startedAt;
    const carrier = await podCarryingConnection(
      ctx,
      'the build',
      () => build.ended(),
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

    const { code, doneAt, error } = await build.done;
    ctx.timeline.mark(`buildctl exited ${code}`);
    assert.equal(code, 0, `the build failed across the ${disruption}${error}`);
    assert.ok(
      terminatingAt < doneAt,
      `the build finished before ${carrier} began terminating, so the ${disruption} did not overlap it`,
    );
    await build.verifyOutput();
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

export const haRolloutRestartDuringBuild: Scenario = {
  name: 'ha-rollout-restart-during-build',
  promise:
    '`kubectl rollout restart` of the gateway while a build longer than the idle timeout, and running on for more than the old 30 s grace after SIGTERM, streams through it and a client opens a new connection every 200 ms: every connection is served, none refused or cut; the build output is intact (sha256); buildkitd is not scaled to 0 under it',
  run: (ctx) => disruptDuringBuild(ctx, 'rollout restart'),
};

export const haDeletePodDuringBuild: Scenario = {
  name: 'ha-delete-pod-during-build',
  promise:
    '`kubectl delete pod` of the gateway replica carrying a build longer than the idle timeout, while a client opens a new connection every 200 ms: every connection is served, none refused or cut; the build output is intact; buildkitd is not scaled to 0 under it',
  run: (ctx) => disruptDuringBuild(ctx, 'delete pod'),
};
