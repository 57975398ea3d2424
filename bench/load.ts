// Load generator, run as its own process so its event loop and garbage collector do not share the
// orchestrator's. One JSON line on stdout per result; the orchestrator parses the last line.
//   rtt   HOST PORT COUNT SIZE           one connection, COUNT ping-pongs of SIZE bytes -> latency percentiles
//   rate  HOST PORT CONCURRENCY MS       connect, exchange 16 bytes, close, in CONCURRENCY loops for MS
//   churn HOST PORT CONCURRENCY COUNT    the same for COUNT connections, a progress line every 10,000
//   hold  HOST PORT COUNT                open COUNT connections (each proven spliced by one echo), print
//                                        {"held":N}, keep them until stdin closes, then close them all
//                                        (backend first)
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const EOT = 0x04;
const [mode, host = '127.0.0.1', portText = '0', a = '0', b = '0'] = process.argv.slice(2);
const port = Number(portText);
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function readExactly(socket: Socket, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (chunk: Buffer) => {
      got += chunk.length;
      if (got >= size) {
        cleanup();
        resolve();
      }
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`closed after ${got} of ${size} bytes`));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function rtt(count: number, size: number): Promise<void> {
  const socket = await open();
  const message = Buffer.alloc(size, 0x61);
  const samples = new Float64Array(count);
  const warmup = Math.min(1000, Math.floor(count / 10));
  for (let i = -warmup; i < count; i++) {
    const started = performance.now();
    socket.write(message);
    await readExactly(socket, size);
    if (i >= 0) samples[i] = (performance.now() - started) * 1000;
  }
  socket.destroy();
  samples.sort();
  print({
    count,
    p50us: percentile(samples, 50),
    p99us: percentile(samples, 99),
    p999us: percentile(samples, 99.9),
    maxUs: samples[count - 1],
  });
}

/** One short connection: the backend echoes the 16 bytes and closes first (EOT), then so does the client. */
async function exchange(message: Buffer): Promise<void> {
  const socket = await open();
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.write(message);
  await readExactly(socket, message.length);
  await closed;
}

async function loops(concurrency: number, keepGoing: (done: number) => boolean, onDone?: (done: number) => void) {
  const message = Buffer.concat([Buffer.alloc(15, 0x62), Buffer.from([EOT])]);
  let done = 0;
  let errors = 0;
  let started = 0;
  const started0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (keepGoing(started)) {
        started += 1;
        try {
          await exchange(message);
          done += 1;
          onDone?.(done);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  return { done, errors, seconds: (performance.now() - started0) / 1000 };
}

async function rate(concurrency: number, ms: number): Promise<void> {
  const end = performance.now() + ms;
  const r = await loops(concurrency, () => performance.now() < end);
  print({ concurrency, connections: r.done, errors: r.errors, seconds: r.seconds, perSecond: r.done / r.seconds });
}

async function churn(concurrency: number, count: number): Promise<void> {
  const r = await loops(
    concurrency,
    (started) => started < count,
    (done) => {
      if (done % 10_000 === 0) print({ progress: done });
    },
  );
  print({ concurrency, connections: r.done, errors: r.errors, seconds: r.seconds, perSecond: r.done / r.seconds });
}

async function hold(count: number): Promise<void> {
  const sockets: Socket[] = [];
  let errors = 0;
  let next = 0;
  const one = Buffer.from('h');
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < count) {
        next += 1;
        try {
          const socket = await open();
          socket.on('error', () => undefined);
          socket.write(one);
          await readExactly(socket, 1);
          sockets.push(socket);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  print({ held: sockets.length, errors });
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve).once('close', resolve));
  // EOT: the backend closes first, so TIME_WAIT stays in the pod and the proxy's ports stay free.
  const eot = Buffer.from([EOT]);
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.destroyed) return resolve();
          socket.once('close', () => resolve());
          socket.write(eot);
        }),
    ),
  );
}

switch (mode) {
  case 'rtt':
    await rtt(Number(a), Number(b));
    break;
  case 'rate':
    await rate(Number(a), Number(b));
    break;
  case 'churn':
    await churn(Number(a), Number(b));
    break;
  case 'hold':
    await hold(Number(a));
    break;
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
