import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeLeaseStore } from '../../test/support/fake-lease-store.ts';
import { ManualClock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import { activityAnnotation, decodeActivity, type PublishedActivity } from './lease-annotations.ts';
import { ActivityPublisher } from './activity-publisher.ts';
import { raises } from './report-raises.ts';

const flush = async () => {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

async function advance(clock: ManualClock, ms: number, step = 250) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await flush();
  }
}

const leaseName = 'bka-gateway-0';
const wallStart = 1_700_000_000_000;

function publisher(
  store: FakeLeaseStore,
  clock: ManualClock,
  options: {
    events?: GatewayEvent[];
    read?: () => Omit<PublishedActivity, 'instance'>;
    ownerPod?: { name: string; uid: string };
    onIdentityConflict?: (error: GatewayError) => void;
  } = {},
) {
  return new ActivityPublisher(
    {
      store,
      leaseName,
      identity: 'gateway-0',
      labels: { 'buildkitd-autoscaler/group': 'bka', 'buildkitd-autoscaler/role': 'activity' },
      leaseDurationMs: 6_000,
      renewPeriodMs: 1_000,
      connectionsPerReplica: 2,
      clock,
      read: options.read ?? (() => ({ open: 0, held: 0, pods: {}, since: wallStart, ack: undefined, draining: false })),
      ownerPod: options.ownerPod,
    },
    {
      emit: (e) => options.events?.push(e),
      identityConflict: options.onIdentityConflict ?? (() => undefined),
    },
  );
}

const published = (store: FakeLeaseStore) =>
  decodeActivity(store.leases.get(leaseName)?.metadata?.annotations?.[activityAnnotation]);

test('start publishes the report at once: labels, holder, lease duration, owner pod, the counts read', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const counts = {
    open: 2,
    held: 1,
    pods: { 'buildkitd-0': { open: 2, lastActiveAt: wallStart + 5 } },
    since: wallStart,
    ack: 'p-1',
    draining: false,
  };
  const p = publisher(store, clock, { read: () => counts, ownerPod: { name: 'gateway-0', uid: 'uid-0' } });
  await p.start();
  const lease = store.leases.get(leaseName);
  assert.equal(lease?.spec?.holderIdentity, 'gateway-0');
  assert.equal(lease?.spec?.leaseDurationSeconds, 6);
  assert.deepEqual(lease?.metadata?.labels, {
    'buildkitd-autoscaler/group': 'bka',
    'buildkitd-autoscaler/role': 'activity',
  });
  assert.deepEqual(lease?.metadata?.ownerReferences, [
    { apiVersion: 'v1', kind: 'Pod', name: 'gateway-0', uid: 'uid-0' },
  ]);
  assert.deepEqual(published(store), { ...counts, instance: p.instance });
  await p.stop();
});

test('it renews every renew period with what it reads then, and stops renewing once stopped', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  let open = 0;
  const p = publisher(store, clock, {
    read: () => ({ open, held: 0, pods: {}, since: wallStart, ack: undefined, draining: false }),
  });
  await p.start();
  const first = store.leases.get(leaseName);
  open = 3;
  await advance(clock, 1_000);
  const renewed = store.leases.get(leaseName);
  assert.notEqual(renewed?.metadata?.resourceVersion, first?.metadata?.resourceVersion);
  assert.notEqual(String(renewed?.spec?.renewTime), String(first?.spec?.renewTime));
  assert.equal(published(store)?.open, 3);
  const before = store.writes;
  await advance(clock, 5_000);
  assert.equal(store.writes - before, 5, 'one write per renew period');
  await p.stop();
  assert.equal(store.leases.has(leaseName), false, 'deleted on stop');
  const afterStop = store.writes;
  p.publishSoon();
  await advance(clock, 5_000);
  assert.equal(store.writes, afterStop, 'nothing written after stop');
});

test('publishSoon coalesces a burst into one write, then renewals continue', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  let open = 0;
  const p = publisher(store, clock, {
    read: () => ({ open, held: 0, pods: {}, since: wallStart, ack: undefined, draining: false }),
  });
  await p.start();
  await advance(clock, 500, 100);
  const before = store.writes;
  for (open = 1; open <= 50; open += 1) p.publishSoon();
  clock.advance(0);
  await flush();
  assert.equal(store.writes - before, 1, 'a burst of changes is one write');
  assert.equal(published(store)?.open, 51, 'with the latest counts');
  // Right after a write, the next publishSoon waits the minimum gap instead of writing at once.
  open = 53;
  p.publishSoon();
  clock.advance(0);
  await flush();
  assert.equal(store.writes - before, 1);
  await advance(clock, 100, 50);
  assert.equal(store.writes - before, 2);
  await advance(clock, 1_000);
  assert.equal(store.writes - before, 3, 'renewal continues a renew period later');
  await p.stop();
});

