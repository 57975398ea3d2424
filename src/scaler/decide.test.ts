import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, fences, type ScaleDecision, type ScalerView } from './decide.ts';
import type { BuilderPod, ReplicaReport, ScaleDownProposal } from './types.ts';

const idle = 120_000;
const now = 1_000_000;

const pod = (ordinal: number, extra: Partial<BuilderPod> = {}): BuilderPod => ({
  name: `buildkitd-${ordinal}`,
  ordinal,
  key: `uid-${ordinal}`,
  ready: true,
  terminating: false,
  ...extra,
});

const report = (identity: string, extra: Partial<ReplicaReport> = {}): ReplicaReport => ({
  identity,
  fresh: true,
  staleForMs: 0,
  open: 0,
  held: 0,
  pods: {},
  since: 0,
  ack: undefined,
  ...extra,
});

const proposal = (extra: Partial<ScaleDownProposal> = {}): ScaleDownProposal => ({
  id: 'p1',
  from: 1,
  to: 0,
  pods: { 'buildkitd-0': 'uid-0' },
  proposedAt: now - 1000,
  committed: false,
  ...extra,
});

function view(extra: Partial<ScalerView> = {}): ScalerView {
  return {
    now,
    synced: true,
    statefulSetName: 'buildkitd',
    statefulSet: { exists: true, replicas: 1 },
    pods: [pod(0)],
    reports: [report('a')],
    proposal: undefined,
    leader: true,
    policy: {
      minReplicas: 0,
      maxReplicas: 1,
      connectionsPerReplica: 8,
      maxConnectionsPerReplica: 0,
      idleTimeoutMs: idle,
      maxReportStalenessMs: 600_000,
      proposalTimeoutMs: 15_000,
    },
    ...extra,
  };
}

interface Case {
  name: string;
  view: ScalerView;
  expect: Partial<Omit<ScaleDecision, 'scaleDown'>> & { scaleDown?: string | undefined; withdrawReason?: RegExp };
}

const busy = (name: string) => ({ [name]: { open: 1, lastActiveAt: now - 5 } });
const lastActive = (name: string, at: number) => ({ [name]: { open: 0, lastActiveAt: at } });
const policy = view().policy;
const wakeFor = (ms: number, replicas = 1) => ({ replicas, until: now + ms });
const pool = { ...policy, maxReplicas: 3, connectionsPerReplica: 2 };

