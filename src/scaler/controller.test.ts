import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { FakeBackendSource } from '../../test/support/fake-backend-source.ts';
import { BackendSet } from '../backends/backend-set.ts';
import { ManualClock } from '../clock.ts';
import { raises } from '../ha/report-raises.ts';
import type { GatewayEvent } from '../events.ts';
import { PendingConnections } from '../proxy/pending.ts';
import { Router } from '../proxy/router.ts';
import { LocalActivity } from './activity.ts';
import { ScaleActuator, type ScaleTarget } from './actuator.ts';
import { ScaleController, countsDecisionDelayMs } from './controller.ts';
import type { ObservedCluster } from './types.ts';
import type { BuilderPod, ReplicaReport, ScaleDownProposal } from './types.ts';
import { LocalProposalStore } from './proposal-store.ts';
import { WakeRequests } from './wake-requests.ts';
import { reconcileTriggers } from '../reconcile-triggers.ts';

/** The scale subresource in memory, with a resourceVersion; `gate` holds writes open (a write that has not landed). */
class FakeScale implements ScaleTarget {
  replicas = 0;
  version = 1;
  writes: number[] = [];
  gate: Promise<void> | undefined;
  readGate: Promise<void> | undefined;
  async read() {
    await this.readGate;
    return { replicas: this.replicas, resourceVersion: String(this.version) };
  }
  async write(replicas: number, resourceVersion: string | undefined) {
    await this.gate;
    if (resourceVersion !== String(this.version)) throw Object.assign(new Error('conflict'), { code: 409 });
    this.replicas = replicas;
    this.version += 1;
    this.writes.push(replicas);
  }
}

const flush = async () => {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

const idleTimeoutMs = 10_000;

function replica(
  identity: string,
  clock: ManualClock,
  scale: FakeScale,
  cluster: { pods: BuilderPod[] },
  options: {
    leader?: () => boolean;
    others?: () => ReplicaReport[];
    proposals?: LocalProposalStore;
    departed?: () => ReadonlyMap<string, number>;
    wakes?: WakeRequests;
    maxReplicas?: number;
    routingChanged?: () => void;
    decided?: () => void;
  } = {},
) {
  const events: GatewayEvent[] = [];
  const activity = new LocalActivity({ clock });
  const actuator = new ScaleActuator({ target: scale, clock }, { emit: (e) => events.push(e) });
  let decisions = 0;
  const observe = (): ObservedCluster => {
    decisions += 1;
    return { synced: true, statefulSet: { exists: true, replicas: scale.replicas }, pods: cluster.pods };
  };
  // Watches are not part of these tests: their changes reach the controller as requestReconcile() calls.
  const noWatch = { onChange: () => undefined };
  const triggers = reconcileTriggers({
    activity,
    wakes: options.wakes ?? noWatch,
    statefulSet: noWatch,
    discovery: { source: noWatch },
  });
  const controller = new ScaleController(
    {
      statefulSetName: 'buildkitd',
      identity,
      policy: {
        minReplicas: 0,
        maxReplicas: options.maxReplicas ?? 1,
        connectionsPerReplica: 8,
        maxConnectionsPerReplica: 0,
        idleTimeoutMs,
        maxReportStalenessMs: 600_000,
        proposalTimeoutMs: 15_000,
      },
      observe,
      activity,
      ...(options.wakes ? { wakes: options.wakes } : {}),
      otherReports: options.others ?? (() => []),
      ...(options.departed ? { departedActivity: options.departed } : {}),
      proposals: options.proposals ?? new LocalProposalStore(),
      isLeader: options.leader ?? (() => true),
      actuator,
      clock,
      resyncMs: 2_000,
      triggers,
    },
    {
      emit: (e) => events.push(e),
      ...(options.routingChanged ? { routingChanged: options.routingChanged } : {}),
      ...(options.decided ? { decided: options.decided } : {}),
    },
  );
  controller.start();
  const report = (): ReplicaReport => ({
    identity,
    fresh: true,
    staleForMs: 0,
    ...activity.snapshot(),
    ack: controller.acknowledged,
  });
  return { activity, controller, events, report, decisions: () => decisions };
}

const pod0: BuilderPod = { name: 'buildkitd-0', ordinal: 0, key: 'uid-0', ready: true, terminating: false };

async function advance(clock: ManualClock, ms: number) {
  for (let t = 0; t < ms; t += 500) {
    clock.advance(Math.min(500, ms - t));
    await flush();
  }
}

test('a connection at zero wakes one replica; the pod becomes routable once it is ready', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  const cluster = { pods: [] as BuilderPod[] };
  const { activity, controller } = replica('a', clock, scale, cluster);
  const connection = activity.arrive();
  await flush();
  assert.deepEqual(scale.writes, [1]);
  cluster.pods = [pod0];
  controller.requestReconcile();
  assert.deepEqual([...controller.routing().routable], ['buildkitd-0']);
  connection.assign('buildkitd-0');
  connection.close();
});

