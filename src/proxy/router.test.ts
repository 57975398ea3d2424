import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createSecureContext, createServer as createTlsServer, connect as tlsConnect, TLSSocket } from 'node:tls';
import { FakeBackendSource } from '../../test/support/fake-backend-source.ts';
import { BackendSet } from '../backends/backend-set.ts';
import type { Backend } from '../backends/source.ts';
import { dialBackend } from './dial.ts';
import { systemClock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import { LocalActivity } from '../scaler/activity.ts';
import { ProxyListener } from './listener.ts';
import { CapacityQueue } from './capacity-queue.ts';
import { PendingConnections } from './pending.ts';
import { Router, type RouterInputs } from './router.ts';
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

async function setup(
  options: {
    readyWaitMs?: number;
    maxPending?: number;
    maxPendingBytes?: number;
    maxConnections?: number;
    failure?: GatewayError;
    dial?: RouterInputs['dial'];
    wakeOn?: WakeOn;
    firstByteTimeoutMs?: number;
    maxConnectionsPerReplica?: number;
  } = {},
) {
  const events: GatewayEvent[] = [];
  const emit = (e: GatewayEvent) => events.push(e);
  const source = new FakeBackendSource();
  const activity = new LocalActivity();
  const capped = options.maxConnectionsPerReplica !== undefined;
  // Every ready pod is routable here; which pods may take connections is the scaler's business (decide.ts).
  // With a cap, the loads are this process's live counts, as the scaler's routing() gives them with one replica.
  const loads = () =>
    capped ? Object.fromEntries([...activity.podNames()].map((pod) => [pod, activity.openOn(pod)])) : {};
  const backends = new BackendSet(
    source,
    () => ({ routable: new Set(source.current().map((b) => b.podName)), loads: loads(), atMaximum: true }),
    {
      affinity: 'none',
      connectionsPerReplica: Number.MAX_SAFE_INTEGER,
      maxConnectionsPerReplica: options.maxConnectionsPerReplica ?? 0,
    },
  );
  // The scale controller tells held clients to look again when a count changes (its routing signature).
  if (capped) activity.onChange(() => backends.routableChanged());
  let mostHeld = 0;
  const pending = new PendingConnections(
    {
      maxPending: options.maxPending ?? 100,
      clock: systemClock,
      maxPendingBytes: options.maxPendingBytes ?? 32 * 1024 * 1024,
    },
    { onSizeChange: (size) => (mostHeld = Math.max(mostHeld, size)) },
  );
  const capacityQueue = new CapacityQueue();
  let wakes = 0;
  // Demand rising from zero is what wakes a builder (the scale controller reacts to it).
  activity.onChange(() => {
    if (activity.held > 0 && activity.open === 0) wakes += 1;
  });
  let failure = options.failure;
  const router = new Router(
    {
      backends,
      pending,
      clock: systemClock,
      readyWaitTimeoutMs: options.readyWaitMs ?? 10_000,
      ...(options.dial ? { dial: options.dial } : {}),
      wakeOn: options.wakeOn ?? 'data',
      firstByteTimeoutMs: options.firstByteTimeoutMs ?? 30_000,
      capacityQueue,
    },
    { emit, arrive: () => activity.arrive(), currentFailure: () => failure },
  );
  const accepted: Socket[] = [];
  const handle = (s: Socket) => {
    accepted.push(s);
    return router.handle(s);
  };
  const listener = new ProxyListener(
    { address: { host: '127.0.0.1', port: 0 }, maxConnections: options.maxConnections ?? 1000 },
    { emit, handle },
  );
  const { port } = await listener.start();
  return {
    port,
    events,
    /** The gateway's end of each client connection, in accept order. */
    accepted,
    source,
    pending,
    activity,
    capacityQueue,
    wakes: () => wakes,
    mostHeld: () => mostHeld,
    setFailure: (f: GatewayError | undefined) => (failure = f),
    close: () => listener.stopAccepting(),
  };
}

const backendAt = (port: number, key = 'uid-0'): Backend => ({
  key,
  podName: 'buildkitd-0',
  ordinal: 0,
  host: '127.0.0.1',
  port,
});
/** Waits for a condition; the deadline only turns a hang into a failure that says what never happened. */
const until = async (condition: () => boolean, what = 'condition', deadlineMs = 20_000) => {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
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
  assert.deepEqual(
    (await Promise.all(held)).map((r) => r.reply),
    ['a', 'b'],
  );
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
  assert.equal(
    gw.events.filter((e) => e.kind === 'connection_closed' && e.outcome === 'client_gone_while_held').length,
    2,
  );
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
  // Not ready but still exists: a readiness blip must not cut a build.
  gw.source.set([], [{ key: 'uid-pod', podName: 'buildkitd-0', ordinal: 0, ready: false, terminating: false }]);
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
  return {
    socket,
    reply: () => Buffer.concat(chunks),
    closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
  };
}

const refusedFor = (events: GatewayEvent[], code: ErrorCode) =>
  events.filter((e) => e.kind === 'connection_closed' && e.code === code);

test('held clients beyond the early-input budget are refused with BKA_PENDING_BYTES_FULL; those inside it are served byte for byte', async () => {
  const gw = await setup({ maxPendingBytes: 25_000 });
  const payloads = [0, 1, 2].map((i) => Buffer.alloc(10_000, 0x61 + i));
  const first = heldClient(gw.port, payloads[0]!);
  const second = heldClient(gw.port, payloads[1]!);
  await eventually(
    "the first two clients' bytes to be held",
    () => gw.pending.size === 2 && gw.pending.heldBytes === 20_000,
  );
  const third = heldClient(gw.port, payloads[2]!);
  await third.closed;
  assert.equal(third.reply().length, 0, 'the refused client got nothing');
  const refused = refusedFor(gw.events, ErrorCode.PendingBytesFull);
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.kind === 'connection_closed' && refused[0].outcome, 'rejected_pending_bytes');
  assert.equal(gw.pending.size, 2, 'the two inside the budget are still held');
  assert.equal(gw.pending.heldBytes, 20_000, "the refused client's bytes were given back");
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  await eventually(
    'both held clients to be echoed in full',
    () => first.reply().length === 10_000 && second.reply().length === 10_000,
  );
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

/** A dial that connects for real only when the test lets it, like a pod that drops SYNs for a while. */
function gatedDial() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let started = 0;
  const dial: NonNullable<RouterInputs['dial']> = async (backend, timeoutMs) => {
    started += 1;
    await gate;
    return dialBackend(backend, timeoutMs);
  };
  return { dial, open, started: () => started };
}

/** A backend that counts the connections it holds open, so a leaked gateway->pod socket shows. */
async function countingEcho() {
  let open = 0;
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open += 1;
    accepted += 1;
    s.on('error', () => undefined);
    s.once('close', () => (open -= 1));
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, open: () => open, accepted: () => accepted };
}

