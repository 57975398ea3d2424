import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { FakeBackendSource } from '../../test/support/fake-backend-source.ts';
import { BackendSet, type Backend } from '../backends/backend-set.ts';
import { systemClock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import { LocalActivity } from '../scaler/activity.ts';
import { ProxyListener } from './listener.ts';
import { PendingConnections } from './pending.ts';
import { Router } from './router.ts';
import { EARLY_INPUT_PER_CONNECTION } from './early-input.ts';
import { freePort } from '../../test/support/net.ts';
import type { WakeOn } from '../config.ts';


async function echoServer(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}


/** Sends `text` and half-closes only once it is echoed: a FIN before the splice means the client left. */
function exchange(port: number, text: string): Promise<{ reply: string; closedWithError: boolean }> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let received = 0;
    let errored = false;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      received += d.length;
      if (received >= Buffer.byteLength(text)) socket.end();
    });
    socket.on('error', () => (errored = true));
    socket.on('close', () => resolve({ reply: Buffer.concat(chunks).toString(), closedWithError: errored }));
    socket.on('end', () => socket.end());
    socket.write(text);
  });
}

async function setup(options: { readyWaitMs?: number; maxPending?: number; maxPendingBytes?: number; maxConnections?: number; failure?: GatewayError; wakeOn?: WakeOn; firstByteTimeoutMs?: number } = {}) {
  const events: GatewayEvent[] = [];
  const emit = (e: GatewayEvent) => events.push(e);
  const source = new FakeBackendSource();
  // Every ready pod is routable here; which pods may take connections is the scaler's business (decide.ts).
  const backends = new BackendSet(source, () => ({ routable: new Set(source.current().map((b) => b.podName)), loads: {}, atMaximum: true }));
  const pending = new PendingConnections(options.maxPending ?? 100, systemClock, options.maxPendingBytes ?? 32 * 1024 * 1024);
  const activity = new LocalActivity();
  let wakes = 0;
  let mostHeld = 0;
  // Demand rising from zero is what wakes a builder (the scale controller reacts to it).
  activity.onChange(() => {
    if (activity.held > 0 && activity.open === 0) wakes += 1;
  });
  pending.onSizeChange = (size) => (mostHeld = Math.max(mostHeld, size));
  let failure = options.failure;
  const router = new Router({
    backends,
    pending,
    demand: { arrive: () => activity.arrive(), currentFailure: () => failure },
    clock: systemClock,
    emit,
    readyWaitTimeoutMs: options.readyWaitMs ?? 10_000,
    wakeOn: options.wakeOn ?? 'data',
    firstByteTimeoutMs: options.firstByteTimeoutMs ?? 30_000,
  });
  const listener = new ProxyListener({ address: { host: '127.0.0.1', port: 0 }, maxConnections: options.maxConnections ?? 1000, emit, handle: (s) => router.handle(s) });
  const { port } = await listener.start();
  return {
    port,
    events,
    source,
    pending,
    activity,
    wakes: () => wakes,
    mostHeld: () => mostHeld,
    setFailure: (f: GatewayError | undefined) => (failure = f),
    close: () => listener.stopAccepting(),
  };
}

const backendAt = (port: number, key = 'uid-0'): Backend => ({ key, podName: 'buildkitd-0', ordinal: 0, host: '127.0.0.1', port });
const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
};

test('connections arriving while at zero are all held, one wake is asked for, and all are served once a pod is ready', async () => {
  const gw = await setup();
  const echo = await echoServer();
  const clients = Array.from({ length: 50 }, (_, i) => exchange(gw.port, `client ${i}`));
  await until(() => gw.pending.size === 50);
  assert.ok(gw.wakes() >= 1);
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  const results = await Promise.all(clients);
  results.forEach((r, i) => assert.equal(r.reply, `client ${i}`));
  assert.equal(gw.events.filter((e) => e.kind === 'connection_closed' && e.outcome === 'completed').length, 50);
  assert.equal(gw.pending.size, 0);
  await until(() => gw.activity.open + gw.activity.held === 0);
  echo.close();
  await gw.close();
});

