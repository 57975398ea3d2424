// `kubectl drain` of the node a real build's builder runs on, with the shipped manifests: the busy builder's
// eviction is refused (PodDisruptionBudget buildkitd-busy) until the build ends, so the build completes
// intact; only then is the builder evicted and the drain done. A client arriving during the drain is held
// and served by the builder back on another node (one builder at most, as shipped).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RoundTrip } from '../../support/echo-client.ts';
import { http2Handshake } from '../clients.ts';
import { type DrainEvent, type RunningDrain, startDrain } from '../kubectl-drain.ts';
import { type Context, type Scenario, GATEWAY_SELECTOR, kubectlOk, seconds, waitForZero } from './context.ts';
import { connectToGateway, podCarryingConnection, waitForLog } from './gateway-pods.ts';
import { HA_BUILD_BYTES_PER_SECOND, OLD_SHUTDOWN_GRACE_S, startSlowBuild } from '../slow-build.ts';

const BUILDER_SELECTOR = 'app.kubernetes.io/name=buildkitd,app.kubernetes.io/component=buildkitd';
const BUSY_LABEL = 'buildkitd-autoscaler/busy';
/** Long enough for the build, the mark's removal, kubectl's 5 s retries and the gateway pods' exit. */
const DRAIN_TIMEOUT_S = 300;

interface PodPlace {
  name: string;
  uid: string;
  node: string;
}

interface PodList {
  items: {
    metadata: { name: string; uid: string };
    spec: { nodeName?: string };
  }[];
}

const places = (list: PodList): PodPlace[] =>
  list.items.map((p) => ({ name: p.metadata.name, uid: p.metadata.uid, node: p.spec.nodeName ?? '' }));