for (const leave of ['resets', 'sends FIN before any byte'] as const) {
  test(`a client that ${leave} while its dial is pending is not spliced: the late pod socket is closed and the pod counts as idle at once`, async () => {
    const slowPod = gatedDial();
    // A FIN before any byte can race a dial only when a bare connect is demand (--wake-on=connect).
    const gw = await setup({ dial: slowPod.dial, wakeOn: leave === 'resets' ? 'data' : 'connect' });
    const echo = await countingEcho();
    gw.source.set([backendAt(echo.port)]);
    const client = connect({ port: gw.port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => undefined);
    if (leave === 'resets') client.write('half a request');
    await until(() => slowPod.started() === 1, 'the dial to start');
    if (leave === 'resets') client.resetAndDestroy();
    else client.end();
    const [accepted] = gw.accepted;
    await until(() => accepted!.destroyed || accepted!.readableEnded, "the client's reset or FIN to reach the gateway");
    slowPod.open(); // the pod answers the SYN only now, after the client left
    await until(() => echo.accepted() === 1 && echo.open() === 0, 'the late gateway->pod socket to be closed');
    await until(() => gw.events.some((e) => e.kind === 'connection_closed'), 'connection_closed');
    const closed = gw.events.filter((e) => e.kind === 'connection_closed');
    assert.deepEqual(
      closed.map((e) => e.kind === 'connection_closed' && e.outcome),
      ['client_gone_while_held'],
    );
    assert.equal(
      gw.events.some((e) => e.kind === 'connection_routed'),
      false,
      'the connection must not be spliced',
    );
    await until(
      () => gw.activity.open + gw.activity.held === 0,
      'the connection to stop counting, so the pod counts as idle',
    );
    client.destroy();
    echo.server.close();
    await gw.close();
  });
}

test('a client that resets during a dial to a silent pod is released at once, not when the dial gives up', async () => {
  const silentPod = gatedDial();
  const gw = await setup({ dial: silentPod.dial });
  const echo = await countingEcho();
  gw.source.set([backendAt(echo.port)]);
  const client = connect({ port: gw.port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  client.write('half a request');
  await until(() => silentPod.started() === 1, 'the dial to start');
  client.resetAndDestroy();
  await until(
    () => gw.activity.open + gw.activity.held === 0,
    'the connection to stop counting while the dial is still pending',
  );
  const closed = gw.events.find((e) => e.kind === 'connection_closed');
  assert.equal(closed?.kind === 'connection_closed' && closed.outcome, 'client_gone_while_held');
  silentPod.open();
  await until(() => echo.accepted() === 1 && echo.open() === 0, 'the late gateway->pod socket to be closed');
  echo.server.close();
  await gw.close();
});

/** A self-signed certificate made with openssl for a buildkitd-like TLS server on loopback. */
function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'bka-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=buildkitd',
        '-addext',
        'subjectAltName=DNS:buildkitd',
        '-days',
        '1',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(path.join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Like buildkitd with --tlscacert: a TLS echo server that demands a client certificate signed by its CA. */
async function mtlsEchoServer(pki: { key: string; cert: string }, maxVersion: 'TLSv1.2' | 'TLSv1.3') {
  const server = createTlsServer(
    { ...pki, ca: pki.cert, requestCert: true, rejectUnauthorized: true, maxVersion, allowHalfOpen: true },
    (s) => s.pipe(s),
  );
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A gRPC-like client: TLS to the gateway, then the HTTP/2 preface; resolves with how the connection ended. */
function tlsClient(
  port: number,
  pki: { cert: string },
  certificate?: { key: string; cert: string },
): Promise<{ secure: boolean; error: string | undefined; reply: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: 'buildkitd', ca: pki.cert, ...certificate });
    let secure = false;
    let error: string | undefined;
    const chunks: Buffer[] = [];
    socket.on('secureConnect', () => {
      secure = true;
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (Buffer.concat(chunks).length >= 24) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve({ secure, error, reply: Buffer.concat(chunks).toString() }));
  });
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`a client without the certificate buildkitd's mTLS requires is logged as BKA_BACKEND_TLS_REFUSED, not BKA_BACKEND_LOST (${version})`, async () => {
    const pki = selfSignedCertificate();
    const gw = await setup();
    const buildkitd = await mtlsEchoServer(pki, version);
    gw.source.set([backendAt((buildkitd.address() as AddressInfo).port)]);
    const refused = await tlsClient(gw.port, pki);
    assert.notEqual(refused.error, undefined, 'the client itself sees the TLS refusal');
    await until(() => gw.events.some((e) => e.kind === 'connection_closed'), 'connection_closed');
    const closed = gw.events.find((e) => e.kind === 'connection_closed');
    assert.deepEqual(
      closed?.kind === 'connection_closed' && [closed.outcome, closed.code],
      ['backend_tls_refused', ErrorCode.BackendTlsRefused],
      JSON.stringify(closed),
    );
    const served = await tlsClient(gw.port, pki, pki);
    assert.equal(served.reply, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'a client with a certificate is served');
    await until(
      () => gw.events.filter((e) => e.kind === 'connection_closed').length === 2,
      'the second connection_closed',
    );
    assert.equal(
      gw.events.filter((e) => e.kind === 'connection_closed').at(-1)?.kind === 'connection_closed' &&
        gw.events.filter((e) => e.kind === 'connection_closed').at(-1)?.outcome,
      'completed',
    );
    buildkitd.close();
    await gw.close();
  });
}

test('a TLS backend that dies mid-stream after the handshake is still BKA_BACKEND_LOST', async () => {
  const pki = selfSignedCertificate();
  const gw = await setup();
  // TLS over a plain TCP server, so the pod's death can be a TCP reset, as when its process is killed.
  const context = createSecureContext({ ...pki, ca: pki.cert });
  const buildkitd = createServer((raw) => {
    const s = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: true,
      rejectUnauthorized: true,
    });
    s.once('data', () => {
      s.write('PRI * HTTP/2.0\r\n\r\n'); // part of an answer, then the process dies
      setImmediate(() => raw.resetAndDestroy());
    });
  });
  buildkitd.listen(0, '127.0.0.1');
  await once(buildkitd, 'listening');
  gw.source.set([backendAt((buildkitd.address() as AddressInfo).port)]);
  const result = await tlsClient(gw.port, pki, pki);
  assert.equal(result.secure, true);
  await until(() => gw.events.some((e) => e.kind === 'connection_closed'), 'connection_closed');
  const closed = gw.events.find((e) => e.kind === 'connection_closed');
  assert.deepEqual(
    closed?.kind === 'connection_closed' && [closed.outcome, closed.code],
    ['backend_error', ErrorCode.BackendLost],
    JSON.stringify(closed),
  );
  buildkitd.close();
  await gw.close();
});