test('a pod that is Ready but refuses at first is retried with backoff inside the deadline', async () => {
  const gw = await setup();
  const port = await freePort();
  gw.source.set([backendAt(port)]);
  const client = exchange(gw.port, 'late listener');
  await until(() => gw.events.filter((e) => e.kind === 'dial_failed').length >= 2);
  const echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s)).listen(port, '127.0.0.1');
  assert.equal((await client).reply, 'late listener');
  const failed = gw.events.filter((e) => e.kind === 'dial_failed');
  assert.ok(failed.every((e) => e.kind === 'dial_failed' && e.error === 'ECONNREFUSED'));
  echo.close();
  await gw.close();
});

test('a held connection is closed at its deadline with BKA_READY_TIMEOUT', async () => {
  const gw = await setup({ readyWaitMs: 300 });
  const result = await exchange(gw.port, 'nobody home');
  assert.equal(result.reply, '');
  const closed = gw.events.find((e) => e.kind === 'connection_closed');
  assert.equal(closed?.kind === 'connection_closed' && closed.code, ErrorCode.ReadyTimeout);
  assert.equal(closed?.kind === 'connection_closed' && closed.outcome, 'ready_timeout');
  await gw.close();
});

test('beyond --max-pending a connection is refused with BKA_PENDING_FULL, the others stay held', async () => {
  const gw = await setup({ maxPending: 2 });
  const held = [exchange(gw.port, 'a'), exchange(gw.port, 'b')];
  await until(() => gw.pending.size === 2);
  const refused = await exchange(gw.port, 'c');
  assert.equal(refused.reply, '');
  assert.ok(gw.events.some((e) => e.kind === 'connection_closed' && e.code === ErrorCode.PendingFull));
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  assert.deepEqual((await Promise.all(held)).map((r) => r.reply), ['a', 'b']);
  echo.close();
  await gw.close();
});

test('a known wake-up failure fails new connections at once with its code', async () => {
  const gw = await setup({ failure: new GatewayError(ErrorCode.ScaleForbidden, 'forbidden') });
  const started = Date.now();
  await exchange(gw.port, 'x');
  assert.ok(Date.now() - started < 5000);
  const closed = gw.events.find((e) => e.kind === 'connection_closed');
  assert.equal(closed?.kind === 'connection_closed' && closed.code, ErrorCode.ScaleForbidden);
  await gw.close();
});

test('a client that leaves while held (reset, or FIN before any byte) frees its place and counts as gone', async () => {
  // With --wake-on=connect a bare connection is held; with data it would never be (tested below).
  const gw = await setup({ wakeOn: 'connect' });
  const reset = connect({ port: gw.port, host: '127.0.0.1' });
  const quiet = connect({ port: gw.port, host: '127.0.0.1' });
  reset.on('error', () => undefined);
  await until(() => gw.pending.size === 2);
  reset.resetAndDestroy();
  quiet.destroy();
  await until(() => gw.pending.size === 0 && gw.activity.open + gw.activity.held === 0);
  assert.equal(gw.events.filter((e) => e.kind === 'connection_closed' && e.outcome === 'client_gone_while_held').length, 2);
  await gw.close();
});