test('after the last close and the idle timeout: propose, acknowledge, scale to zero; the pod stays fenced until gone', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  const { activity, controller, events } = replica('a', clock, scale, cluster);
  const connection = activity.arrive();
  connection.assign('buildkitd-0');
  await advance(clock, 30_000);
  assert.deepEqual(scale.writes, [], 'an open connection keeps the builder however long it lasts');
  connection.close();
  await advance(clock, idleTimeoutMs - 1000);
  assert.deepEqual(scale.writes, []);
  await advance(clock, 2000);
  assert.deepEqual(scale.writes, [0]);
  assert.ok(events.some((e) => e.kind === 'scale_down_proposed'));
  assert.ok(events.some((e) => e.kind === 'scale' && e.direction === 'down'));

  // A client right after: held (the old pod is fenced), and the wake waits until the old pod is gone.
  const next = activity.arrive();
  await advance(clock, 1000);
  assert.deepEqual([...controller.routing().routable], []);
  assert.deepEqual(scale.writes, [0], 'no wake while the removed pod still exists');
  cluster.pods = [];
  controller.requestReconcile();
  await flush();
  assert.deepEqual(scale.writes, [0, 1]);
  cluster.pods = [{ ...pod0, key: 'uid-new' }];
  controller.requestReconcile();
  assert.deepEqual([...controller.routing().routable], ['buildkitd-0'], 'the new instance takes connections');
  next.close();
});

test('a connection arriving while the scale-down is proposed withdraws it and is served by the same pod', async (t) => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  // A second replica that has not acknowledged yet keeps the proposal open.
  const otherAck: string | undefined = undefined;
  // The BackendSet needs the controller's routing view: it learns of routing changes once it exists.
  let routingChanged = () => {};
  const { activity, controller, events } = replica('a', clock, scale, cluster, {
    others: () => [{ identity: 'b', fresh: true, staleForMs: 0, open: 0, held: 0, pods: {}, since: 0, ack: otherAck }],
    routingChanged: () => routingChanged(),
  });
  // The pod is a real echo server behind the gateway's own router, routed by this controller.
  const pod = createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(pod, 'listening');
  t.after(() => pod.close());
  const source = new FakeBackendSource();
  source.set([
    { key: 'uid-0', podName: 'buildkitd-0', ordinal: 0, host: '127.0.0.1', port: (pod.address() as AddressInfo).port },
  ]);
  const backends = new BackendSet(source, (fresh) => controller.routing(fresh), {
    affinity: 'client-ip',
    connectionsPerReplica: 8,
    maxConnectionsPerReplica: 0,
  });
  routingChanged = () => backends.routableChanged();
  const router = new Router(
    {
      backends,
      pending: new PendingConnections({ maxPending: 10, clock, maxPendingBytes: 1024 * 1024 }),
      clock,
      readyWaitTimeoutMs: 60_000,
      wakeOn: 'data',
      firstByteTimeoutMs: 60_000,
    },
    { emit: (e) => events.push(e), arrive: () => activity.arrive(), currentFailure: () => undefined },
  );
  const gateway = createServer((socket) => void router.handle(socket)).listen(0, '127.0.0.1');
  await once(gateway, 'listening');
  t.after(() => gateway.close());

  await advance(clock, idleTimeoutMs + 1000);
  assert.ok(events.some((e) => e.kind === 'scale_down_proposed'));
  assert.deepEqual([...controller.routing().routable], [], 'fenced while proposed');
  const client = connect({ port: (gateway.address() as AddressInfo).port, host: '127.0.0.1' });
  client.write('build');
  const [echoed] = (await once(client, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'build', 'served by buildkitd-0');
  assert.ok(events.some((e) => e.kind === 'scale_down_withdrawn'));
  assert.equal(activity.openOn('buildkitd-0'), 1, 'the connection is on the pod that was proposed');
  await advance(clock, idleTimeoutMs * 3);
  assert.deepEqual(scale.writes, [], 'never scaled down under it');
  client.end();
  await once(client, 'close');
});

