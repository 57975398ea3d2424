import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface HeldBackProxy {
  port: number;
  /** Whether the client's bytes are held back now. */
  readonly holding: boolean;
  /** From now on, bytes from clients wait here (the answers to what already got through still flow). */
  holdBack(): void;
  /** Delivers what was held, in order, as a slow network finally would (also for clients gone meanwhile). */
  release(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that can hold back one direction: a process's requests stop reaching the server
 * (a slow or congested path) while the server's answers and watch events still reach it. Bytes are held,
 * never dropped: a request sent before the hold is delivered late, which is what a leader must survive.
 */
export async function startHeldBackProxy(target: { host: string; port: number }): Promise<HeldBackProxy> {
  let holding = false;
  const waiting: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target);
    sockets.add(client).add(upstream);
    const held: Buffer[] = [];
    let clientEnded = false;
    const flush = () => {
      for (const chunk of held.splice(0)) upstream.write(chunk);
      if (clientEnded) upstream.end();
    };
    client.on('data', (chunk: Buffer) => {
      if (holding) {
        if (held.length === 0) waiting.push(flush);
        held.push(chunk);
      } else upstream.write(chunk);
    });
    client.on('end', () => {
      clientEnded = true;
      if (held.length === 0) upstream.end();
    });
    // A client that aborts its request leaves what it sent on the way: the server still gets it on release.
    client.on('close', () => {
      clientEnded = true;
      if (held.length === 0) upstream.end();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk);
    });
    upstream.on('end', () => client.end());
    upstream.on('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get holding() {
      return holding;
    },
    holdBack() {
      holding = true;
    },
    release() {
      holding = false;
      for (const flush of waiting.splice(0)) flush();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