const cases: Case[] = [
  // Waking: demand at zero replicas.
  {
    name: 'a held connection at zero asks for one replica',
    view: view({ statefulSet: { exists: true, replicas: 0 }, pods: [], reports: [report('a', { held: 1 })] }),
    expect: { demand: 1, needed: 1, scaleUpTo: 1, routable: [] },
  },
  {
    name: 'demand on another replica wakes too',
    view: view({
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a'), report('b', { held: 2 })],
    }),
    expect: { needed: 1, scaleUpTo: 1 },
  },
  {
    name: 'no demand at zero writes nothing',
    view: view({ statefulSet: { exists: true, replicas: 0 }, pods: [] }),
    expect: { needed: 0, scaleUpTo: undefined, scaleDown: undefined },
  },
  {
    name: 'waking does not wait for synced watches (the write reads the scale itself)',
    view: view({ synced: false, statefulSet: undefined, pods: [], reports: [report('a', { held: 1 })] }),
    expect: { scaleUpTo: 1 },
  },
  {
    name: 'a missing StatefulSet is reported, not written',
    view: view({ statefulSet: { exists: false, replicas: 0 }, pods: [], reports: [report('a', { held: 1 })] }),
    expect: { scaleUpTo: undefined, waiting: 'the StatefulSet does not exist' },
  },
  {
    name: 'min replicas are kept without demand',
    view: view({ policy: { ...policy, minReplicas: 1 }, statefulSet: { exists: true, replicas: 0 }, pods: [] }),
    expect: { needed: 1, scaleUpTo: 1 },
  },

  // Routing.
  {
    name: 'a ready pod is routable',
    view: view({ reports: [report('a', { held: 1 })] }),
    expect: { routable: ['buildkitd-0'] },
  },
  {
    name: 'a terminating or not-ready pod is not routable',
    view: view({
      pods: [pod(0, { terminating: true }), pod(1, { ready: false })],
      statefulSet: { exists: true, replicas: 2 },
    }),
    expect: { routable: [] },
  },
  {
    name: 'a pod at or above spec.replicas is being removed: not routable on any replica',
    view: view({ statefulSet: { exists: true, replicas: 0 }, reports: [report('a', { held: 1 })] }),
    expect: { routable: [], scaleUpTo: 1 },
  },

  // Scale-down to zero (one replica, leader).
  {
    name: 'idle for less than the timeout: wait, recheck when it expires',
    view: view({ reports: [report('a', { pods: lastActive('buildkitd-0', now - 1000) })] }),
    expect: { scaleDown: undefined, recheckAt: now - 1000 + idle },
  },
  {
    name: 'idle for the timeout: propose removing the highest ordinal',
    view: view({ reports: [report('a', { pods: lastActive('buildkitd-0', now - idle) })] }),
    expect: { scaleDown: 'propose' },
  },
  {
    name: 'a client that gave up while held is activity: the builder it woke keeps starting for the idle timeout',
    view: view({ pods: [pod(0, { ready: false })], reports: [report('a', { lastHeldCloseAt: now - 1000 })] }),
    expect: { scaleDown: undefined, recheckAt: now - 1000 + idle },
  },
  {
    name: 'a replica that started recently has not seen the timeout pass',
    view: view({ reports: [report('a', { since: now - 10 })] }),
    expect: { scaleDown: undefined, recheckAt: now - 10 + idle },
  },
  {
    name: 'a connection on the pod anywhere blocks',
    view: view({ reports: [report('a'), report('b', { open: 1, pods: busy('buildkitd-0') })] }),
    expect: { scaleDown: undefined, needed: 1 },
  },
  {
    name: 'never on unsynced watches, and it says so',
    view: view({ synced: false }),
    expect: { scaleDown: undefined, waiting: 'watches not synced: no scale-down until they are' },
  },
  { name: 'only the leader scales down', view: view({ leader: false }), expect: { scaleDown: undefined } },

  // Reports of other replicas.
  {
    name: 'a stale report whose lease still exists blocks scale-down',
    view: view({ reports: [report('a'), report('b', { fresh: false, staleForMs: 30_000 })] }),
    expect: { scaleDown: undefined, blockedBy: ['b'], recheckAt: now + 600_000 - 30_000 },
  },
  {
    name: 'a report stale past the maximum no longer counts',
    view: view({ reports: [report('a'), report('b', { fresh: false, staleForMs: 600_000, held: 3 })] }),
    expect: { scaleDown: 'propose', expired: ['b'], demand: 0 },
  },
  {
    name: 'a stale report still counts as demand',
    view: view({
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a'), report('b', { fresh: false, staleForMs: 10_000, open: 1 })],
    }),
    expect: { scaleUpTo: 1 },
  },

  // The proposal.
  {
    name: 'a proposed pod is fenced on every replica',
    view: view({ leader: false, proposal: proposal(), reports: [report('a', { held: 1 })] }),
    expect: { routable: [] },
  },
  {
    name: 'every report acknowledged with no connection on the pod: commit',
    view: view({ proposal: proposal(), reports: [report('a', { ack: 'p1' }), report('b', { ack: 'p1' })] }),
    expect: { scaleDown: 'commit' },
  },
  {
    name: 'a missing acknowledgement: wait until the proposal times out',
    view: view({ proposal: proposal(), reports: [report('a', { ack: 'p1' }), report('b')] }),
    expect: { scaleDown: undefined, recheckAt: now - 1000 + 15_000 },
  },
  {
    name: 'no acknowledgement in time: withdraw',
    view: view({
      proposal: proposal({ proposedAt: now - 15_000 }),
      reports: [report('a', { ack: 'p1' }), report('b')],
    }),
    expect: { scaleDown: 'withdraw', withdrawReason: /not acknowledged by b/ },
  },
  {
    name: 'a connection that reached the pod before the fence: withdraw',
    view: view({
      proposal: proposal(),
      reports: [report('a', { ack: 'p1' }), report('b', { ack: 'p1', open: 1, pods: busy('buildkitd-0') })],
    }),
    expect: { scaleDown: 'withdraw', withdrawReason: /b has a connection/ },
  },
  {
    name: 'someone else scaled meanwhile: withdraw',
    view: view({
      proposal: proposal(),
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0), pod(1)],
      reports: [report('a', { ack: 'p1' })],
    }),
    expect: { scaleDown: 'withdraw', withdrawReason: /has 2 replicas now/ },
  },
  // A connection opened and closed between two writes of a report leaves no open count, only lastActiveAt
  // (a report that only lowers waits for the renewal): the ack carries it, and the pod was not idle long enough.
  {
    name: 'a connection that came and went since the leader last read the report: withdraw',
    view: view({
      proposal: proposal(),
      reports: [
        report('a', { ack: 'p1' }),
        report('b', { ack: 'p1', pods: { 'buildkitd-0': { open: 0, lastActiveAt: now - 500 } } }),
      ],
    }),
    expect: { scaleDown: 'withdraw', withdrawReason: /b used buildkitd-0 within the idle timeout/ },
  },
  {
    name: 'activity older than the idle timeout does not withdraw',
    view: view({
      proposal: proposal(),
      reports: [report('a', { ack: 'p1', pods: { 'buildkitd-0': { open: 0, lastActiveAt: now - idle - 1 } } })],
    }),
    expect: { scaleDown: 'commit' },
  },
  {
    name: 'a report went stale during the proposal: withdraw',
    view: view({
      proposal: proposal(),
      reports: [report('a', { ack: 'p1' }), report('b', { ack: 'p1', fresh: false, staleForMs: 1000 })],
    }),
    expect: { scaleDown: 'withdraw', withdrawReason: /no fresh report from b/ },
  },
  {
    name: 'a proposal left by a vanished leader stops fencing after three timeouts',
    view: view({
      leader: false,
      proposal: proposal({ proposedAt: now - 45_001 }),
      reports: [report('a', { held: 1 })],
    }),
    expect: { routable: ['buildkitd-0'] },
  },

  // After the commit.
  {
    name: 'committed, pod still there: fenced, and a wake waits until it is gone',
    view: view({
      proposal: proposal({ committed: true }),
      statefulSet: { exists: true, replicas: 0 },
      reports: [report('a', { held: 1 })],
    }),
    expect: {
      routable: [],
      scaleUpTo: undefined,
      waiting: 'waiting for buildkitd-0 to be gone before scaling up again',
    },
  },
  {
    name: 'committed, pod gone: the leader clears the fence and the wake goes ahead',
    view: view({
      proposal: proposal({ committed: true }),
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a', { held: 1 })],
    }),
    expect: { scaleUpTo: 1, scaleDown: 'clear' },
  },
  {
    name: 'committed, a new instance of the same name is not fenced',
    view: view({
      proposal: proposal({ committed: true }),
      pods: [pod(0, { key: 'uid-new' })],
      reports: [report('a', { held: 1 })],
    }),
    expect: { routable: ['buildkitd-0'] },
  },

  // A pool of builders.
  {
    name: 'six connections, two per builder: three replicas',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a', { held: 6 })],
    }),
    expect: { needed: 3, scaleUpTo: 3 },
  },
  {
    name: 'demand beyond the maximum stops at the maximum',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [report('a', { open: 20 })],
    }),
    expect: { needed: 3, scaleUpTo: undefined, routable: ['buildkitd-0', 'buildkitd-1', 'buildkitd-2'] },
  },
  {
    name: 'a builder above what demand needs stops taking new connections',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [
        report('a', {
          open: 3,
          pods: { 'buildkitd-0': { open: 2, lastActiveAt: now }, 'buildkitd-2': { open: 1, lastActiveAt: now } },
        }),
      ],
    }),
    expect: { needed: 2, routable: ['buildkitd-0', 'buildkitd-1'], scaleDown: undefined },
  },
  {
    name: 'the highest ordinal goes first, only after it was idle for the timeout',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [
        report('a', {
          open: 2,
          pods: { 'buildkitd-0': { open: 2, lastActiveAt: now }, 'buildkitd-2': { open: 0, lastActiveAt: now - idle } },
        }),
      ],
    }),
    expect: { needed: 1, scaleDown: 'propose' },
  },
  {
    name: 'loads per pod add up over every replica; at the maximum the balancer may overload',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [
        report('a', { open: 2, pods: { 'buildkitd-0': { open: 2, lastActiveAt: now } } }),
        report('b', {
          open: 3,
          pods: { 'buildkitd-0': { open: 1, lastActiveAt: now }, 'buildkitd-1': { open: 2, lastActiveAt: now } },
        }),
      ],
    }),
    expect: { loads: { 'buildkitd-0': 3, 'buildkitd-1': 2 }, atMaximum: true },
  },
  {
    name: 'at the maximum while builders are still starting, a full builder holds the client rather than overload',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1, { ready: false })],
      reports: [report('a', { open: 2, held: 4, pods: { 'buildkitd-0': { open: 2, lastActiveAt: now } } })],
    }),
    expect: { needed: 3, routable: ['buildkitd-0'], atMaximum: false },
  },
  {
    name: 'below the maximum a full pool holds the client while a builder is added',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0), pod(1)],
      reports: [report('a', { open: 4, held: 1 })],
    }),
    expect: { atMaximum: false, needed: 3, scaleUpTo: 3 },
  },
  // A cap (--max-connections-per-replica) below the share sizes the pool: a full pool below the maximum adds a builder.
  {
    name: 'a cap below the share sizes the pool: three connections with cap 2 need two builders',
    view: view({
      policy: { ...pool, connectionsPerReplica: 8, maxConnectionsPerReplica: 2 },
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0)],
      reports: [report('a', { open: 2, held: 1, pods: busy('buildkitd-0') })],
    }),
    expect: { needed: 2, scaleUpTo: 2, atMaximum: false },
  },
  {
    name: 'a cap above the share leaves the sizing to the share',
    view: view({
      policy: { ...pool, maxConnectionsPerReplica: 5 },
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0)],
      reports: [report('a', { open: 3 })],
    }),
    expect: { needed: 2, scaleUpTo: 2 },
  },
  {
    name: 'with the cap at the maximum, more demand asks for nothing beyond it (the balancer queues)',
    view: view({
      policy: { ...policy, maxConnectionsPerReplica: 2 },
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0)],
      reports: [report('a', { open: 2, held: 1, pods: { 'buildkitd-0': { open: 2, lastActiveAt: now } } })],
    }),
    expect: { needed: 1, scaleUpTo: undefined, atMaximum: true, loads: { 'buildkitd-0': 2 } },
  },
  {
    name: 'one builder at a time: lower ordinals wait for the next round',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [report('a', { pods: { 'buildkitd-2': { open: 0, lastActiveAt: now - 10 } } })],
    }),
    expect: { needed: 0, scaleDown: undefined, recheckAt: now - 10 + idle },
  },

  // Builders on draining nodes (cordoned or tainted for removal): no new connections, so they go idle and become evictable.
  {
    name: 'a builder on a draining node takes no new connection: one more is added for the demand it would have taken',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0, { draining: true })],
      reports: [report('a', { open: 1, held: 1, pods: busy('buildkitd-0') })],
    }),
    expect: { needed: 2, scaleUpTo: 2, routable: [], atMaximum: false },
  },
  {
    name: 'the builder added for a draining one takes the new connections; the draining one keeps its own',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0, { draining: true }), pod(1)],
      reports: [report('a', { open: 2, held: 1, pods: { 'buildkitd-0': { open: 2, lastActiveAt: now } } })],
    }),
    expect: { needed: 2, scaleUpTo: undefined, routable: ['buildkitd-1'], loads: { 'buildkitd-0': 2 } },
  },
  {
    name: 'connections a draining builder still carries need no replacement of their own',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0, { draining: true }), pod(1)],
      reports: [
        report('a', {
          open: 4,
          pods: { 'buildkitd-0': { open: 2, lastActiveAt: now }, 'buildkitd-1': { open: 2, lastActiveAt: now } },
        }),
      ],
    }),
    expect: { needed: 2, routable: ['buildkitd-1'] },
  },
  {
    name: 'an idle builder on a draining node is not needed and, as the highest ordinal, is scaled down',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0), pod(1, { draining: true })],
      reports: [
        report('a', {
          open: 1,
          pods: { 'buildkitd-0': { open: 1, lastActiveAt: now }, 'buildkitd-1': { open: 0, lastActiveAt: now - idle } },
        }),
      ],
    }),
    expect: { needed: 1, routable: ['buildkitd-0'], scaleDown: 'propose' },
  },
  {
    name: 'min replicas count builders that take connections: a draining one is replaced',
    view: view({
      policy: { ...pool, minReplicas: 1 },
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0, { draining: true })],
    }),
    expect: { needed: 2, scaleUpTo: 2, routable: [] },
  },
  {
    name: 'at the maximum the only builder drains: the client is held (it is not overloaded onto the draining one)',
    view: view({
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0, { draining: true })],
      reports: [report('a', { open: 1, held: 1, pods: busy('buildkitd-0') })],
    }),
    expect: { needed: 1, scaleUpTo: undefined, routable: [] },
  },
  {
    name: 'at the maximum with one builder draining, the others may be overloaded rather than hold the client',
    view: view({
      policy: { ...pool, maxReplicas: 2 },
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0, { draining: true }), pod(1)],
      reports: [
        report('a', {
          open: 3,
          held: 1,
          pods: { 'buildkitd-0': { open: 1, lastActiveAt: now }, 'buildkitd-1': { open: 2, lastActiveAt: now } },
        }),
      ],
    }),
    expect: { needed: 2, routable: ['buildkitd-1'], atMaximum: true },
  },
  {
    name: 'a draining builder that is terminating counts as any terminating pod',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 1 },
      pods: [pod(0, { draining: true, terminating: true })],
      reports: [report('a', { held: 1 })],
    }),
    expect: { needed: 1, routable: [] },
  },

  // Pre-wake (POST /wake): a request in any counted report keeps builders without connections until it ends.
  {
    name: 'a wake request at zero asks for a builder with no client, and rechecks when it ends',
    view: view({
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a', { wake: [wakeFor(20_000)] })],
    }),
    expect: { demand: 0, needed: 1, scaleUpTo: 1, wake: wakeFor(20_000), recheckAt: now + 20_000 },
  },
  {
    name: 'a woken builder without connections is routable and kept while the request lasts',
    view: view({ reports: [report('a', { wake: [wakeFor(20_000)] })] }),
    expect: { needed: 1, routable: ['buildkitd-0'], scaleDown: undefined, recheckAt: now + 20_000 },
  },
  {
    name: "another replica's wake request keeps the builder on the leader",
    view: view({
      reports: [
        report('a', { pods: lastActive('buildkitd-0', now - 10 * idle) }),
        report('b', { wake: [wakeFor(20_000)] }),
      ],
    }),
    expect: { needed: 1, scaleDown: undefined },
  },
  {
    name: 'once the request ended, the ordinary idle rules apply: a builder that never had a connection goes at once',
    view: view({ reports: [report('a', { wake: [wakeFor(0)] })] }),
    expect: { needed: 0, wake: undefined, scaleDown: 'propose' },
  },
  {
    name: 'once the request ended, a builder used during the window waits for the idle timeout from its last close',
    view: view({ reports: [report('a', { wake: [wakeFor(-1000)], pods: lastActive('buildkitd-0', now - 5000) })] }),
    expect: { needed: 0, scaleDown: undefined, recheckAt: now - 5000 + idle },
  },
  {
    name: 'a wake request asks for several builders, up to the maximum',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 0 },
      pods: [],
      reports: [report('a', { wake: [wakeFor(60_000, 5)] })],
    }),
    expect: { needed: 3, scaleUpTo: 3, wake: wakeFor(60_000, 5) },
  },
  {
    name: 'connections above the wake request still add builders',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0), pod(1)],
      reports: [report('a', { held: 5, wake: [wakeFor(60_000, 2)] })],
    }),
    expect: { needed: 3, scaleUpTo: 3 },
  },
  {
    name: 'no scale-down below the wake request: the builder above it may go',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 3 },
      pods: [pod(0), pod(1), pod(2)],
      reports: [report('a', { wake: [wakeFor(60_000, 2)] })],
    }),
    expect: { needed: 2, routable: ['buildkitd-0', 'buildkitd-1'], scaleDown: 'propose' },
  },
  {
    name: 'of several requests the strongest in force wins, and the earliest end is rechecked',
    view: view({
      policy: pool,
      statefulSet: { exists: true, replicas: 2 },
      pods: [pod(0), pod(1)],
      reports: [report('a', { wake: [wakeFor(10_000, 2)] }), report('b', { wake: [wakeFor(36_000_000, 1)] })],
    }),
    expect: { needed: 2, wake: wakeFor(10_000, 2), scaleDown: undefined, recheckAt: now + 10_000 },
  },
  {
    name: 'a wake request withdraws a proposal that would go below it',
    view: view({ proposal: proposal(), reports: [report('a', { ack: 'p1', wake: [wakeFor(20_000)] })] }),
    expect: { scaleDown: 'withdraw', withdrawReason: /needs 1 replicas/ },
  },
  {
    name: 'a stale report still counts its wake request',
    view: view({ reports: [report('a'), report('b', { fresh: false, staleForMs: 10_000, wake: [wakeFor(20_000)] })] }),
    expect: { needed: 1, scaleDown: undefined },
  },
  {
    name: 'a report stale past the maximum no longer counts its wake request',
    view: view({ reports: [report('a'), report('b', { fresh: false, staleForMs: 600_000, wake: [wakeFor(20_000)] })] }),
    expect: { needed: 0, wake: undefined, scaleDown: 'propose' },
  },
];