test('a second process with the same identity fails at start with BKA_IDENTITY_CONFLICT once the first renews', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const first = publisher(api.client(), clock);
  await first.start();
  const second = publisher(api.client(), clock);
  let outcome: unknown;
  const started = second.start().then(
    () => (outcome = 'started'),
    (error: unknown) => (outcome = error),
  );
  await advance(clock, 1_500);
  await started;
  assert.ok(outcome instanceof GatewayError, `rejected, not ${String(outcome)}`);
  assert.equal(outcome.code, ErrorCode.IdentityConflict);
  assert.match(outcome.message, /--identity \/ POD_NAME/);
  assert.equal(published(api)?.instance, first.instance, 'the first process keeps its report');
  await first.stop();
});

test('a dead predecessor with the same identity (a restarted container) is waited out for a lease duration, then taken over', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const deadClient = api.client();
  await publisher(deadClient, clock).start();
  // It dies without stopping: none of its renewals reaches the API server any more.
  deadClient.gate = new Promise(() => undefined);
  const events: GatewayEvent[] = [];
  const successor = publisher(api.client(), clock, { events });
  let startedAt: number | undefined;
  const waitFrom = clock.now();
  const started = successor.start().then(() => (startedAt = clock.now()));
  await advance(clock, 3_000);
  assert.equal(startedAt, undefined, 'still waiting while the old report may be renewed');
  await advance(clock, 4_000);
  await started;
  assert.ok(startedAt !== undefined && startedAt - waitFrom >= 6_000, 'waited a whole lease duration');
  assert.equal(published(api)?.instance, successor.instance, 'the report is the successor now');
  assert.deepEqual(
    events.filter((e) => e.kind === 'lease_failed'),
    [],
  );
  await successor.stop();
});

/** Two processes with one identity: how each start ended, and what each wrote. */
async function twins(
  firstClient: FakeLeaseStore,
  secondClient: FakeLeaseStore,
  clock: ManualClock,
  startSecondAfterMs: number,
) {
  const conflicts: GatewayError[][] = [[], []];
  const outcomes: unknown[] = [undefined, undefined];
  const processes = [firstClient, secondClient].map((client, i) =>
    publisher(client, clock, { onIdentityConflict: (error) => conflicts[i]!.push(error) }),
  );
  const start = (i: number) =>
    processes[i]!.start().then(
      () => (outcomes[i] = 'started'),
      (error: unknown) => (outcomes[i] = error),
    );
  void start(0);
  if (startSecondAfterMs > 0) await advance(clock, startSecondAfterMs);
  void start(1);
  await advance(clock, 20_000);
  const refused = outcomes.map(
    (outcome, i) =>
      (outcome instanceof GatewayError && outcome.code === ErrorCode.IdentityConflict) ||
      conflicts[i]!.some((c) => c.code === ErrorCode.IdentityConflict),
  );
  return { processes, outcomes, conflicts, refused };
}

test('two processes with one identity starting at the same moment (both read 404): exactly one is refused, and it never writes', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const clients = [api.client(), api.client()];
  const { processes, outcomes, refused } = await twins(clients[0]!, clients[1]!, clock, 0);
  assert.equal(refused.filter(Boolean).length, 1, `exactly one refused: ${outcomes.map(String).join(' / ')}`);
  const survivor = refused[0] ? 1 : 0;
  assert.equal(outcomes[1 - survivor] instanceof GatewayError, true, 'refused at start');
  assert.equal(published(api)?.instance, processes[survivor]!.instance, "the report is the survivor's");
  assert.ok(clients[1 - survivor]!.writes <= 1, 'the refused one wrote at most its failed create');
  assert.equal(clients[survivor]!.writes >= 15, true, 'the survivor kept renewing');
});

test("a failed first read at start (API blip) does not skip the wait-out: the second process never writes onto the first's report", async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const clients = [api.client(), api.client()];
  clients[1]!.failNext = 500;
  const { processes, refused } = await twins(clients[0]!, clients[1]!, clock, 1_000);
  assert.deepEqual(refused, [false, true], 'the second is refused');
  assert.equal(clients[1]!.writes, 0, 'the second never wrote');
  assert.equal(published(api)?.instance, processes[0]!.instance);
});

