import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { splice, type PipeResult } from './pipe.ts';
import { adoptReusableReads } from './accepted-reads.ts';
import { ReusableReads } from './reusable-reads.ts';

interface Connected {
  /** The user's end of the client connection. */
  client: Socket;
  /** The gateway's end of the client connection. */
  accepted: Socket;
  /** The gateway's end of the backend connection. */
  backend: Socket;
  /** The pod's end of the backend connection. */
  backendPeer: Socket;
  close: () => void;
}

/** How the gateway's sockets read: stream reads; the backend into a reused buffer; both (the client's adopted, as the router does). */
type ReadMode = 'stream' | 'backend' | 'both';

/** A client connection and a backend connection on loopback, both ends of each, not yet spliced. */
async function connectedPairs(mode: ReadMode): Promise<Connected> {
  const reusableReads = mode !== 'stream';
  const servers: Server[] = [];
  const listen = async (onSocket: (s: Socket) => void) => {
    const server = createServer({ allowHalfOpen: true }, onSocket);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as { port: number }).port;
  };
  let backendPeer: Socket | undefined;
  let accepted: Socket | undefined;
  const backendPort = await listen((s) => (backendPeer = s));
  const gatewayPort = await listen((s) => (accepted = s));
  // As the gateway dials (proxy/dial.ts): read into a reused buffer; or a plain stream socket.
  const reads = new ReusableReads();
  const backend = reusableReads
    ? reads.bind(connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true, onread: reads.options }))
    : connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true });
  const client = connect({ port: gatewayPort, host: '127.0.0.1', allowHalfOpen: true });
  await Promise.all([once(backend, 'connect'), once(client, 'connect')]);
  while (!backendPeer || !accepted) await new Promise((r) => setImmediate(r));
  if (mode === 'both')
    assert.ok(adoptReusableReads(accepted), 'this Node version lets an accepted socket read into a reused buffer');
  return { client, accepted, backend, backendPeer, close: () => servers.forEach((s) => s.close()) };
}

/** Splices the gateway's two sockets with nothing read before; resolves with how the splice ended. */
function spliceUntilClosed(accepted: Socket, backend: Socket): Promise<PipeResult> {
  return new Promise((resolve) => splice(accepted, backend, { head: Buffer.alloc(0), ended: false }, resolve));
}

/** As connectedPairs, with the gateway's two sockets spliced. */
async function socketPairs(mode: ReadMode): Promise<Connected & { spliced: Promise<PipeResult> }> {
  const pairs = await connectedPairs(mode);
  return { ...pairs, spliced: spliceUntilClosed(pairs.accepted, pairs.backend) };
}

