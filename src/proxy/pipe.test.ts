import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { splice, type PipeResult } from './pipe.ts';

/** A client socket and the gateway's accepted end of it, plus a backend socket pair, all on loopback. */
async function socketPairs(): Promise<{ client: Socket; backendPeer: Socket; spliced: Promise<PipeResult>; close: () => void }> {
  const servers: Server[] = [];
  const listen = async (onSocket: (s: Socket) => void) => {
    const server = createServer({ allowHalfOpen: true }, onSocket);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as { port: number }).port;
  };
  let backendPeer!: Socket;
  const backendPort = await listen((s) => (backendPeer = s));
  // Wrapped in an object: resolving with a bare promise would wait for the splice to finish.
  let resolveSpliced!: (p: { done: Promise<PipeResult> }) => void;
  const splicedReady = new Promise<{ done: Promise<PipeResult> }>((resolve) => (resolveSpliced = resolve));
  const gatewayPort = await listen((accepted) => {
    const backend = connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true });
    backend.once('connect', () => resolveSpliced({ done: splice(accepted, backend) }));
  });
  const client = connect({ port: gatewayPort, host: '127.0.0.1', allowHalfOpen: true });
  const spliced = (await splicedReady).done;
  while (!backendPeer) await new Promise((r) => setImmediate(r));
  return { client, backendPeer, spliced, close: () => servers.forEach((s) => s.close()) };
}

async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('bytes flow both ways and are counted', async () => {
  const { client, backendPeer, spliced, close } = await socketPairs();
  backendPeer.pipe(backendPeer); // echo
  const payload = Buffer.alloc(4 * 1024 * 1024, 7);
  const received = readAll(client);
  client.end(payload);
  const echoed = await received;
  assert.equal(Buffer.compare(echoed, payload), 0);
  const result = await spliced;
  assert.equal(result.bytesUp, payload.length);
  assert.equal(result.bytesDown, payload.length);
  assert.equal(result.error, undefined);
  close();
});

test('half-close: the client FIN reaches the backend and the reply still flows back', async () => {
  const { client, backendPeer, spliced, close } = await socketPairs();
  const request = readAll(backendPeer).then((body) => {
    // Only after the client's FIN arrives does the backend answer, then close.
    backendPeer.end(`got ${body.length} bytes`);
  });
  const reply = readAll(client);
  client.end('hello world');
  await request;
  assert.equal((await reply).toString(), 'got 11 bytes');
  await spliced;
  close();
});

test('half-close the other way: the backend FIN reaches the client while the client keeps sending', async () => {
  const { client, backendPeer, spliced, close } = await socketPairs();
  backendPeer.end('banner');
  const fromBackend = await readAll(client);
  assert.equal(fromBackend.toString(), 'banner');
  const upstream = readAll(backendPeer);
  client.end('late data');
  assert.equal((await upstream).toString(), 'late data');
  await spliced;
  close();
});

test('an error on one side destroys both', async () => {
  const { client, backendPeer, spliced, close } = await socketPairs();
  client.on('error', () => undefined);
  backendPeer.resetAndDestroy();
  // The client allows half-open, so it sees the gateway's close as end-of-stream.
  const [result] = await Promise.all([spliced, once(client, 'end')]);
  client.destroy();
  assert.equal(result.error?.side, 'backend');
  assert.equal(client.destroyed, true);
  close();
});

test('back-pressure: a slow reader stalls the writer instead of the gateway buffering everything', async () => {
  const { client, backendPeer, spliced, close } = await socketPairs();
  client.pause(); // the client does not read
  const chunk = Buffer.alloc(256 * 1024);
  const limit = 256 * 1024 * 1024;
  let written = 0;
  let stalled = false;
  while (written < limit) {
    written += chunk.length;
    if (backendPeer.write(chunk)) continue;
    const drained = await Promise.race([once(backendPeer, 'drain').then(() => true), new Promise((r) => setTimeout(r, 500, false))]);
    if (!drained) {
      stalled = true;
      break;
    }
  }
  // Only kernel buffers and one stream high-water mark per hop may hold data; nothing reads without limit.
  assert.equal(stalled, true, `the writer never stalled after ${written} bytes`);
  const rss = process.memoryUsage().rss;
  assert.ok(written < limit, `wrote ${written} bytes, rss ${rss}`);
  client.destroy();
  backendPeer.destroy();
  await spliced;
  close();
});