test('a spliced connection is closed when its pod is gone, not when it is merely not ready', async () => {
  const gw = await setup();
  // A backend that accepts and then goes silent, like a pod whose network vanished.
  const silent = createServer(() => undefined).listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const pod = backendAt((silent.address() as AddressInfo).port, 'uid-pod');
  gw.source.set([pod]);
  const client = connect({ port: gw.port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  client.write('build');
  await until(() => gw.events.some((e) => e.kind === 'connection_routed'));
  gw.source.set([], [{ key: 'uid-pod', podName: 'buildkitd-0', ordinal: 0, ready: false, terminating: false }]); // not ready but still exists: a readiness blip must not cut a build
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.destroyed, false);
  gw.source.set([], []); // deleted
  await once(client, 'close');
  await until(() => gw.events.some((e) => e.kind === 'connection_closed'));
  const closed = gw.events.find((e) => e.kind === 'connection_closed');
  assert.equal(closed?.kind === 'connection_closed' && closed.code, ErrorCode.BackendLost);
  silent.close();
  await gw.close();
});

test('beyond --max-connections a connection is refused with BKA_MAX_CONNECTIONS; the open one is unaffected', async () => {
  const gw = await setup({ maxConnections: 1 });
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  const first = connect({ port: gw.port, host: '127.0.0.1' });
  first.write('hello');
  const [greeting] = (await once(first, 'data')) as [Buffer];
  assert.equal(greeting.toString(), 'hello');
  const refused = await exchange(gw.port, 'one too many');
  assert.equal(refused.reply, '');
  assert.ok(gw.events.some((e) => e.kind === 'connection_rejected' && e.code === ErrorCode.MaxConnections));
  first.write('still here');
  const [echoed] = (await once(first, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'still here');
  first.end();
  await once(first, 'close');
  echo.close();
  await gw.close();
});

/** Waits for a condition, failing with what it waited for instead of hanging until the test runner gives up. */
async function eventually(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A client that sends `payload` and stays: it reads whatever comes back until the gateway closes. */
function heldClient(port: number, payload: Buffer) {
  const socket = connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(payload);
  return { socket, reply: () => Buffer.concat(chunks), closed: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
}

const refusedFor = (events: GatewayEvent[], code: ErrorCode) => events.filter((e) => e.kind === 'connection_closed' && e.code === code);

test('held clients beyond the early-input budget are refused with BKA_PENDING_BYTES_FULL; those inside it are served byte for byte', async () => {
  const gw = await setup({ maxPendingBytes: 25_000 });
  const payloads = [0, 1, 2].map((i) => Buffer.alloc(10_000, 0x61 + i));
  const first = heldClient(gw.port, payloads[0]!);
  const second = heldClient(gw.port, payloads[1]!);
  await eventually('the first two clients\' bytes to be held', () => gw.pending.size === 2 && gw.pending.heldBytes === 20_000);
  const third = heldClient(gw.port, payloads[2]!);
  await third.closed;
  assert.equal(third.reply().length, 0, 'the refused client got nothing');
  const refused = refusedFor(gw.events, ErrorCode.PendingBytesFull);
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.kind === 'connection_closed' && refused[0].outcome, 'rejected_pending_bytes');
  assert.equal(gw.pending.size, 2, 'the two inside the budget are still held');
  assert.equal(gw.pending.heldBytes, 20_000, 'the refused client\'s bytes were given back');
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  await eventually('both held clients to be echoed in full', () => first.reply().length === 10_000 && second.reply().length === 10_000);
  assert.ok(first.reply().equals(payloads[0]!) && second.reply().equals(payloads[1]!), 'bytes echoed unchanged');
  assert.equal(gw.pending.heldBytes, 0);
  first.socket.end();
  second.socket.end();
  await Promise.all([first.closed, second.closed]);
  echo.close();
  await gw.close();
});

test('a held client that sends more than its capture holds is refused with BKA_PENDING_BYTES_FULL, not kept unread and blind to its FIN', async () => {
  const gw = await setup({ maxPending: 1 });
  // Far more than one connection may keep; its FIN waits behind the bytes the gateway would have to read first.
  const flooder = heldClient(gw.port, Buffer.alloc(4 * 1024 * 1024, 0x66));
  flooder.socket.end();
  await flooder.closed;
  await eventually('the refusal to be logged', () => refusedFor(gw.events, ErrorCode.PendingBytesFull).length === 1);
  assert.equal(gw.pending.size, 0, 'its place is free');
  assert.equal(gw.pending.heldBytes, 0, 'its bytes were given back');
  const next = heldClient(gw.port, Buffer.from('next'));
  await eventually('the next client to be held', () => gw.pending.size === 1);
  assert.equal(refusedFor(gw.events, ErrorCode.PendingFull).length, 0, 'nobody refused with BKA_PENDING_FULL');
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  await eventually('the next client to be echoed', () => next.reply().toString() === 'next');
  next.socket.end();
  await next.closed;
  echo.close();
  await gw.close();
});

for (const leave of ['FIN', 'reset'] as const) {
  test(`a held client whose capture is exactly full and that then leaves (${leave}) frees its place`, async () => {
    const gw = await setup({ maxPending: 1 });
    const client = heldClient(gw.port, Buffer.alloc(EARLY_INPUT_PER_CONNECTION, 0x65));
    await eventually('the client to be held', () => gw.pending.size === 1);
    if (leave === 'FIN') client.socket.end();
    else {
      // Only once its bytes are read: a reset would otherwise just drop them unread in the kernel.
      await eventually('its whole capture to be held', () => gw.pending.heldBytes === EARLY_INPUT_PER_CONNECTION);
      client.socket.resetAndDestroy();
    }
    await eventually('its place to be freed', () => gw.pending.size === 0 && gw.pending.heldBytes === 0);
    assert.ok(gw.events.some((e) => e.kind === 'connection_closed' && e.outcome === 'client_gone_while_held'));
    const next = heldClient(gw.port, Buffer.from('next'));
    await eventually('the next client to be held', () => gw.pending.size === 1);
    assert.equal(refusedFor(gw.events, ErrorCode.PendingFull).length, 0, 'nobody refused with BKA_PENDING_FULL');
    next.socket.destroy();
    await gw.close();
  });
}

const closedEvents = (events: GatewayEvent[]) => events.filter((e): e is Extract<GatewayEvent, { kind: 'connection_closed' }> => e.kind === 'connection_closed');

test('with --wake-on=data a bare connect (FIN or reset, no byte) wakes nothing, holds no slot and closes as closed_before_data', async () => {
  const gw = await setup();
  for (const leave of ['FIN', 'reset'] as const) {
    const bare = connect({ port: gw.port, host: '127.0.0.1' });
    bare.on('error', () => undefined);
    await once(bare, 'connect');
    if (leave === 'FIN') bare.end();
    else bare.resetAndDestroy();
  }
  await eventually('both bare connects to be closed', () => closedEvents(gw.events).length === 2);
  assert.deepEqual(closedEvents(gw.events).map((e) => [e.outcome, e.code]), [['closed_before_data', undefined], ['closed_before_data', undefined]]);
  assert.equal(gw.wakes(), 0, 'no wake asked for');
  assert.equal(gw.mostHeld(), 0, 'no pending slot taken');
  assert.equal(gw.activity.held + gw.activity.open, 0);
  assert.deepEqual(gw.activity.snapshot().pods, {}, 'no idle clock touched');
  await gw.close();
});

test('with --wake-on=data a silent connection is closed at the first-byte timeout with BKA_FIRST_BYTE_TIMEOUT', async () => {
  const gw = await setup({ firstByteTimeoutMs: 200 });
  const silent = connect({ port: gw.port, host: '127.0.0.1' });
  silent.on('error', () => undefined);
  await once(silent, 'close');
  await eventually('the close to be logged', () => closedEvents(gw.events).length === 1);
  const [closed] = closedEvents(gw.events);
  assert.equal(closed?.outcome, 'first_byte_timeout');
  assert.equal(closed?.code, ErrorCode.FirstByteTimeout);
  assert.equal(gw.wakes(), 0);
  assert.equal(gw.mostHeld(), 0);
  await gw.close();
});

test('with --wake-on=data a connection becomes demand at its first byte, is held and served', async () => {
  const gw = await setup();
  const quiet = connect({ port: gw.port, host: '127.0.0.1' });
  quiet.on('error', () => undefined);
  const quietReply: Buffer[] = [];
  quiet.on('data', (d: Buffer) => quietReply.push(d));
  await once(quiet, 'connect');
  const talker = heldClient(gw.port, Buffer.from('hello'));
  await eventually('the talking client to be held', () => gw.pending.size === 1 && gw.wakes() === 1);
  assert.equal(gw.activity.held, 1, 'only the client that spoke counts as demand');
  quiet.write('late');
  await eventually('the quiet client to be held once it spoke', () => gw.pending.size === 2 && gw.activity.held === 2);
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  await eventually('both to be echoed', () => talker.reply().toString() === 'hello' && Buffer.concat(quietReply).toString() === 'late');
  talker.socket.end();
  quiet.end();
  await eventually('both to complete', () => closedEvents(gw.events).filter((e) => e.outcome === 'completed').length === 2);
  echo.close();
  await gw.close();
});

test('with --wake-on=connect a bare connect wakes a builder and is held (the seed behaviour)', async () => {
  const gw = await setup({ wakeOn: 'connect', firstByteTimeoutMs: 100 });
  const bare = connect({ port: gw.port, host: '127.0.0.1' });
  bare.on('error', () => undefined);
  await eventually('the bare connect to be held', () => gw.pending.size === 1 && gw.wakes() === 1);
  // The first-byte timeout does not apply in connect mode.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(bare.destroyed, false);
  bare.destroy();
  await eventually('it to count as gone while held', () => closedEvents(gw.events).some((e) => e.outcome === 'client_gone_while_held'));
  await gw.close();
});
