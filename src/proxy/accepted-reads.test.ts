import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { adoptReusableReads } from './accepted-reads.ts';
import { ReusableReads, reusableReadsOf } from './reusable-reads.ts';

/** An accepted socket (the gateway's end) and its client, on loopback. */
async function acceptedPair(): Promise<{ accepted: Socket; client: Socket; close: () => void }> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [Socket];
  return { accepted, client, close: () => server.close() };
}

async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('an accepted socket reads into a reused buffer once adopted, and bytes read before come first', async () => {
  const { accepted, client, close } = await acceptedPair();
  client.write('before ');
  // Held, as the router holds a client: its first bytes wait in the paused stream.
  accepted.pause();
  while (accepted.readableLength < 7) await new Promise((r) => setTimeout(r, 5));
  const reads = adoptReusableReads(accepted);
  assert.ok(reads, 'Node 24 lets an accepted socket read into a reused buffer');
  assert.equal(reusableReadsOf(accepted), reads);
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const destination = connect({
    port: (server.address() as { port: number }).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  });
  const [peer] = (await once(server, 'connection')) as [Socket];
  const received = readAll(peer);
  reads.pipeTo(destination);
  let dataEvents = 0;
  accepted.on('data', () => (dataEvents += 1));
  client.end('and after');
  assert.equal((await received).toString(), 'before and after');
  assert.equal(dataEvents, 0, 'reads no longer go through the stream');
  accepted.destroy();
  destination.destroy();
  server.close();
  close();
});

test('a socket that cannot be adopted is left as it was: closed, or already reading into its own buffer', async () => {
  const { accepted, client, close } = await acceptedPair();
  accepted.destroy();
  assert.equal(adoptReusableReads(accepted), undefined);
  const own = new ReusableReads();
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dialled = own.bind(
    connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', onread: own.options }),
  );
  await once(dialled, 'connect');
  assert.equal(adoptReusableReads(dialled), undefined);
  assert.equal(reusableReadsOf(dialled), own);
  dialled.destroy();
  client.destroy();
  server.close();
  close();
});