test('a replica acknowledges only a proposal it fences: one it stopped honouring is not acknowledged, and its pod takes connections', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  const proposals = new LocalProposalStore();
  const { controller } = replica('b', clock, scale, cluster, { leader: () => false, proposals });
  await advance(clock, 60_000);
  await proposals.write({
    id: 'p1',
    from: 1,
    to: 0,
    pods: { 'buildkitd-0': 'uid-0' },
    proposedAt: clock.now(),
    committed: false,
  });
  controller.requestReconcile();
  await flush();
  assert.equal(controller.acknowledged, 'p1');
  assert.deepEqual([...controller.routing().routable], []);
  // Left behind three proposal timeouts (this replica's own clock): no longer fenced, so no longer acknowledged.
  await advance(clock, 3 * 15_000 + 1000);
  assert.deepEqual([...controller.routing().routable], ['buildkitd-0']);
  assert.equal(
    controller.acknowledged,
    undefined,
    'an acknowledgement would let the leader commit while this replica routes to the pod',
  );
});

test('a leader that loses the lead while its scale-down commit reads the scale never writes it', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  let leading = true;
  const { activity, events } = replica('a', clock, scale, cluster, { leader: () => leading });
  const connection = activity.arrive();
  connection.assign('buildkitd-0');
  connection.close();
  let release!: () => void;
  scale.readGate = new Promise((resolve) => (release = resolve));
  await advance(clock, idleTimeoutMs + 2_000);
  assert.ok(
    events.some((e) => e.kind === 'scale_down_proposed'),
    'proposed and acknowledged; the commit is reading the scale',
  );
  leading = false;
  release();
  scale.readGate = undefined;
  await advance(clock, 5_000);
  assert.deepEqual(scale.writes, [], 'no scale-down written by a replica that no longer leads');
  assert.equal(scale.replicas, 1);
});

test('another replica with a connection on the pod keeps it; once it closes there, the leader scales down', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  let bReport: () => ReplicaReport = () => ({
    identity: 'b',
    fresh: true,
    staleForMs: 0,
    open: 0,
    held: 0,
    pods: {},
    since: 0,
    ack: undefined,
  });
  let aReport: () => ReplicaReport = () => ({
    identity: 'a',
    fresh: true,
    staleForMs: 0,
    open: 0,
    held: 0,
    pods: {},
    since: 0,
    ack: undefined,
  });
  // The proposal is shared state (the leader Lease in production).
  const proposals = new LocalProposalStore();
  const a = replica('a', clock, scale, cluster, { leader: () => true, others: () => [bReport()], proposals });
  const b = replica('b', clock, scale, cluster, { leader: () => false, others: () => [aReport()], proposals });
  bReport = b.report;
  aReport = a.report;
  const onB = b.activity.arrive();
  onB.assign('buildkitd-0');
  await advance(clock, idleTimeoutMs * 5);
  assert.deepEqual(scale.writes, [], 'the leader keeps the builder while another replica splices to it');
  onB.close();
  await advance(clock, idleTimeoutMs + 5000);
  assert.deepEqual(scale.writes, [0]);
  assert.ok(!b.events.some((e) => e.kind === 'scale'), 'only the leader scaled down');
});

test('a stale report blocks scale-down until it is past the maximum staleness', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  let frozenOpen = 1;
  const { events } = replica('a', clock, scale, cluster, {
    others: () => [
      {
        identity: 'frozen',
        fresh: false,
        staleForMs: clock.now(),
        open: frozenOpen,
        held: 0,
        pods: { 'buildkitd-0': { open: frozenOpen, lastActiveAt: 0 } },
        since: 0,
        ack: undefined,
      },
    ],
  });
  await advance(clock, 60_000);
  assert.deepEqual(scale.writes, [], 'a frozen replica with a connection keeps the builder');
  frozenOpen = 0;
  await advance(clock, 60_000);
  assert.deepEqual(scale.writes, [], 'even without a connection in its last report: it may have opened one since');
  assert.ok(events.some((e) => e.kind === 'scale_down_blocked'));
  await advance(clock, 600_000);
  assert.ok(
    events.some((e) => e.kind === 'report_expired' && e.identity === 'frozen' && e.code === 'BKA_REPORT_EXPIRED'),
  );
  assert.deepEqual(scale.writes, [0]);
});