for (const c of cases) {
  test(c.name, () => {
    const decision = decide(c.view);
    const { scaleDown, withdrawReason, ...rest } = c.expect;
    for (const [key, value] of Object.entries(rest))
      assert.deepEqual(decision[key as keyof ScaleDecision], value, `${key}: ${JSON.stringify(decision)}`);
    if ('scaleDown' in c.expect) assert.equal(decision.scaleDown?.kind, scaleDown, JSON.stringify(decision));
    if (withdrawReason) {
      assert.equal(decision.scaleDown?.kind, 'withdraw');
      if (decision.scaleDown?.kind === 'withdraw') assert.match(decision.scaleDown.reason, withdrawReason);
    }
  });
}

test('the proposal names the highest ordinal with its pod key and is deterministic', () => {
  const v = view({
    policy: pool,
    statefulSet: { exists: true, replicas: 2 },
    pods: [pod(0), pod(1)],
    reports: [report('a')],
  });
  const first = decide(v);
  assert.deepEqual(first, decide(v));
  assert.equal(first.scaleDown?.kind, 'propose');
  if (first.scaleDown?.kind === 'propose') {
    assert.deepEqual(first.scaleDown.proposal.pods, { 'buildkitd-1': 'uid-1' });
    assert.equal(first.scaleDown.proposal.from, 2);
    assert.equal(first.scaleDown.proposal.to, 1);
  }
});

