// The echo clients every layer uses against the mock buildkitd (socat echo): one exchange with a verdict
// (E2E), one exchange returning the reply (integration), and a long-lived connection that echoes on demand.
import { once } from 'node:events';
import net, { connect, type Socket } from 'node:net';

/** Where to connect: the gateway's proxy port as a test reaches it. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface RoundTrip {
  ok: boolean;
  /** Milliseconds from connect() to the whole echo being back (or to the failure). */
  elapsedMs: number;
  received: number;
  /** How it ended when it did not succeed: closed by the gateway, reset, or our own timeout. */
  failure?: 'closed' | 'reset' | 'timeout' | 'mismatch' | 'error';
  detail?: string;
}

/**
 * How the bytes received so far answer a one-shot exchange: undefined while more are needed, else the verdict
 * (`ok`, or why not).
 */
export type ExchangeVerdict = (received: Buffer) => Omit<RoundTrip, 'elapsedMs' | 'received'> | undefined;

/**
 * One new connection: sends `request` once and resolves when `verdict` decides on the bytes that came back, or
 * with the way it failed (closed, reset, our own timeout). Never rejects.
 */
export function exchangeOnce(
  endpoint: Endpoint,
  request: Buffer,
  verdict: ExchangeVerdict,
  timeoutMs: number,
  closedDetail?: (received: Buffer) => string,
): Promise<RoundTrip> {
  const started = performance.now();
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let done = false;
    const socket = net.connect(endpoint.port, endpoint.host);
    const finish = (result: Omit<RoundTrip, 'elapsedMs' | 'received'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, elapsedMs: performance.now() - started, received: received.length });
    };
    const timer = setTimeout(() => finish({ ok: false, failure: 'timeout' }), timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const result = verdict(received);
      if (result) finish(result);
    });
    socket.on('end', () =>
      finish({ ok: false, failure: 'closed', ...(closedDetail ? { detail: closedDetail(received) } : {}) }),
    );
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish({ ok: false, failure: error.code === 'ECONNRESET' ? 'reset' : 'error', detail: error.message }),
    );
  });
}

/** Sends one unique line and waits for the same bytes back (the mock buildkitd echoes). */
export function echoRoundTrip(endpoint: Endpoint, payload: string, timeoutMs: number): Promise<RoundTrip> {
  const expected = Buffer.from(payload);
  return exchangeOnce(
    endpoint,
    expected,
    (received) => {
      if (received.length < expected.length) return undefined;
      if (received.subarray(0, expected.length).equals(expected)) return { ok: true };
      return { ok: false, failure: 'mismatch', detail: received.toString('utf8', 0, 200) };
    },
    timeoutMs,
  );
}

/** A client address from Env.clientAddresses; the gateway must listen on all addresses (listenOnAll). */
export type ClientAddress = string;

/** Connecting to its own address makes the kernel use it as the source: the gateway sees that client address. */
function clientTarget(from: ClientAddress | undefined): { host: string; localAddress?: string } {
  return from === undefined ? { host: '127.0.0.1' } : { host: from, localAddress: from };
}

/**
 * Sends `payload`, waits until as many bytes came back, then closes and collects the rest. It does not
 * half-close first: the mock buildkitd (socat EXEC:cat) drops the reply when cat has not answered within
 * socat's 0.5 s half-close timeout, which happens on a loaded 2-core machine with 50 forks at once.
 */
export function echoExchange(
  port: number,
  payload: Buffer | string,
  from?: ClientAddress,
): Promise<{ reply: Buffer; error: Error | undefined; ms: number }> {
  const started = Date.now();
  const expected = Buffer.byteLength(payload);
  return new Promise((resolvePromise) => {
    const socket: Socket = connect({ port, ...clientTarget(from), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let received = 0;
    let error: Error | undefined;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      received += d.length;
      if (received >= expected) socket.end();
    });
    socket.on('error', (e) => (error = e));
    socket.on('end', () => socket.end());
    socket.on('close', () => resolvePromise({ reply: Buffer.concat(chunks), error, ms: Date.now() - started }));
    socket.write(payload);
  });
}

/** An open connection that echoes: write, read back exactly that many bytes. */
export async function openEcho(
  port: number,
  from?: ClientAddress,
): Promise<{ socket: Socket; roundTrip(data: Buffer): Promise<Buffer>; closed: Promise<Error | undefined> }> {
  // Not half-open: when the gateway closes its side, this socket closes too, as a client library's would.
  const socket = connect({ port, ...clientTarget(from) });
  let error: Error | undefined;
  socket.on('error', (e) => (error = e));
  const closed = once(socket, 'close').then(() => error);
  await once(socket, 'connect');
  let buffered = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('close', () => waiters.splice(0).forEach((w) => w()));
  return {
    socket,
    closed,
    async roundTrip(data) {
      socket.write(data);
      while (buffered.length < data.length) {
        if (socket.destroyed || socket.readableEnded)
          throw new Error(`connection closed after ${buffered.length} of ${data.length} bytes`);
        await new Promise<void>((r) => waiters.push(r));
      }
      const out = buffered.subarray(0, data.length);
      buffered = buffered.subarray(data.length);
      return out;
    },
  };
}
