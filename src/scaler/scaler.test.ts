import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { FakeBackendSource } from '../../test/support/fake-backend-source.ts';
import { BackendSet, type Backend } from '../backends/backend-set.ts';
import { ManualClock } from '../clock.ts';
import { ErrorCode, type GatewayError } from '../errors.ts';
import { createEventSink, type GatewayEvent } from '../events.ts';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { ProxyListener } from '../proxy/listener.ts';
import { PendingConnections } from '../proxy/pending.ts';
import { Router } from '../proxy/router.ts';
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
  const metrics = createMetrics();
  // The production sink, so what the events count is what /metrics shows.
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const emit = createEventSink(createLogger('debug', silent), metrics, [(e) => events.push(e)]);
  const source = new FakeBackendSource();
  const backends = new BackendSet(source);
  const idle = new IdleTracker(clock, 1000, emit);
  const scale = new FakeScale();
  const state: ObservedState = { synced: true, exists: true, desiredReplicas: 0, ...observed };
  let demand = 0;
  const scaler = new Scaler({ target: scale, observe: () => ({ ...state, desiredReplicas: scale.replicas }), backends, idle, clock, emit, hasDemand: () => demand > 0 });
  const failures: GatewayError[] = [];
  scaler.onFailure((e) => failures.push(e));
  return { clock, events, metrics, emit, source, backends, idle, scale, state, scaler, failures, setDemand: (n: number) => (demand = n) };
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
  assert.equal(forbidden.scaler.currentFailure()?.code, ErrorCode.ScaleForbidden, 'new connections fail at once too');

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

/** Moves the manual clock in steps, letting each re-check's API calls settle in between. */
async function elapse(clock: ManualClock, ms: number, stepMs = 500) {
  for (let passed = 0; passed < ms; passed += stepMs) {
    clock.advance(stepMs);
    await flush();
    await flush();
  }
}

test('a forbidden scale write is still reported for /readyz 30 s later while the API keeps answering 403, and clears after a successful write', async () => {
  const { scaler, scale, clock, setDemand } = setup();
  setDemand(1);
  scale.failWith = { code: 403 };
  scaler.ensureAwake();
  await flush();
  await elapse(clock, 30_000);
  assert.equal(scaler.readinessFailure()?.code, ErrorCode.ScaleForbidden, '30 s later, still forbidden');
  assert.equal(scale.replicas, 0);
  scale.failWith = undefined; // the Role is fixed
  await elapse(clock, 1000);
  scaler.ensureAwake(); // the next client
  await flush();
  await flush();
  assert.deepEqual(scale.writes.filter((r) => r === 1), [1]);
  assert.equal(scaler.readinessFailure(), undefined, 'cleared by the successful write');
  assert.equal(scaler.currentFailure(), undefined);
});

test('with nobody connecting, a periodic re-check clears a forbidden scale once the Role is fixed, without changing replicas', async () => {
  const { scaler, scale, clock, events } = setup();
  scale.failWith = { code: 403 };
  scaler.ensureAwake();
  await flush();
  await elapse(clock, 10_000);
  assert.equal(scaler.readinessFailure()?.code, ErrorCode.ScaleForbidden);
  scale.failWith = undefined;
  await elapse(clock, 60_000);
  assert.equal(scaler.readinessFailure(), undefined, 'cleared by a re-check');
  assert.equal(scale.replicas, 0, 'the re-check wrote the replicas it read');
  assert.ok(events.some((e) => e.kind === 'scale_recovered' && e.code === ErrorCode.ScaleForbidden));
});

test('one 403 (as right after an API-server restart) fails the held clients but does not turn /readyz red', async () => {
  const { scaler, scale, clock, failures } = setup();
  scale.failWith = { code: 403 };
  scaler.ensureAwake();
  await flush();
  assert.equal(failures[0]?.code, ErrorCode.ScaleForbidden, 'held clients fail fast');
  scale.failWith = undefined;
  for (let i = 0; i < 20; i += 1) {
    assert.equal(scaler.readinessFailure(), undefined, `/readyz stays green at ${clock.now()} ms`);
    await elapse(clock, 500);
  }
  assert.equal(scaler.currentFailure(), undefined, 'the re-check cleared it: new clients wake buildkitd again');
});

test('a held connection fails at once with BKA_WATCH_FORBIDDEN when RBAC forbids a watch, and so do new ones', { timeout: 10_000 }, async () => {
  const { scaler, clock, emit, events, backends, idle, state } = setup();
  const pending = new PendingConnections(10, clock, 1024 * 1024);
  scaler.onFailure((error) => pending.failAll(error)); // as the gateway wires it
  const router = new Router({ backends, pending, scaler, idle, clock, emit, readyWaitTimeoutMs: 300_000 });
  const listener = new ProxyListener({ address: { host: '127.0.0.1', port: 0 }, maxConnections: 10, emit, handle: (s) => router.handle(s) });
  const { port } = await listener.start();
  const client = connect({ port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  client.write('build please');
  while (pending.size === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  state.forbiddenWatch = { resource: 'endpointslices/buildkitd', message: 'endpointslices.discovery.k8s.io is forbidden' };
  scaler.observedStateChanged(); // the informer reports its failure through onChange
  await once(client, 'close'); // the manual clock never moved: this is not the 5-minute deadline
  const late = connect({ port, host: '127.0.0.1' });
  late.on('error', () => undefined);
  late.write('build please');
  await once(late, 'close');
  const closed = events.filter((e) => e.kind === 'connection_closed');
  assert.deepEqual(closed.map((e) => e.kind === 'connection_closed' && [e.code, e.outcome]), [
    [ErrorCode.WatchForbidden, 'scale_failed'],
    [ErrorCode.WatchForbidden, 'scale_failed'],
  ]);
  await listener.stopAccepting();
});

test('after 20 failed wake attempts: BKA_WAKE_GAVE_UP is logged and counted, held clients fail with it, and the next demand tries again', async () => {
  const { scaler, scale, clock, setDemand, events, failures, metrics } = setup();
  setDemand(1);
  scale.failWith = { code: 503 };
  scaler.ensureAwake();
  await flush();
  await elapse(clock, 200_000);
  assert.equal(events.filter((e) => e.kind === 'scale_failed').length, 20);
  const gaveUp = events.find((e) => e.kind === 'wake_gave_up');
  assert.ok(gaveUp && gaveUp.kind === 'wake_gave_up' && gaveUp.code === ErrorCode.WakeGaveUp, JSON.stringify(events.at(-1)));
  const counted = (await metrics.errors.get()).values.find((v) => v.labels['code'] === ErrorCode.WakeGaveUp);
  assert.equal(counted?.value, 1);
  assert.equal(failures.at(-1)?.code, ErrorCode.WakeGaveUp, 'held clients are told why at once');
  scale.failWith = undefined;
  scaler.ensureAwake();
  await flush();
  await flush();
  assert.deepEqual(scale.writes, [1], 'the next demand started a new attempt cycle');
});
