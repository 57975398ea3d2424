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
  return new LeaderElector({
    store,
    name: 'buildkitd-autoscaler',
    identity,
    labels: { 'buildkitd-autoscaler/group': 'buildkitd-autoscaler' },
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    clock,
    emit: (e) => events.push(e),
    wallNow: () => 1_700_000_000_000 + clock.now(),
    random: () => 0,
  });
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
  const clock = new ManualClock();
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
  const clock = new ManualClock();
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
  const clock = new ManualClock();
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
  const clock = new ManualClock();
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
  const clock = new ManualClock();
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

test('two candidates racing for a free Lease: exactly one wins (optimistic concurrency)', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock();
  const candidates = ['a', 'b', 'c'].map((id) => candidate(store, clock, id));
  for (const c of candidates) c.start();
  await advance(clock, 30_000);
  assert.equal(candidates.filter((c) => c.isLeader).length, 1);
});

test('the leader keeps its annotations across renewals; others cannot write them', async () => {
  const store = new FakeLeaseStore();
  const clock = new ManualClock();
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
  const clock = new ManualClock();
  const make = (leaseDurationMs: number, renewDeadlineMs: number, retryPeriodMs: number) =>
    new LeaderElector({ store, name: 'l', identity: 'a', labels: {}, leaseDurationMs, renewDeadlineMs, retryPeriodMs, clock, emit: () => undefined });
  assert.throws(() => make(10_000, 10_000, 2_000));
  assert.throws(() => make(15_000, 2_000, 2_000));
  assert.doesNotThrow(() => make(15_000, 10_000, 2_000));
});