test('wake, idle scale-down, wake again: the second wake is written too', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  const cluster = { pods: [] as BuilderPod[] };
  const { activity, controller } = replica('a', clock, scale, cluster);
  const first = activity.arrive();
  await flush();
  assert.deepEqual(scale.writes, [1]);
  cluster.pods = [pod0];
  controller.requestReconcile();
  first.assign('buildkitd-0');
  first.close();
  await advance(clock, idleTimeoutMs + 1000);
  assert.deepEqual(scale.writes, [1, 0]);
  cluster.pods = [];
  controller.requestReconcile();
  const second = activity.arrive();
  await flush();
  assert.deepEqual(scale.writes, [1, 0, 1]);
  second.close();
});

test('a replica that drained and deleted its report still gets the idle timeout after its last close', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  // The other replica (draining) has a build on buildkitd-0; this one, the leader, has none.
  let others: ReplicaReport[] = [
    {
      identity: 'old',
      fresh: true,
      staleForMs: 0,
      open: 1,
      held: 0,
      pods: { 'buildkitd-0': { open: 1, lastActiveAt: 0 } },
      since: 0,
      ack: undefined,
    },
  ];
  const departed = new Map<string, number>();
  const { controller } = replica('new', clock, scale, cluster, { others: () => others, departed: () => departed });
  await advance(clock, 30_000);
  assert.deepEqual(scale.writes, []);
  // Its build closes; it deletes its report as it exits, and this replica keeps when the pod was last busy.
  others = [];
  departed.set('buildkitd-0', clock.now());
  controller.requestReconcile();
  await advance(clock, idleTimeoutMs - 1000);
  assert.deepEqual(scale.writes, [], 'not at once: the idle timeout runs from the last close');
  await advance(clock, 2000);
  assert.deepEqual(scale.writes, [0]);
});

test('a wake request reconciles at once: one builder with no client, kept for the window, then the ordinary idle rules', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  const cluster = { pods: [] as BuilderPod[] };
  const wakes = new WakeRequests({ clock });
  const { events, controller } = replica('a', clock, scale, cluster, { wakes });
  await advance(clock, 2 * idleTimeoutMs);
  assert.deepEqual(scale.writes, [], 'nothing asked yet');
  wakes.request(1, 30_000);
  await flush();
  assert.deepEqual(scale.writes, [1], 'the request alone woke a builder');
  const up = events.find((e) => e.kind === 'scale' && e.direction === 'up');
  assert.ok(
    up?.kind === 'scale' && up.cause === 'wake' && /a wake request keeps 1 replicas until/.test(up.reason),
    JSON.stringify(up),
  );
  cluster.pods = [pod0];
  controller.requestReconcile();
  await advance(clock, 29_000);
  assert.equal(scale.replicas, 1, 'kept for the whole window with no connection');
  // The pod never had a connection and the replica has run longer than the idle timeout: it may go at once.
  await advance(clock, 2_000);
  await flush();
  assert.equal(scale.replicas, 0, 'idled down once the window ended');
});

/** `count` connections of this replica, routed to `pod`. */
function connectionsOn(activity: LocalActivity, pod: string, count: number): ReturnType<LocalActivity['arrive']>[] {
  return Array.from({ length: count }, () => {
    const connection = activity.arrive();
    connection.assign(pod);
    return connection;
  });
}

test('a cold start for waiting connections is scaled with the cause the wake metric counts', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  const { activity, events } = replica('a', clock, scale, { pods: [] });
  activity.arrive();
  await flush();
  const up = events.find((e) => e.kind === 'scale' && e.direction === 'up');
  assert.ok(up?.kind === 'scale' && up.from === 0 && up.cause === 'connections', JSON.stringify(up));
});

test('connections on a ready pod count in routing() at once, cost one decision per countsDecisionDelayMs, and a held one still wakes at once', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  const { activity, controller, decisions } = replica('a', clock, scale, cluster);
  await flush();
  const decisionsBefore = decisions();
  const connections = connectionsOn(activity, 'buildkitd-0', 5);
  // The balancer sees this replica's own connections before any decision counted them.
  assert.equal(controller.routing().loads['buildkitd-0'], 5);
  await flush();
  assert.equal(decisions(), decisionsBefore, 'not yet: more may come');
  clock.advance(countsDecisionDelayMs);
  assert.equal(controller.decision?.demand, 5);
  assert.equal(decisions(), decisionsBefore + 1, 'five connections, one decision');
  for (const connection of connections) connection.close();
  assert.equal(controller.routing().loads['buildkitd-0'] ?? 0, 0);
  await flush();
  assert.equal(controller.decision?.demand, 0, 'a scrape or /wake sees every connection so far');
  assert.equal(decisions(), decisionsBefore + 2);
  clock.advance(countsDecisionDelayMs);
  assert.equal(decisions(), decisionsBefore + 2, 'nothing left to decide');

  scale.replicas = 0;
  cluster.pods = [];
  controller.requestReconcile();
  await flush();
  activity.arrive();
  await flush();
  assert.deepEqual(scale.writes, [1], 'a held connection wakes a builder without waiting for a routing() call');
});

