import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeLeaseStore } from '../../test/support/fake-lease-store.ts';
import { ManualClock } from '../clock.ts';
import type { GatewayEvent } from '../events.ts';
import { LeaderElector } from './leader-election.ts';

const flush = async () => {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

function candidate(store: FakeLeaseStore, clock: ManualClock, identity: string, events: GatewayEvent[] = []) {
  return new LeaderElector(
    {
      store,
      name: 'buildkitd-autoscaler',
      identity,
      labels: { 'buildkitd-autoscaler/group': 'buildkitd-autoscaler' },
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      random: () => 0,
    },
    { emit: (e) => events.push(e) },
  );
}

/** Advances in retry-period steps so every tick's requests settle before the next. */
async function advance(clock: ManualClock, ms: number, step = 500) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await flush();
  }
}

test('the first candidate creates the Lease and leads', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const events: GatewayEvent[] = [];
  const a = candidate(store, clock, 'a', events);
  a.start();
  await advance(clock, 1);
  assert.equal(a.isLeader, true);
  const lease = store.leases.get('buildkitd-autoscaler');
  assert.equal(lease?.spec?.holderIdentity, 'a');
  assert.equal(lease?.spec?.leaseDurationSeconds, 15);
  assert.match(String(lease?.spec?.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(lease?.metadata?.labels?.['buildkitd-autoscaler/group'], 'buildkitd-autoscaler');
  assert.ok(events.some((e) => e.kind === 'leader_changed' && e.leading));
});

test('a second candidate waits while the leader renews, and takes over a lease duration after renewals stop', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const aClient = api.client();
  const a = candidate(aClient, clock, 'a');
  const b = candidate(api.client(), clock, 'b');
  a.start();
  await advance(clock, 1);
  b.start();
  await advance(clock, 60_000);
  assert.equal(a.isLeader, true);
  assert.equal(b.isLeader, false);
  assert.equal(b.holder, 'a');

  // a is cut off from the API server (its requests hang); b still reaches it.
  aClient.gate = new Promise(() => undefined);
  const cutAt = clock.now();
  await advance(clock, 12_000);
  assert.equal(a.isLeader, false, 'a stepped down at its renew deadline');
  assert.equal(b.isLeader, false, 'b waits a whole lease duration without a renewal, on its own clock');
  await advance(clock, 8_000);
  assert.equal(b.isLeader, true);
  assert.ok(clock.now() - cutAt <= 15_000 + 2 * 2_000 + 1_000);
  assert.equal(api.leases.get('buildkitd-autoscaler')?.spec?.leaseTransitions, 1);
});

test('a leader that cannot renew stops leading at the renew deadline, even while requests hang', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const events: GatewayEvent[] = [];
  const a = candidate(store, clock, 'a', events);
  a.start();
  await advance(clock, 1);
  assert.equal(a.isLeader, true);
  store.gate = new Promise(() => undefined);
  await advance(clock, 9_000);
  assert.equal(a.isLeader, true, 'the last renewal is less than the renew deadline ago');
  await advance(clock, 2_000);
  assert.equal(a.isLeader, false);
  const lost = events.find((e) => e.kind === 'leader_changed' && !e.leading);
  assert.match(lost?.kind === 'leader_changed' ? lost.reason : '', /renew deadline/);
});

test('failing renewals (not hanging) also end leadership at the renew deadline', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const events: GatewayEvent[] = [];
  const a = candidate(store, clock, 'a', events);
  a.start();
  await advance(clock, 1);
  store.failWith = 500;
  await advance(clock, 12_000);
  assert.equal(a.isLeader, false);
  assert.ok(events.some((e) => e.kind === 'lease_failed' && e.action === 'renew' && e.code === 'BKA_LEASE_FAILED'));
});

test('release on stop lets the next candidate lead at its next retry, not a lease duration later', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const a = candidate(store, clock, 'a');
  const b = candidate(store, clock, 'b');
  a.start();
  await advance(clock, 1);
  b.start();
  await advance(clock, 4_000);
  assert.equal(b.isLeader, false);
  await a.stop();
  assert.equal(a.isLeader, false);
  assert.equal(store.leases.get('buildkitd-autoscaler')?.spec?.holderIdentity, undefined);
  await advance(clock, 2_500);
  assert.equal(b.isLeader, true);
});

/**
 * Candidates on one API server whose requests and answers each take 0-1.5 s, and now and then 8 s (longer
 * than the renew deadline): at no point may two of them lead, and someone must win.
 */