test('a conflict seen while running (another process took the report over): stop publishing, report it once, never write onto it', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const conflicts: GatewayError[] = [];
  const events: GatewayEvent[] = [];
  const client = api.client();
  const p = publisher(client, clock, { events, onIdentityConflict: (error) => conflicts.push(error) });
  await p.start();
  // Another process with this identity waited this one out and took the Lease over.
  const taken = structuredClone(api.leases.get(leaseName)!);
  taken.metadata!.annotations = {
    [activityAnnotation]: JSON.stringify({
      instance: 'the-other-process',
      open: 3,
      held: 0,
      pods: {},
      since: new Date(wallStart).toISOString(),
    }),
  };
  const stored = await api.client().update(taken);
  const writesBefore = client.writes;
  p.publishSoon();
  await advance(clock, 5_000);
  assert.equal(conflicts.length, 1, 'reported once');
  assert.equal(conflicts[0]?.code, ErrorCode.IdentityConflict);
  assert.ok(events.some((e) => e.kind === 'lease_failed' && e.code === ErrorCode.IdentityConflict));
  assert.equal(client.writes, writesBefore, "nothing written onto the other's report");
  assert.equal(api.leases.get(leaseName)?.metadata?.resourceVersion, stored.metadata?.resourceVersion);
  await p.stop();
  assert.equal(
    api.leases.get(leaseName)?.metadata?.resourceVersion,
    stored.metadata?.resourceVersion,
    'stop neither writes nor deletes it',
  );
});

test('an API server that fails the writes: a lease_failed event with its code, and the next renewal recovers', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const events: GatewayEvent[] = [];
  let open = 0;
  const p = publisher(store, clock, {
    events,
    read: () => ({ open, held: 0, pods: {}, since: wallStart, ack: undefined, draining: false }),
  });
  await p.start();
  store.failWith = 500;
  open = 4;
  await advance(clock, 2_000);
  assert.ok(
    events.some((e) => e.kind === 'lease_failed' && e.action === 'publish' && e.code === ErrorCode.LeaseFailed),
  );
  store.failWith = undefined;
  await advance(clock, 1_000);
  assert.equal(published(store)?.open, 4);
  await p.stop();
});

type Report = Omit<PublishedActivity, 'instance'>;
const idle: Report = {
  open: 0,
  held: 0,
  pods: { 'buildkitd-0': { open: 0, lastActiveAt: wallStart } },
  since: wallStart,
  ack: undefined,
  draining: false,
};
const busy = (report: Report, open = 1): Report => ({
  ...report,
  open,
  pods: { ...report.pods, 'buildkitd-0': { open, lastActiveAt: wallStart } },
});

/** A publisher whose report is `state.report`, told of every change the way the scale controller tells it. */
async function started(initial: Report) {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(wallStart);
  const state = { report: initial };
  const p = publisher(store, clock, { read: () => state.report });
  await p.start();
  const change = (report: Report) => {
    state.report = report;
    p.publishSoon();
  };
  return { store, clock, p, change };
}

test('a builder flipping busy/idle every few ms costs about one write per renew period, not one per gap', async () => {
  const { store, clock, p, change } = await started(idle);
  const before = store.writes;
  let shownBusy = 0;
  for (let t = 0; t < 10_000; t += 5) {
    change(t % 10 === 0 ? busy(idle) : { ...idle, pods: { 'buildkitd-0': { open: 0, lastActiveAt: wallStart + t } } });
    clock.advance(5);
    await flush();
    if ((published(store)?.pods['buildkitd-0']?.open ?? 0) > 0) shownBusy += 1;
  }
  // A renewal may catch it idle: then one more write shows it busy again. 10 renew periods: at most 20 writes.
  assert.ok(store.writes - before <= 20, `${store.writes - before} writes in 10 s`);
  assert.ok(shownBusy > 0, 'the others saw the builder busy');
  await p.stop();
});