/** The builder pod carrying the busy label, once the gateway's leader has set it. */
async function busyBuilder(ctx: Context, ended: () => string | undefined, timeoutMs: number): Promise<PodPlace> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = JSON.parse(
      await kubectlOk(ctx, ['get', 'pods', '-l', `${BUILDER_SELECTOR},${BUSY_LABEL}=true`, '-o', 'json']),
    ) as PodList;
    const [busy, ...more] = places(list);
    if (busy && more.length === 0) return busy;
    const gone = ended();
    assert.ok(gone === undefined, `the build ended before its builder was marked busy: ${gone ?? ''}`);
    assert.ok(Date.now() < deadline, `no single builder pod labelled ${BUSY_LABEL}=true after ${seconds(timeoutMs)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Ready nodes that take new pods, other than `except`. */
async function otherSchedulableNodes(ctx: Context, except: string): Promise<string[]> {
  const nodes = JSON.parse(await kubectlOk(ctx, ['get', 'nodes', '-o', 'json'])) as {
    items: {
      metadata: { name: string };
      spec?: { unschedulable?: boolean };
      status?: { conditions?: { type: string; status: string }[] };
    }[];
  };
  return nodes.items
    .filter(
      (n) =>
        n.metadata.name !== except &&
        !n.spec?.unschedulable &&
        n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    )
    .map((n) => n.metadata.name);
}

function describeRefusals(refusals: DrainEvent[], from: number): string {
  const first = refusals[0]?.t ?? from;
  const last = refusals.at(-1)?.t ?? from;
  return `${refusals.length} (from ${seconds(first - from)} to ${seconds(last - from)} after the drain started)`;
}

async function drainDuringBuild(ctx: Context): Promise<string> {
  const gw = await connectToGateway(ctx);
  await waitForZero(ctx, 'buildkitd at 0 before the build');
  const addr = `tcp://${gw.proxy.host}:${gw.proxy.port}`;
  const dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-drain-'));
  let drainedNode: string | undefined;
  let drain: RunningDrain | undefined;
  try {
    // The client reads the output for longer than the old 30 s grace, and the drain starts as the build begins.
    const build = await startSlowBuild(ctx, addr, dir, OLD_SHUTDOWN_GRACE_S + 5);
    const ended = () => build.ended();
    const carrier = await podCarryingConnection(ctx, 'the build', ended, ctx.settings.readyWaitS * 1000 + 30_000);
    const builder = await busyBuilder(ctx, ended, 30_000);
    ctx.timeline.mark(`the build runs through ${carrier} on ${builder.name} (node ${builder.node}), marked busy`);
    const others = await otherSchedulableNodes(ctx, builder.node);
    assert.ok(others.length > 0, `no other schedulable node than ${builder.node}: kubectl drain needs one`);
    const gatewaysBefore = places(
      JSON.parse(await kubectlOk(ctx, ['get', 'pods', '-l', GATEWAY_SELECTOR, '-o', 'json'])) as PodList,
    );

    const drainStartedAt = ctx.timeline.now();
    drainedNode = builder.node;
    const running = startDrain(
      builder.node,
      ['--ignore-daemonsets', '--delete-emptydir-data', `--timeout=${DRAIN_TIMEOUT_S}s`],
      ctx.timeline,
      (e) =>
        ctx.timeline.mark(
          e.kind === 'refused'
            ? `kubectl drain: eviction of ${e.pod} refused (disruption budget)`
            : e.kind === 'evicted'
              ? `kubectl drain: ${e.pod} evicted`
              : `kubectl drain: node ${builder.node} drained`,
        ),
    );
    drain = running;
    ctx.timeline.mark(`kubectl drain ${builder.node} started`);

    // A new client once the gateway has taken the builder out of rotation: it is held, not sent to the drained node.
    await waitForLog(
      ctx,
      new RegExp(`builders on draining nodes take no new connections: [^"]*\\b${builder.name}\\b`),
      `${builder.name} out of rotation`,
      30_000,
    );
    const during = http2Handshake(gw.proxy, (ctx.settings.readyWaitS + 60) * 1000).then(async (r) => {
      const at = ctx.timeline.now();
      const pod = r.ok
        ? (JSON.parse(await kubectlOk(ctx, ['get', 'pod', builder.name, '-o', 'json'])) as PodList['items'][number])
        : undefined;
      const serving = pod ? places({ items: [pod] }) : [];
      return { ...r, at, serving: serving[0] };
    });
    ctx.timeline.mark('a new client connects during the drain');

    const { code, doneAt, error: buildError } = await build.done;
    ctx.timeline.mark(`buildctl exited ${code}`);
    const drained = await running.done;
    ctx.timeline.mark(`kubectl drain exited ${drained.code}`);
    const late: RoundTrip & { at: number; serving?: PodPlace } = await during;

    const podEvents = running.events.flatMap((e) => (e.kind === 'drained' ? [] : [e]));
    const refusedBuilder = podEvents.filter((e) => e.kind === 'refused' && e.pod === builder.name);
    const refusedWhileBuilding = refusedBuilder.filter((e) => e.t < doneAt);
    const refusedOthers = podEvents.filter((e) => e.kind === 'refused' && e.pod !== builder.name);
    const builderGoneAt = podEvents.find((e) => e.kind === 'evicted' && e.pod === builder.name)?.t;
    const drainedAt = running.events.find((e) => e.kind === 'drained')?.t ?? drained.endedAt;
    // An accepted eviction shows as the pod terminating (kubectl says "evicted" only once the pod is gone).
    const terminatingAt = (pod: string) =>
      ctx.timeline.entries.find((e) => e.source === 'pod' && e.t >= drainStartedAt && e.text === `${pod}: terminating`)
        ?.t;
    const builderEvictedAt = terminatingAt(builder.name);
    const carrierEvictedAt = terminatingAt(carrier);
    const evictedGateways = gatewaysBefore
      .filter((g) => podEvents.some((e) => e.kind === 'evicted' && e.pod === g.name))
      .map((g) => g.name);
    const buildMs = doneAt - build.startedAt;
    const afterBuild = (t: number | undefined) => (t === undefined ? 'never' : seconds(t - doneAt));
    // The figures first, so REPORT.md has them when an assertion below fails.
    ctx.figures.set(
      `node drain: evictions of the busy ${builder.name} refused (PodDisruptionBudget buildkitd-busy)`,
      `${describeRefusals(refusedBuilder, drainStartedAt)}; ${refusedWhileBuilding.length} while the build ran; build done ${seconds(doneAt - drainStartedAt)} after the drain started`,
    );
    ctx.figures.set(
      `node drain: after the build ended, ${builder.name} evicted / gone / node drained`,
      `${afterBuild(builderEvictedAt)} / ${afterBuild(builderGoneAt)} / ${afterBuild(drainedAt)} (kubectl drain exit ${drained.code} after ${seconds(drained.endedAt - drainStartedAt)})`,
    );
    if (refusedOthers.length > 0)
      ctx.figures.set(
        'node drain: evictions of gateway pods refused (PodDisruptionBudget buildkitd-autoscaler keeps one Ready)',
        [...new Set(refusedOthers.map((e) => e.pod))]
          .map((pod) => `${pod}: ${refusedOthers.filter((e) => e.pod === pod).length}`)
          .join(', '),
      );
    if (carrierEvictedAt !== undefined)
      ctx.figures.set(
        `node drain: the gateway pod carrying the build (${carrier}) evicted`,
        `${seconds(carrierEvictedAt - drainStartedAt)} after the drain started, ${seconds(doneAt - carrierEvictedAt)} before the build ended; it spliced on`,
      );
    ctx.figures.set(
      `node drain: build through the gateway (${build.bytes / 2 ** 20} MiB read at ${HA_BUILD_BYTES_PER_SECOND / 2 ** 20} MiB/s)`,
      `${seconds(buildMs)}, ${seconds(doneAt - drainStartedAt)} of it during the drain; exit ${code}`,
    );
    ctx.figures.set(
      'node drain: a client connecting during the drain',
      late.ok
        ? `held ${seconds(late.elapsedMs)}, served by ${late.serving?.name ?? '?'} on ${late.serving?.node ?? '?'}`
        : `${late.failure ?? ''} ${late.detail ?? ''} after ${seconds(late.elapsedMs)}`,
    );

    assert.equal(code, 0, `the build failed across the drain${buildError}`);
    await build.verifyOutput();
    ctx.served++;
    assert.ok(
      doneAt - drainStartedAt > OLD_SHUTDOWN_GRACE_S * 1000,
      `the build ended ${seconds(doneAt - drainStartedAt)} after the drain started, within the old ${OLD_SHUTDOWN_GRACE_S}s grace: it proves nothing`,
    );
    assert.ok(
      refusedWhileBuilding.length > 0,
      `kubectl drain never reported a refused eviction of ${builder.name} while it built:\n${drained.output}`,
    );
    assert.equal(drained.code, 0, `kubectl drain failed:\n${drained.output}`);
    assert.ok(
      builderEvictedAt !== undefined && builderGoneAt !== undefined,
      `kubectl drain did not evict ${builder.name}:\n${drained.output}`,
    );
    assert.ok(
      builderEvictedAt > doneAt,
      `${builder.name} was evicted ${seconds(doneAt - builderEvictedAt)} before the build ended`,
    );
    assert.ok(drainedAt > doneAt, `the drain ended ${seconds(doneAt - drainedAt)} before the build did`);

    assert.ok(
      late.ok,
      `the client that connected during the drain was not served: ${late.failure ?? ''} ${late.detail ?? ''}`,
    );
    ctx.served++;
    assert.ok(
      late.at > builderEvictedAt,
      `the client that connected during the drain was served before ${builder.name} left ${builder.node}`,
    );
    assert.ok(
      late.serving && late.serving.uid !== builder.uid && late.serving.node !== builder.node,
      `the client that connected during the drain was served while ${builder.name} is on ${late.serving?.node ?? 'no node'}`,
    );
    // Later scenarios reach the gateway pods that replaced the evicted ones.
    await connectToGateway(ctx);
    return (
      `${refusedWhileBuilding.length} evictions of ${builder.name} refused while it built; build ${seconds(buildMs)} ` +
      `(${seconds(doneAt - drainStartedAt)} during the drain), output sha256 matches; ${builder.name} evicted ` +
      `${seconds(builderEvictedAt - doneAt)} and ${builder.node} drained ${seconds(drainedAt - doneAt)} after the build ended` +
      `${evictedGateways.length > 0 ? ` (gateway pods evicted too: ${evictedGateways.join(', ')}${carrierEvictedAt === undefined ? '' : `, ${carrier} carrying the build ${seconds(doneAt - carrierEvictedAt)} before it ended`})` : ''}; ` +
      `a client arriving during the drain was held ${seconds(late.elapsedMs)} and served by ${builder.name} on ${late.serving.node}`
    );
  } finally {
    drain?.stop();
    if (drainedNode !== undefined) {
      const uncordoned = await ctx.backend.kubectl(['uncordon', drainedNode]);
      ctx.timeline.mark(`kubectl uncordon ${drainedNode}: exit ${uncordoned.code}`);
      if (uncordoned.code !== 0)
        ctx.diagnostics.push({
          level: 'error',
          title: 'e2e node-drain-during-build',
          message: `kubectl uncordon ${drainedNode} failed, later scenarios run without that node: ${uncordoned.stderr.trim()}`,
        });
    }
    await rm(dir, { recursive: true, force: true });
  }
}

export const nodeDrainDuringBuild: Scenario = {
  name: 'node-drain-during-build',
  promise:
    "`kubectl drain` of the builder's node while a build runs on for more than the old 30 s grace: the busy builder's eviction is refused (PodDisruptionBudget buildkitd-busy) until the build ends, no connection is cut, the output is intact (sha256), the builder is evicted only once idle and the drain completes after the build; a client connecting during the drain is served by the builder back on another node",
  run: drainDuringBuild,
};