/** The deadline only turns a hang into a failure that names what never happened. */
async function resolvesWithin<T>(promise: Promise<T>, what: string, deadlineMs = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`gave up waiting for: ${what}`)), deadlineMs)),
  );
  try {
    return await Promise.race([promise, gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}

async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

for (const reusableReads of ['stream', 'backend', 'both'] as const) {
  const mode = {
    stream: '',
    backend: ' (backend read into a reused buffer)',
    both: ' (both sides read into reused buffers)',
  }[reusableReads];
  test(`bytes flow both ways and are counted${mode}`, async () => {
    const { client, backendPeer, spliced, close } = await socketPairs(reusableReads);
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

  test(`half-close: the client FIN reaches the backend and the reply still flows back${mode}`, async () => {
    const { client, backendPeer, spliced, close } = await socketPairs(reusableReads);
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

  test(`half-close the other way: the backend FIN reaches the client while the client keeps sending${mode}`, async () => {
    const { client, backendPeer, spliced, close } = await socketPairs(reusableReads);
    backendPeer.end('banner');
    const fromBackend = await readAll(client);
    assert.equal(fromBackend.toString(), 'banner');
    const upstream = readAll(backendPeer);
    client.end('late data');
    assert.equal((await upstream).toString(), 'late data');
    await spliced;
    close();
  });

  for (const failing of ['backend', 'client'] as const) {
    test(`an error on the ${failing} side destroys the other side, not only ends it${mode}`, async () => {
      const { client, accepted, backend, backendPeer, spliced, close } = await socketPairs(reusableReads);
      client.on('error', () => undefined);
      backendPeer.on('error', () => undefined);
      const [failingPeer, otherGatewaySocket, otherPeer] =
        failing === 'backend' ? [backendPeer, accepted, client] : [client, backend, backendPeer];
      failingPeer.resetAndDestroy();
      // The other peer allows half-open and keeps writing, so an end() alone would leave the gateway's socket open.
      await once(otherPeer, 'end');
      assert.equal(
        otherGatewaySocket.destroyed,
        true,
        `the gateway's socket to the ${failing === 'backend' ? 'client' : 'backend'} is still open`,
      );
      const result = await spliced;
      assert.equal(result.error?.side, failing);
      otherPeer.destroy();
      close();
    });
  }

  for (const side of ['client', 'backend'] as const) {
    test(`splice with a ${side} socket that already closed resolves and closes the other side${mode}`, async () => {
      const { client, accepted, backend, backendPeer, close } = await connectedPairs(reusableReads);
      client.on('error', () => undefined);
      backendPeer.on('error', () => undefined);
      const [goneGatewaySocket, gonePeer, otherPeer] =
        side === 'client' ? [accepted, client, backendPeer] : [backend, backendPeer, client];
      goneGatewaySocket.on('error', () => undefined);
      gonePeer.resetAndDestroy();
      goneGatewaySocket.resume(); // reading is how the gateway learns of the reset
      await new Promise((resolve) => goneGatewaySocket.once('close', resolve));
      const result = await resolvesWithin(
        spliceUntilClosed(accepted, backend),
        'splice with a closed socket to resolve',
      );
      assert.equal(result.error?.side, side);
      assert.equal(accepted.destroyed && backend.destroyed, true);
      otherPeer.resume();
      if (!otherPeer.readableEnded)
        await resolvesWithin(once(otherPeer, 'end'), 'the other peer to see the connection end');
      otherPeer.destroy();
      close();
    });
  }

  for (const direction of ['down', 'up'] as const) {
    const name =
      `back-pressure ${direction}: a reader that does not read stalls the writer, ` +
      `and the gateway buffers a few high-water marks at most${mode}`;
    test(name, async () => {
      const { client, accepted, backend, backendPeer, spliced, close } = await socketPairs(reusableReads);
      const [writer, reader, gatewayIn, gatewayOut] =
        direction === 'down' ? [backendPeer, client, backend, accepted] : [client, backendPeer, accepted, backend];
      reader.pause(); // never reads, so its kernel buffers fill and the gateway's writes stop draining
      const buffered = () => gatewayIn.readableLength + gatewayOut.writableLength;
      const bound = 4 * (gatewayIn.readableHighWaterMark + gatewayOut.writableHighWaterMark);
      const chunk = Buffer.alloc(64 * 1024, 1);
      const limit = 64 * 1024 * 1024;
      let written = 0;
      let mostBuffered = 0;
      let stalled = false;
      while (written < limit) {
        mostBuffered = Math.max(mostBuffered, buffered());
        written += chunk.length;
        if (writer.write(chunk)) continue;
        // Not a timing claim: a second without 'drain' only ends the writing; the assertions are on bytes.
        const drained = await Promise.race([
          once(writer, 'drain').then(() => true),
          new Promise((r) => setTimeout(r, 1000, false)),
        ]);
        if (!drained) {
          stalled = true;
          break;
        }
      }
      mostBuffered = Math.max(mostBuffered, buffered());
      assert.ok(
        mostBuffered <= bound,
        `the gateway buffered ${mostBuffered} bytes (bound ${bound}) after the writer wrote ${written}`,
      );
      assert.equal(stalled, true, `the writer never stalled after ${written} bytes`);
      client.destroy();
      backendPeer.destroy();
      await spliced;
      close();
    });
  }

  for (const direction of ['down', 'up'] as const) {
    test(`a slow reader ${direction} gets every byte in order while writes are left pending${mode}`, async () => {
      const { client, backendPeer, spliced, close } = await socketPairs(reusableReads);
      const [writer, reader] = direction === 'down' ? [backendPeer, client] : [client, backendPeer];
      // Varied bytes: a read buffer reused under a pending write would show as corruption.
      const payload = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
      const chunks: Buffer[] = [];
      let got = 0;
      const received = new Promise<void>((resolve) => {
        reader.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          got += chunk.length;
          // Pauses now and then, so the gateway's writes to the reader back up.
          if (chunks.length % 8 === 0) {
            reader.pause();
            setTimeout(() => reader.resume(), 5);
          }
        });
        reader.once('end', resolve);
      });
      writer.end(payload);
      await received;
      assert.equal(got, payload.length);
      assert.equal(Buffer.compare(Buffer.concat(chunks), payload), 0);
      reader.end();
      const result = await spliced;
      assert.equal(direction === 'down' ? result.bytesDown : result.bytesUp, payload.length);
      close();
    });
  }
}

test('small reads queued behind a write that has not gone out yet each reach the reader intact (both sides read into reused buffers)', async () => {
  const { client, backend, backendPeer, spliced, close } = await socketPairs('both');
  // The gateway's writes to the backend stay queued, holding their bytes, as when its kernel buffer is full.
  backend.cork();
  const messages = Array.from({ length: 50 }, (_, i) =>
    Buffer.from(`message ${i};`.padEnd(100, String.fromCharCode(97 + (i % 26)))),
  );
  const expected = Buffer.concat(messages);
  for (const message of messages) {
    client.write(message);
    await new Promise((r) => setTimeout(r, 1)); // one read per message, not one coalesced read
  }
  const deadline = Date.now() + 20_000;
  while (backend.writableLength < expected.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const received = readAll(backendPeer);
  backend.uncork();
  client.end();
  try {
    assert.ok((await received).equals(expected), 'the backend received every message once, in order');
  } finally {
    backendPeer.destroy();
    client.destroy();
    await spliced;
    close();
  }
});