test("at the maximum, connections beyond every builder's share decide nothing new; below it they decide again first", async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  const { activity, controller, decisions } = replica('a', clock, scale, cluster);
  await flush();
  const onPod = (count: number) => connectionsOn(activity, 'buildkitd-0', count);
  const first = onPod(9);
  controller.routing(true);
  const decisionsBefore = decisions();
  assert.equal(controller.routing().atMaximum, true, 'one builder of at most one: a full one takes more');
  const more = onPod(20);
  for (let i = 0; i < 20; i += 1) assert.equal(controller.routing(true).atMaximum, true);
  assert.equal(decisions(), decisionsBefore, 'twenty overloading connections, no decision of their own');
  assert.equal(controller.routing().loads['buildkitd-0'], 29, 'loads still count them');
  for (const connection of [...first, ...more]) connection.close();

  // Two builders at most, both wanted once, the second one still starting: with eight connections on the
  // first, the ninth needs it again and must wait for it rather than overload the first.
  const pool = new FakeScale();
  pool.replicas = 2;
  const starting: BuilderPod = { name: 'buildkitd-1', ordinal: 1, key: 'uid-1', ready: false, terminating: false };
  const two = replica('b', clock, pool, { pods: [pod0, starting] }, { maxReplicas: 2 });
  await flush();
  for (let i = 0; i < 8; i += 1) two.activity.arrive().assign('buildkitd-0');
  two.activity.arrive();
  assert.equal(two.controller.routing().atMaximum, true, 'the last decision did not count them yet');
  assert.equal(
    two.controller.routing(true).atMaximum,
    false,
    'decided again: nine need the second builder, which is not ready yet',
  );
});