test('new demand that needs the pod: withdraw, and the pod is routable again once withdrawn', () => {
  const demand = [report('a', { ack: 'p1', held: 1 })];
  const proposed = decide(view({ proposal: proposal(), reports: demand }));
  assert.equal(proposed.scaleDown?.kind, 'withdraw');
  if (proposed.scaleDown?.kind === 'withdraw') assert.match(proposed.scaleDown.reason, /demand needs 1/);
  assert.deepEqual(proposed.routable, [], 'fenced while the proposal stands');
  // The leader removed the proposal from the Lease: the next decision, on any replica, routes to the pod again.
  const withdrawn = decide(view({ proposal: undefined, reports: [report('a', { held: 1 })] }));
  assert.deepEqual(withdrawn.routable, ['buildkitd-0']);
  assert.equal(withdrawn.scaleDown, undefined);
  assert.equal(withdrawn.scaleUpTo, undefined, 'the pod is there: nothing to wake');
});

test('a replica fences a proposal by when it saw it, and acknowledges only while it fences', () => {
  const policyTimeout = view().policy.proposalTimeoutMs;
  assert.equal(fences(proposal({ proposedAt: now - 3 * policyTimeout }), [pod(0)], now, view().policy), true);
  assert.equal(
    fences(proposal({ proposedAt: now - 3 * policyTimeout - 1 }), [pod(0)], now, view().policy),
    false,
    'abandoned',
  );
  assert.equal(
    fences(proposal({ proposedAt: now - 10 * policyTimeout, committed: true }), [pod(0)], now, view().policy),
    true,
    'committed: until the pod is gone',
  );
  assert.equal(fences(proposal({ committed: true }), [], now, view().policy), false);
});
