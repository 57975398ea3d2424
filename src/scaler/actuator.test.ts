import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import { ScaleActuator, type ScaleTarget } from './actuator.ts';

/** The scale subresource in memory, with optimistic concurrency; `failWith` answers every call with an HTTP status. */
class FakeScale implements ScaleTarget {
  replicas = 0;
  version = 1;
  writes: number[] = [];
  failWith: number[] = [];
  /** Another writer bumps the version between this read and the next write (once). */
  raceOnce = false;
  read() {
    const status = this.failWith.shift();
    if (status) return Promise.reject(Object.assign(new Error('api error'), { code: status }));
    const state = { replicas: this.replicas, resourceVersion: String(this.version) };
    if (this.raceOnce) {
      this.raceOnce = false;
      this.version += 1;
    }
    return Promise.resolve(state);
  }
  write(replicas: number, resourceVersion: string | undefined) {
    if (resourceVersion !== String(this.version))
      return Promise.reject(Object.assign(new Error('conflict'), { code: 409 }));
    this.replicas = replicas;
    this.version += 1;
    this.writes.push(replicas);
    return Promise.resolve();
  }
}

function setup() {
  const clock = new ManualClock();
  const events: GatewayEvent[] = [];
  const scale = new FakeScale();
  const failures: string[] = [];
  const actuator = new ScaleActuator(
    { target: scale, clock, retryMs: 1000 },
    { emit: (e) => events.push(e), failed: (e) => failures.push(e.code) },
  );
  return { clock, events, scale, actuator, failures };
}

const settle = async (clock: ManualClock, ms = 60_000) => {
  for (let t = 0; t < ms; t += 100) {
    clock.advance(100);
    for (let i = 0; i < 5; i += 1) await new Promise((r) => setImmediate(r));
  }
};

test('scale-up is "at least N": it writes only when below, and never lowers what another writer asked for', async () => {
  const { scale, actuator, events } = setup();
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.deepEqual(scale.writes, [1]);
  scale.replicas = 3;
  await actuator.ensureAtLeast(2, 'demand', () => true);
  assert.deepEqual(scale.writes, [1]);
  assert.equal(scale.replicas, 3);
  assert.ok(events.some((e) => e.kind === 'scale_skipped' && e.direction === 'up'));
});

test('a conflict (someone wrote in between) is read again and retried at once', async () => {
  const { scale, actuator } = setup();
  scale.raceOnce = true;
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.deepEqual(scale.writes, [1]);
});

test('scale-down goes from exactly R to R-1 with the version it read: a scale-up in between wins', async () => {
  const { scale, actuator } = setup();
  scale.replicas = 2;
  assert.equal(await actuator.scaleDown(3, 2, 'idle'), false, 'the scale is not at 3');
  scale.raceOnce = true;
  assert.equal(await actuator.scaleDown(2, 1, 'idle'), false, 'someone wrote between the read and the write');
  assert.equal(scale.replicas, 2);
  assert.equal(await actuator.scaleDown(2, 1, 'idle'), true);
  assert.equal(scale.replicas, 1);
});

test('scale-down re-checks that it may still write after reading the scale: if not, nothing is written', async () => {
  const { scale, actuator, events } = setup();
  scale.replicas = 2;
  let allowed = true;
  const read = scale.read.bind(scale);
  scale.read = async () => {
    const state = await read();
    allowed = false; // the lead is lost while the read is on its way
    return state;
  };
  assert.equal(await actuator.scaleDown(2, 1, 'idle', { stillAllowed: () => allowed }), false);
  assert.deepEqual(scale.writes, []);
  assert.equal(scale.replicas, 2);
  assert.ok(events.some((e) => e.kind === 'scale_skipped' && e.direction === 'down'));
});

test('scale-down hands its signal to the reads and writes, so a step-down aborts them', async () => {
  const { scale, actuator } = setup();
  scale.replicas = 1;
  const seen: Array<AbortSignal | undefined> = [];
  const read = scale.read.bind(scale);
  const write = scale.write.bind(scale);
  scale.read = (signal?: AbortSignal) => {
    seen.push(signal);
    return read();
  };
  scale.write = (replicas: number, resourceVersion: string | undefined, signal?: AbortSignal) => {
    seen.push(signal);
    return write(replicas, resourceVersion);
  };
  const leadership = new AbortController();
  assert.equal(await actuator.scaleDown(1, 0, 'idle', { stillAllowed: () => true, signal: leadership.signal }), true);
  assert.deepEqual(seen, [leadership.signal, leadership.signal]);
});

