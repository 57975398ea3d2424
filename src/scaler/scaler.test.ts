import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeBackendSource } from '../../test/support/fake-backend-source.ts';
import { BackendSet, type Backend } from '../backends/backend-set.ts';
import { ManualClock } from '../clock.ts';
import { ErrorCode, type GatewayError } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import { IdleTracker } from './idle.ts';
import { Scaler, type ObservedState, type ScaleTarget } from './scaler.ts';


/** A scale subresource in memory; each call can be held open to model a write that has not landed yet. */
class FakeScale implements ScaleTarget {
  replicas = 0;
  version = 1;
  writes: number[] = [];
  failWith: { code: number } | undefined;
  gate: Promise<void> | undefined;
  async read() {
    await this.gate;
    if (this.failWith) throw Object.assign(new Error('api error'), this.failWith);
    return { replicas: this.replicas, resourceVersion: String(this.version) };
  }
  async write(replicas: number, resourceVersion: string | undefined) {
    await this.gate;
    if (this.failWith) throw Object.assign(new Error('api error'), this.failWith);
    if (resourceVersion !== String(this.version)) throw Object.assign(new Error('conflict'), { code: 409 });
    this.replicas = replicas;
    this.version += 1;
    this.writes.push(replicas);
  }
}

const pod = (key: string, ordinal = 0): Backend => ({ key, podName: `buildkitd-${ordinal}`, ordinal, host: '10.0.0.1', port: 8273 });
const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup(observed: Partial<ObservedState> = {}) {
  const clock = new ManualClock();
  const events: GatewayEvent[] = [];
  const emit = (e: GatewayEvent) => events.push(e);
  const source = new FakeBackendSource();
  const backends = new BackendSet(source);
  const idle = new IdleTracker(clock, 1000, emit);
  const scale = new FakeScale();
  const state: ObservedState = { synced: true, exists: true, desiredReplicas: 0, ...observed };
  let demand = 0;
  const scaler = new Scaler({ target: scale, observe: () => ({ ...state, desiredReplicas: scale.replicas }), backends, idle, clock, emit, hasDemand: () => demand > 0 });
  const failures: GatewayError[] = [];
  scaler.onFailure((e) => failures.push(e));
  return { clock, events, source, backends, idle, scale, state, scaler, failures, setDemand: (n: number) => (demand = n) };
}

test('the first connection scales 0 -> 1; more demand while waking writes nothing more', async () => {
  const { scaler, scale } = setup();
  scaler.ensureAwake();
  scaler.ensureAwake();
  await flush();
  scaler.ensureAwake();
  await flush();
  assert.deepEqual(scale.writes, [1]);
});

test('idle timeout scales to zero; a gateway that finds buildkitd running starts the timer instead of scaling at once', async () => {
  const { scaler, scale, clock, idle, events } = setup();
  scale.replicas = 2;
  scaler.observedStateChanged();
  assert.equal(idle.armed, true);
  await flush();
  assert.deepEqual(scale.writes, [], 'no immediate scale-down at start');
  clock.advance(1000);
  await flush();
  assert.deepEqual(scale.writes, [0]);
  assert.ok(events.some((e) => e.kind === 'scale' && e.direction === 'down' && e.from === 2));
});

test('a connection arriving while the scale-down write is in flight is held for a new pod, never spliced to the old one', async () => {
  const { scaler, scale, clock, idle, source, backends } = setup();
  scale.replicas = 1;
  source.set([pod('uid-old')]);
  scaler.observedStateChanged();
  let land!: () => void;
  scale.gate = new Promise((resolve) => (land = resolve));
  clock.advance(1000); // timer fires; read is in flight
  await flush();
  assert.deepEqual(backends.ready(), [], 'old pod fenced while the scale-down is in flight');
  idle.connectionOpened(); // client arrives now: router finds no backend and asks for a wake
  scaler.ensureAwake();
  land();
  scale.gate = undefined;
  await flush();
  await flush();
  // The connection arrived before the write was sent: the scale-down is cancelled and the pod keeps serving.
  assert.deepEqual(scale.writes, []);
  assert.deepEqual(backends.ready().map((b) => b.key), ['uid-old']);
});

test('a connection arriving after the write was sent but before it landed triggers a re-wake', async () => {
  const { scaler, scale, clock, idle, source, backends } = setup();
  scale.replicas = 1;
  source.set([pod('uid-old')]);
  scaler.observedStateChanged();
  clock.advance(1000);
  // read resolves, write is then issued: hold the write only
  const originalWrite = scale.write.bind(scale);
  let land!: () => void;
  const landed = new Promise<void>((resolve) => (land = resolve));
  scale.write = async (replicas, rv) => {
    if (replicas === 0) await landed;
    return originalWrite(replicas, rv);
  };
  await flush();
  idle.connectionOpened();
  scaler.ensureAwake();
  land();
  await flush();
  await flush();
  assert.deepEqual(scale.writes, [0], 'scale-down landed; no wake while the old pod still exists');
  assert.deepEqual(backends.ready(), [], 'the dying pod stays fenced');
  source.set([pod('uid-old')]);
  assert.deepEqual(backends.ready(), [], 'still listed as ready: still fenced');
  source.set([], ['uid-old']);
  await flush();
  assert.deepEqual(scale.writes, [0], 'terminating (not ready, still exists): still waiting');
  source.set([], []);
  await flush();
  assert.deepEqual(scale.writes, [0, 1], 're-woken for the waiting client once the old pod is gone');
  source.set([pod('uid-new')]);
  assert.deepEqual(backends.ready().map((b) => b.key), ['uid-new']);
});

test('no scale-down decision on unsynced watches; it happens after they recover', async () => {
  const { scaler, scale, clock, state, events } = setup();
  scale.replicas = 1;
  scaler.observedStateChanged();
  state.synced = false;
  clock.advance(1000);
  await flush();
  assert.deepEqual(scale.writes, []);
  assert.ok(events.some((e) => e.kind === 'scale_skipped' && e.direction === 'down'));
  state.synced = true;
  clock.advance(5000);
  await flush();
  assert.deepEqual(scale.writes, [0]);
});

test('forbidden and not found fail fast with their codes, and fail every held connection', async () => {
  const forbidden = setup();
  forbidden.scale.failWith = { code: 403 };
  forbidden.scaler.ensureAwake();
  await flush();
  assert.equal(forbidden.failures[0]?.code, ErrorCode.ScaleForbidden);
  assert.equal(forbidden.scaler.currentFailure()?.code, ErrorCode.ScaleForbidden);
  forbidden.clock.advance(5000);
  assert.equal(forbidden.scaler.currentFailure(), undefined, 'asks again after the hold time');

  const missing = setup({ exists: false });
  missing.scaler.ensureAwake();
  assert.equal(missing.failures[0]?.code, ErrorCode.StatefulSetNotFound);
  assert.deepEqual(missing.scale.writes, []);
});

test('transient API errors are retried with backoff while someone waits', async () => {
  const { scaler, scale, clock, setDemand, events } = setup();
  setDemand(1);
  scale.failWith = { code: 503 };
  scaler.ensureAwake();
  await flush();
  assert.ok(events.some((e) => e.kind === 'scale_failed' && e.code === ErrorCode.ScaleFailed));
  scale.failWith = undefined;
  clock.advance(250);
  await flush();
  await flush();
  assert.deepEqual(scale.writes, [1]);
});