test('a change that raises what the others see is written within the minimum gap', async () => {
  const raising: Array<[string, (report: Report) => Report]> = [
    ['a pod newly busy', (r) => busy(r)],
    ['held connections', (r) => ({ ...r, held: 1 })],
    ['needed replicas up', (r) => busy(r, 3)],
    ['a new ack', (r) => ({ ...r, ack: 'proposal-2' })],
    ['a wake request', (r) => ({ ...r, wake: [{ replicas: 2, until: wallStart + 60_000 }] })],
    ['draining', (r) => ({ ...r, draining: true })],
  ];
  for (const [what, raise] of raising) {
    const base =
      what === 'needed replicas up' ? busy(idle, 2) : what === 'a new ack' ? { ...idle, ack: 'proposal-1' } : idle;
    const { store, clock, p, change } = await started(base);
    await advance(clock, 50, 50);
    const before = store.writes;
    const raised = raise(base);
    change(raised);
    await advance(clock, 50, 50);
    assert.equal(store.writes, before + 1, `${what}: written once the minimum gap has passed`);
    assert.deepEqual(published(store), { ...raised, instance: p.instance }, what);
    await p.stop();
  }
});

test('a change that only lowers what the others see waits for the next renewal', async () => {
  const lowering: Array<[string, Report, Report]> = [
    ['busy -> idle', busy(idle), { ...idle, pods: { 'buildkitd-0': { open: 0, lastActiveAt: wallStart + 10 } } }],
    ['needed down', busy(idle, 3), busy(idle, 2)],
    ['held gone', { ...idle, held: 2 }, { ...idle, lastHeldCloseAt: wallStart + 10 }],
    ['ack withdrawn', { ...idle, ack: 'proposal-1' }, idle],
  ];
  for (const [what, from, to] of lowering) {
    const { store, clock, p, change } = await started(from);
    await advance(clock, 200, 50);
    const before = store.writes;
    change(to);
    await advance(clock, 750, 50);
    assert.equal(store.writes, before, `${what}: not written before the renewal`);
    await advance(clock, 50, 50);
    assert.equal(store.writes, before + 1, `${what}: written at the renewal`);
    assert.deepEqual(published(store), { ...to, instance: p.instance }, what);
    await p.stop();
  }
});

test('busy -> idle -> busy against a published busy report costs no write at all', async () => {
  const { store, clock, p, change } = await started(busy(idle));
  await advance(clock, 200, 50);
  const before = store.writes;
  change(idle);
  clock.advance(20);
  await flush();
  change(busy(idle));
  await advance(clock, 700, 50);
  assert.equal(store.writes, before);
  await p.stop();
});

test('a raise undone before the gap has passed is not written before the renewal', async () => {
  const { store, clock, p, change } = await started(idle);
  await advance(clock, 50, 50);
  const before = store.writes;
  change(busy(idle));
  clock.advance(20);
  await flush();
  change({ ...idle, pods: { 'buildkitd-0': { open: 0, lastActiveAt: wallStart + 70 } } });
  await advance(clock, 900, 50);
  assert.equal(store.writes, before);
  await p.stop();
});

test('stopping publishes the final state not yet written, then deletes the Lease', async () => {
  const { store, clock, p, change } = await started({ ...busy(idle), draining: true });
  await advance(clock, 200, 50);
  const final: Report = {
    ...idle,
    pods: { 'buildkitd-0': { open: 0, lastActiveAt: wallStart + 200 } },
    draining: true,
  };
  change(final);
  const versions: Array<PublishedActivity | undefined> = [];
  const update = store.update.bind(store);
  store.update = async (lease) => {
    const stored = await update(lease);
    versions.push(decodeActivity(stored.metadata?.annotations?.[activityAnnotation]));
    return stored;
  };
  await p.stop();
  assert.deepEqual(versions, [{ ...final, instance: p.instance }], 'the final state, once');
  assert.equal(store.leases.has(leaseName), false, 'deleted');
});

test('with a cap, one more connection on a busy pod raises what the others see (they route under the cap by it); without, it waits for the renewal', () => {
  const wide = { ...idle, pods: { ...idle.pods, 'buildkitd-1': { open: 0, lastActiveAt: wallStart } } };
  const onePlusOne = {
    ...busy(wide),
    open: 2,
    pods: { ...busy(wide).pods, 'buildkitd-1': { open: 1, lastActiveAt: wallStart } },
  };
  const twoOnFirst = {
    ...onePlusOne,
    open: 3,
    pods: { ...onePlusOne.pods, 'buildkitd-0': { open: 2, lastActiveAt: wallStart } },
  };
  assert.equal(raises(onePlusOne, twoOnFirst, 8, true), true);
  assert.equal(raises(onePlusOne, twoOnFirst, 8, false), false);
  assert.equal(raises(twoOnFirst, onePlusOne, 8, true), false, 'fewer connections only lower');
});