test('forbidden and not found fail fast with their codes and are kept until a call succeeds', async () => {
  const { scale, actuator, failures } = setup();
  scale.failWith = [403];
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.deepEqual(failures, [ErrorCode.ScaleForbidden]);
  assert.equal(actuator.currentFailure()?.code, ErrorCode.ScaleForbidden);
  scale.failWith = [404];
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.equal(actuator.currentFailure()?.code, ErrorCode.StatefulSetNotFound);
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.equal(actuator.currentFailure(), undefined);
  assert.deepEqual(scale.writes, [1]);
});

test('transient errors are retried with backoff while the replicas are still wanted, then given up with an event', async () => {
  const { clock, scale, actuator, events } = setup();
  scale.failWith = [500, 503, 500];
  const done = actuator.ensureAtLeast(1, 'demand', () => true);
  await settle(clock, 10_000);
  await done;
  assert.deepEqual(scale.writes, [1]);
  scale.failWith = Array.from({ length: 25 }, () => 500);
  scale.replicas = 0;
  const givenUp = actuator.ensureAtLeast(1, 'demand', () => true);
  await settle(clock, 60_000);
  await givenUp;
  assert.ok(events.some((e) => e.kind === 'wake_gave_up'));
  let wanted = true;
  scale.failWith = [500, 500, 500];
  const abandoned = actuator.ensureAtLeast(1, 'demand', () => wanted);
  wanted = false;
  await settle(clock, 5_000);
  await abandoned;
  assert.deepEqual(scale.writes, [1], 'not retried once nobody needs it');
});

test('a forbidden scale write is still reported for /readyz 30 s later while the API keeps answering 403, and clears after a successful write', async () => {
  const { scale, actuator, clock } = setup();
  scale.failWith = Array.from({ length: 1000 }, () => 403);
  await actuator.ensureAtLeast(1, 'demand', () => true);
  await settle(clock, 30_000);
  assert.equal(actuator.readinessFailure()?.code, ErrorCode.ScaleForbidden, '30 s later, still forbidden');
  scale.failWith = []; // the Role is fixed
  await settle(clock, 1000);
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.deepEqual(
    scale.writes.filter((r) => r === 1),
    [1],
  );
  assert.equal(actuator.readinessFailure(), undefined, 'cleared by the successful write');
  assert.equal(actuator.currentFailure(), undefined);
});

test('with nobody connecting, a periodic re-check clears a forbidden scale once the Role is fixed, without changing replicas', async () => {
  const { scale, actuator, clock, events } = setup();
  scale.failWith = Array.from({ length: 1000 }, () => 403);
  await actuator.ensureAtLeast(1, 'demand', () => true);
  await settle(clock, 10_000);
  assert.equal(actuator.readinessFailure()?.code, ErrorCode.ScaleForbidden);
  scale.failWith = [];
  await settle(clock, 60_000);
  assert.equal(actuator.readinessFailure(), undefined, 'cleared by a re-check');
  assert.equal(scale.replicas, 0, 'the re-check wrote the replicas it read');
  assert.ok(events.some((e) => e.kind === 'scale_recovered' && e.code === ErrorCode.ScaleForbidden));
});

test('one 403 (as right after an API-server restart) fails the held clients but does not turn /readyz red', async () => {
  const { scale, actuator, clock, failures } = setup();
  scale.failWith = [403];
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.equal(failures[0], ErrorCode.ScaleForbidden, 'held clients fail fast');
  for (let i = 0; i < 20; i += 1) {
    assert.equal(actuator.readinessFailure(), undefined, `/readyz stays green at ${clock.now()} ms`);
    await settle(clock, 500);
  }
  assert.equal(actuator.currentFailure(), undefined, 'the re-check cleared it: new clients wake buildkitd again');
});

test('after 20 failed attempts: BKA_WAKE_GAVE_UP is emitted, held clients fail with it, and the next demand tries again', async () => {
  const { scale, actuator, clock, events, failures } = setup();
  scale.failWith = Array.from({ length: 20 }, () => 503);
  const done = actuator.ensureAtLeast(1, 'demand', () => true);
  await settle(clock, 200_000);
  await done;
  assert.equal(events.filter((e) => e.kind === 'scale_failed').length, 20);
  assert.ok(events.some((e) => e.kind === 'wake_gave_up' && e.code === ErrorCode.WakeGaveUp));
  assert.equal(failures.at(-1), ErrorCode.WakeGaveUp, 'held clients are told why at once');
  await actuator.ensureAtLeast(1, 'demand', () => true);
  assert.deepEqual(scale.writes, [1], 'the next demand started a new attempt cycle');
});
