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
    if (resourceVersion !== String(this.version)) return Promise.reject(Object.assign(new Error('conflict'), { code: 409 }));
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
  const actuator = new ScaleActuator({ target: scale, clock, emit: (e) => events.push(e), retryMs: 1000 });
  return { clock, events, scale, actuator };
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

test('forbidden and not found fail fast with their codes and are kept until a call succeeds', async () => {
  const { scale, actuator } = setup();
  const failures: string[] = [];
  actuator.onFailure((e) => failures.push(e.code));
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
  assert.ok(events.some((e) => e.kind === 'scale_failed' && /gave up/.test(e.error)));
  let wanted = true;
  scale.failWith = [500, 500, 500];
  const abandoned = actuator.ensureAtLeast(1, 'demand', () => wanted);
  wanted = false;
  await settle(clock, 5_000);
  await abandoned;
  assert.deepEqual(scale.writes, [1], 'not retried once nobody needs it');
});