const closedEvents = (events: GatewayEvent[]) =>
  events.filter((e): e is Extract<GatewayEvent, { kind: 'connection_closed' }> => e.kind === 'connection_closed');

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
  assert.deepEqual(
    closedEvents(gw.events).map((e) => [e.outcome, e.code]),
    [
      ['closed_before_data', undefined],
      ['closed_before_data', undefined],
    ],
  );
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
  await eventually(
    'both to be echoed',
    () => talker.reply().toString() === 'hello' && Buffer.concat(quietReply).toString() === 'late',
  );
  talker.socket.end();
  quiet.end();
  await eventually(
    'both to complete',
    () => closedEvents(gw.events).filter((e) => e.outcome === 'completed').length === 2,
  );
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
  await eventually('it to count as gone while held', () =>
    closedEvents(gw.events).some((e) => e.outcome === 'client_gone_while_held'),
  );
  await gw.close();
});

test('cap 1: a second and third client wait in arrival order; each is served when the one before it closes, nothing is cut', async () => {
  const gw = await setup({ maxConnectionsPerReplica: 1 });
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  const first = heldClient(gw.port, Buffer.from('one'));
  await eventually('the first to be echoed', () => first.reply().toString() === 'one');
  const second = heldClient(gw.port, Buffer.from('two'));
  await eventually('the second to be queued', () => gw.capacityQueue.size === 1);
  const third = heldClient(gw.port, Buffer.from('three'));
  await eventually('the third to be queued behind it', () => gw.capacityQueue.size === 2);
  assert.equal(second.reply().length + third.reply().length, 0, 'neither queued client reached the builder');
  assert.equal(gw.activity.openOn('buildkitd-0'), 1);

  first.socket.end();
  await eventually('the second to be echoed', () => second.reply().toString() === 'two');
  assert.equal(third.reply().length, 0, 'the third still waits: the room went to the earlier client');
  assert.equal(gw.capacityQueue.size, 1);
  second.socket.end();
  await eventually('the third to be echoed', () => third.reply().toString() === 'three');
  third.socket.end();
  await eventually(
    'all three to complete',
    () => closedEvents(gw.events).filter((e) => e.outcome === 'completed').length === 3,
  );
  const queued = gw.events.filter((e) => e.kind === 'connection_queued').map((e) => e.id);
  assert.equal(queued.length, 2, 'two connections were queued');
  const routed = gw.events.filter((e) => e.kind === 'connection_routed');
  assert.deepEqual(
    routed.map((e) => e.id),
    [routed[0]?.id, ...queued],
    'routed in arrival order',
  );
  for (const e of closedEvents(gw.events))
    assert.equal(
      e.queuedMs !== undefined,
      queued.includes(e.id),
      `connection ${e.id}: the access line says how long it waited for capacity`,
    );
  assert.equal(gw.capacityQueue.size, 0);
  echo.close();
  await gw.close();
});

test('cap 1: a client still queued at the ready-wait deadline is closed with BKA_CAPACITY_TIMEOUT; the one on the builder is untouched', async () => {
  const gw = await setup({ maxConnectionsPerReplica: 1, readyWaitMs: 300 });
  const echo = await echoServer();
  gw.source.set([backendAt((echo.address() as AddressInfo).port)]);
  const served = heldClient(gw.port, Buffer.from('served'));
  await eventually('the first to be echoed', () => served.reply().toString() === 'served');
  const waiting = heldClient(gw.port, Buffer.from('waiting'));
  await waiting.closed;
  const [closed] = refusedFor(gw.events, ErrorCode.CapacityTimeout);
  assert.ok(
    closed?.kind === 'connection_closed' && closed.outcome === 'capacity_timeout' && closed.queuedMs !== undefined,
    JSON.stringify(closed),
  );
  assert.equal(waiting.reply().length, 0);
  assert.equal(gw.capacityQueue.size, 0);
  served.socket.write(' still');
  await eventually('the first to echo on', () => served.reply().toString() === 'served still');
  served.socket.end();
  await eventually('the first to complete', () => closedEvents(gw.events).some((e) => e.outcome === 'completed'));
  echo.close();
  await gw.close();
});
