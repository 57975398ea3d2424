import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeLeaseStore } from '../../test/support/fake-lease-store.ts';
import { ManualClock } from '../clock.ts';
import type { GatewayEvent } from '../events.ts';
import { wakeAnnotation, WakeLease } from './wake-lease.ts';

const now = 1_700_000_000_000;
const minute = 60_000;

function setup(store = new FakeLeaseStore()) {
  const events: GatewayEvent[] = [];
  const wake = new WakeLease(
    {
      store,
      name: 'bka-wake',
      labels: { 'buildkitd-autoscaler/role': 'wake' },
      leases: () => [...store.leases.values()],
      clock: new ManualClock(now),
    },
    { emit: (event) => events.push(event) },
  );
  return { store, wake, events };
}

test('a recorded wake is read back by another replica from the Lease, never shortened by a shorter one', async () => {
  const { store, wake } = setup();
  assert.deepEqual(wake.read(), []);
  assert.equal(await wake.record([{ replicas: 1, until: now + 600 * minute }]), true);
  const other = setup(store.client()).wake;
  assert.deepEqual(other.read(), [{ replicas: 1, until: now + 600 * minute }]);
  assert.equal(
    await other.record([
      { replicas: 1, until: now + 10 * minute },
      { replicas: 2, until: now + 5 * minute },
    ]),
    true,
  );
  assert.deepEqual(wake.read(), [
    { replicas: 2, until: now + 5 * minute },
    { replicas: 1, until: now + 600 * minute },
  ]);
  assert.equal(store.leases.get('bka-wake')?.metadata?.labels?.['buildkitd-autoscaler/role'], 'wake');
});

test('expired and malformed entries are dropped; a failed write is logged with BKA_LEASE_FAILED', async () => {
  const { store, wake, events } = setup();
  store.leases.set('bka-wake', {
    metadata: {
      name: 'bka-wake',
      resourceVersion: '1',
      annotations: {
        [wakeAnnotation]: JSON.stringify([
          { replicas: 1, until: new Date(now - 1).toISOString() },
          { replicas: 'x' },
          7,
        ]),
      },
    },
  });
  assert.deepEqual(wake.read(), []);
  await wake.record([{ replicas: 3, until: now + minute }]);
  assert.equal(
    store.leases.get('bka-wake')?.metadata?.annotations?.[wakeAnnotation],
    JSON.stringify([
      { replicas: 3, until: new Date(now + minute).toISOString(), writtenAt: new Date(now).toISOString() },
    ]),
  );
  store.failWith = 403;
  assert.equal(await wake.record([{ replicas: 1, until: now + minute }]), false);
  assert.deepEqual(
    events.map((e) => e.kind === 'lease_failed' && [e.code, e.status]),
    [['BKA_LEASE_FAILED', 403]],
  );
});

test("a wake written by a replica whose clock is 10 min off is kept for its real remaining length, never its writer's instant", async () => {
  const store = new FakeLeaseStore();
  const replica = (offset: number) =>
    new WakeLease(
      {
        store: store.client(),
        name: 'bka-wake',
        labels: {},
        leases: () => [...store.leases.values()],
        clock: new ManualClock(now + offset),
      },
      { emit: () => {} },
    );
  // Ahead: its until is 10 min later on our clock than the window really lasts.
  assert.equal(await replica(10 * minute).record([{ replicas: 1, until: now + 10 * minute + 30 * minute }]), true);
  const reader = replica(0);
  assert.deepEqual(reader.read(), [{ replicas: 1, until: now + 30 * minute }]);
  // Behind: its until has already passed on our clock, although 5 min of the window remain.
  store.leases.clear();
  assert.equal(await replica(-10 * minute).record([{ replicas: 2, until: now - 10 * minute + 5 * minute }]), true);
  assert.deepEqual(replica(0).read(), [{ replicas: 2, until: now + 5 * minute }]);
  // Merged into our own write, the other's entry is moved onto our clock first and stays readable by a third clock.
  assert.equal(await replica(0).record([{ replicas: 1, until: now + 20 * minute }]), true);
  assert.deepEqual(replica(3 * minute).read(), [
    { replicas: 2, until: now + 3 * minute + 5 * minute },
    { replicas: 1, until: now + 3 * minute + 20 * minute },
  ]);
});

test('an entry of the previous format (no writtenAt) is read on our clock as before; a version is timed when first seen', () => {
  const clock = new ManualClock(now);
  const store = new FakeLeaseStore();
  const reader = new WakeLease(
    { store, name: 'bka-wake', labels: {}, leases: () => [...store.leases.values()], clock },
    { emit: () => {} },
  );
  store.leases.set('bka-wake', {
    metadata: {
      name: 'bka-wake',
      resourceVersion: '1',
      annotations: {
        [wakeAnnotation]: JSON.stringify([
          { replicas: 1, until: new Date(now + 5 * minute).toISOString() },
          {
            replicas: 2,
            until: new Date(now + 2 * minute).toISOString(),
            writtenAt: new Date(now - minute).toISOString(),
          },
        ]),
      },
    },
  });
  const expected = [
    { replicas: 2, until: now + 3 * minute },
    { replicas: 1, until: now + 5 * minute },
  ];
  assert.deepEqual(reader.read(), expected);
  clock.advance(minute);
  assert.deepEqual(reader.read(), expected);
});