async function race(identities: string[]) {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const candidates = identities.map((id) => {
    const client = api.client();
    client.clock = clock;
    client.latency = () => (random() < 0.05 ? 8_000 : random() * 1_500);
    return candidate(client, clock, id);
  });
  for (const c of candidates) c.start();
  let everLed = 0;
  for (let t = 0; t < 120_000; t += 100) {
    clock.advance(100);
    await flush();
    const leading = candidates.filter((c) => c.isLeader).length;
    assert.ok(leading <= 1, `${leading} candidates lead at ${clock.now()} ms`);
    if (leading === 1) everLed += 1;
  }
  assert.ok(everLed > 0, 'a candidate won');
}

test('two candidates racing for a free Lease with slow answers: never two leaders at any moment, and one wins', async () => {
  await race(['a', 'b', 'c']);
});

test('two processes sharing one identity race for the Lease: never two leaders at any moment', async () => {
  await race(['a', 'a', 'a']);
});

test('a renewal answered after the renew deadline does not make the stepped-down leader lead again', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const events: GatewayEvent[] = [];
  const a = candidate(store, clock, 'a', events);
  a.start();
  await advance(clock, 1);
  let release!: () => void;
  store.gate = new Promise((resolve) => (release = resolve));
  await advance(clock, 11_000);
  assert.equal(a.isLeader, false, 'stepped down at the renew deadline');
  // The API server answers the renewal sent ~9 s ago: the Lease was ours all along, but that answer is too late.
  store.gate = undefined;
  release();
  await flush();
  assert.equal(a.isLeader, false, 'an answer arriving after the step-down does not restore the lead');
  assert.equal(events.filter((e) => e.kind === 'leader_changed' && e.leading).length, 1);
});

test("the leader's requests are aborted when it steps down", async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const a = candidate(store, clock, 'a');
  a.start();
  await advance(clock, 1);
  const before = store.signals.length;
  store.gate = new Promise(() => undefined);
  const annotated = a.setAnnotation('x', 'late');
  await advance(clock, 9_000);
  assert.equal(a.isLeader, true);
  const held = store.signals.slice(before);
  assert.ok(
    held.length > 0 && held.every((signal) => !signal.aborted),
    'the held requests carry a signal, not aborted yet',
  );
  await advance(clock, 2_000);
  assert.equal(a.isLeader, false);
  assert.ok(
    held.every((signal) => signal.aborted),
    'every request sent while leading was aborted at the step-down',
  );
  assert.equal(await annotated, false, 'the held annotation write gave up');
});

test('setAnnotation never writes onto a Lease another candidate has taken meanwhile', async () => {
  const api = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const a = candidate(api.client(), clock, 'a');
  a.start();
  await advance(clock, 1);
  assert.equal(a.isLeader, true);
  // b takes the Lease (a's renewals did not reach the API server for a lease duration, as b saw it).
  const taken = structuredClone(api.leases.get('buildkitd-autoscaler')!);
  taken.spec = { ...taken.spec, holderIdentity: 'b' };
  await api.client().update(taken);
  await advance(clock, 2_000);
  assert.equal(a.isLeader, true, 'a has not noticed yet: its renew deadline has not passed');
  assert.equal(await a.setAnnotation('buildkitd-autoscaler/scale-down', 'from-a'), false);
  const lease = api.leases.get('buildkitd-autoscaler');
  assert.equal(lease?.spec?.holderIdentity, 'b');
  assert.equal(
    lease?.metadata?.annotations?.['buildkitd-autoscaler/scale-down'],
    undefined,
    "b's Lease carries nothing of a's",
  );
  await a.stop();
  assert.equal(
    api.leases.get('buildkitd-autoscaler')?.spec?.holderIdentity,
    'b',
    "stopping does not release b's Lease",
  );
});

test('the leader keeps its annotations across renewals; others cannot write them', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const a = candidate(store, clock, 'a');
  const b = candidate(store, clock, 'b');
  a.start();
  await advance(clock, 1);
  b.start();
  assert.equal(await a.setAnnotation('x', 'one'), true);
  assert.equal(await b.setAnnotation('x', 'two'), false);
  await advance(clock, 10_000);
  assert.equal(store.leases.get('buildkitd-autoscaler')?.metadata?.annotations?.['x'], 'one');
  assert.equal(b.annotation('x'), 'one');
  assert.equal(await a.setAnnotation('x', undefined), true);
  assert.equal(store.leases.get('buildkitd-autoscaler')?.metadata?.annotations?.['x'], undefined);
});

test('timings that would let a healthy leader lose its Lease are refused', () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock(1_700_000_000_000);
  const make = (leaseDurationMs: number, renewDeadlineMs: number, retryPeriodMs: number) =>
    new LeaderElector(
      { store, name: 'l', identity: 'a', labels: {}, leaseDurationMs, renewDeadlineMs, retryPeriodMs, clock },
      { emit: () => undefined },
    );
  assert.throws(() => make(10_000, 10_000, 2_000));
  assert.throws(() => make(15_000, 2_000, 2_000));
  assert.doesNotThrow(() => make(15_000, 10_000, 2_000));
});