/** A deterministic stream of numbers in [0, 1), so a churn schedule is the same on every run. */
function randoms(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

test('scale-down under churn: no scale-down lands while a connection is on the pod, held ones are served, and it happens once they stop', async () => {
  const clock = new ManualClock();
  const scale = new FakeScale();
  scale.replicas = 1;
  const cluster = { pods: [pod0] };
  let generation = 0;
  const watchLatencyMs = 30;
  const replicas: Array<ReturnType<typeof replica>> = [];
  // The leader Lease: the leader reads what it wrote; the other replica sees it through its watch, later.
  const leaderStore = new LocalProposalStore();
  const followerView = new LocalProposalStore();
  const leaderProposals = {
    current: () => leaderStore.current(),
    write: async (proposal: ScaleDownProposal | undefined) => {
      await new Promise<void>((resolve) => clock.setTimer(10, resolve));
      await leaderStore.write(proposal);
      clock.setTimer(watchLatencyMs, () => {
        void followerView.write(proposal);
        b.controller.requestReconcile();
      });
      return true;
    },
  };
  const followerProposals = { current: () => followerView.current(), write: () => Promise.resolve(false) };
  // Each replica's activity Lease as the other reads it: its live report when it publishes (100 ms after a
  // change that raises what it last published, and every 2 s), seen after the watch latency.
  const published = new Map<string, ReplicaReport>();
  const lastPublished = new Map<string, ReplicaReport>();
  const others = (self: string) => () => [...published.values()].filter((r) => r.identity !== self);
  // What each replica's publisher does after a decision, set below once both replicas exist.
  const decided = new Map<string, () => void>();
  const a = replica('a', clock, scale, cluster, {
    leader: () => true,
    others: others('a'),
    proposals: leaderProposals as unknown as LocalProposalStore,
    decided: () => decided.get('a')?.(),
  });
  const b = replica('b', clock, scale, cluster, {
    leader: () => false,
    others: others('b'),
    proposals: followerProposals as unknown as LocalProposalStore,
    decided: () => decided.get('b')?.(),
  });
  replicas.push(a, b);
  const publish = (from: typeof a) => {
    const report = from.report();
    lastPublished.set(report.identity, report);
    clock.setTimer(watchLatencyMs, () => {
      published.set(report.identity, report);
      for (const r of replicas) if (r !== from) r.controller.requestReconcile();
    });
  };
  for (const r of replicas) {
    published.set(r.report().identity, r.report());
    lastPublished.set(r.report().identity, r.report());
    const raisesPublished = () => {
      const now = r.report();
      const before = lastPublished.get(now.identity);
      return raises(before && { ...before, draining: false }, { ...now, draining: false }, 8);
    };
    let soon = false;
    decided.set(r.report().identity, () => {
      if (soon || !raisesPublished()) return;
      soon = true;
      clock.setTimer(100, () => {
        soon = false;
        if (raisesPublished()) publish(r);
      });
    });
    const renew = () =>
      clock.setTimer(2000, () => {
        publish(r);
        renew();
      });
    renew();
  }
  // A scale write takes a while to land, as an API request does.
  const write = scale.write.bind(scale);
  scale.write = async (replicasWanted, resourceVersion) => {
    await new Promise<void>((resolve) => clock.setTimer(20, resolve));
    return write(replicasWanted, resourceVersion);
  };
  const openOnPod = () => replicas.reduce((sum, r) => sum + r.activity.openOn('buildkitd-0'), 0);
  const cut: string[] = [];

  type Client = { activity: ReturnType<LocalActivity['arrive']>; from: typeof a; closeAt: number; routed: boolean };
  const clients: Client[] = [];
  let lastCloseAt = 0;
  const random = randoms(12);
  // As the router does: a routable pod is assigned in the same step as the arrival; otherwise the client is held.
  const route = (client: Client) => {
    const pod = [...client.from.controller.routing().routable][0];
    if (pod === undefined) return;
    client.activity.assign(pod);
    client.routed = true;
  };
  const connect = (lifetimeMs: number) => {
    const from = random() < 0.5 ? a : b;
    const client: Client = { activity: from.activity.arrive(), from, closeAt: clock.now() + lifetimeMs, routed: false };
    route(client);
    clients.push(client);
  };
  // One step of 10 ms: clients close or get routed, the StatefulSet controller follows the scale, timers fire.
  const step = async () => {
    clock.advance(10);
    await flush();
    for (const client of [...clients]) {
      if (!client.routed) route(client);
      if (client.routed && clock.now() >= client.closeAt) {
        client.activity.close();
        lastCloseAt = clock.now();
        clients.splice(clients.indexOf(client), 1);
      }
    }
    // A scale-down that has landed deletes the pod: a connection still on it is cut.
    if (scale.replicas === 0 && openOnPod() > 0)
      cut.push(`${openOnPod()} connections on the pod at ${clock.now()} ms, after the scale-down`);
    if (scale.replicas === 0 && cluster.pods.length > 0) cluster.pods = [];
    else if (scale.replicas === 1 && cluster.pods.length === 0)
      cluster.pods = [{ ...pod0, key: `uid-new-${(generation += 1)}` }];
    else return flush();
    for (const r of replicas) r.controller.requestReconcile();
    await flush();
  };
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) await step();
  };

  // Busy: connections open and close on both replicas all the time, for three idle timeouts.
  for (let t = 0; t < 3 * idleTimeoutMs; t += 10) {
    if (random() < 0.3) connect(random() * 300);
    await step();
  }
  assert.equal(scale.writes.length, 0, 'a builder in use is never scaled down');
  // The race: the next connection arrives around the moment the idle timeout since the last close ends,
  // while the scale-down is proposed, acknowledged or committed.
  for (let offsetMs = -20; offsetMs <= 200; offsetMs += 10) {
    while (clients.length > 0) await step();
    await run(lastCloseAt + idleTimeoutMs + offsetMs - clock.now());
    connect(1000);
    await run(1200);
  }
  while (clients.length > 0) await step();
  assert.deepEqual(cut, [], 'a connection on the pod was cut by a scale-down');
  const steps = replicas.flatMap((r) => r.events).map((e) => e.kind);
  assert.ok(steps.includes('scale_down_withdrawn'), 'some arrivals withdrew a proposal');
  assert.ok(scale.writes.includes(0), 'some arrivals came after the scale-down and woke a builder again');
  // Quiet: scale-down happens after the idle timeout.
  await run(idleTimeoutMs + 5000);
  assert.equal(scale.replicas, 0, 'scaled to zero once the connections stopped');
});
