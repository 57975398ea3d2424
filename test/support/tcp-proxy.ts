// A TCP proxy on 127.0.0.1 that a test uses to disturb one process's path to a server (the API server):
// hold back what the process sends (a slow or congested path: its requests arrive late, the answers to what
// already got through still flow), or pause both directions (a partition: requests and watches hang, nothing
// is refused). Bytes are held, never dropped: on release they are delivered in order, as a network would.
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Whether the bytes clients send are held back now. */
  readonly holding: boolean;
  /** From now on, bytes from clients wait here (the answers to what already got through still flow). */
  holdBack(): void;
  /** Delivers what clients sent meanwhile, in order (also for clients gone meanwhile). */
  release(): void;
  /** Holds both directions: nothing the client or the server sends gets through until resume(). */
  pause(): void;
  /** Delivers what both sides sent while paused, in order, and lets everything through again. */
  resume(): void;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

/** One direction of the proxy: while held, what arrives waits; on release, it is delivered in order. */
class Gate {
  held = false;
  private readonly waiting: Array<() => void> = [];

  defer(flush: () => void): void {
    this.waiting.push(flush);
  }

  open(): void {
    this.held = false;
    for (const flush of this.waiting.splice(0)) flush();
  }
}

/** Copies `from` to `to` through `gate`; the end of `from` (or its close) ends `to` once nothing is held. */
function pipeThrough(from: Socket, to: Socket, gate: Gate): void {
  const held: Buffer[] = [];
  let ended = false;
  const write = (chunk: Buffer) => {
    if (!to.destroyed) to.write(chunk);
  };
  const flush = () => {
    for (const chunk of held.splice(0)) write(chunk);
    if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    if (gate.held) {
      if (held.length === 0) gate.defer(flush);
      held.push(chunk);
    } else write(chunk);
  });
  // A side that aborts leaves what it sent on the way: the other side still gets it on release.
  const end = () => {
    if (ended) return;
    ended = true;
    if (held.length === 0) to.end();
  };
  from.on('end', end);
  from.on('close', end);
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const toServer = new Gate();
  const toClient = new Gate();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target);
    sockets.add(client).add(upstream);
    pipeThrough(client, upstream, toServer);
    pipeThrough(upstream, client, toClient);
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
    // The server gone: the client learns it once what the server sent before has reached it.
    upstream.on('close', () => (toClient.held ? toClient.defer(() => client.destroy()) : client.destroy()));
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get holding() {
      return toServer.held;
    },
    holdBack() {
      toServer.held = true;
    },
    release() {
      toServer.open();
    },
    pause() {
      toServer.held = true;
      toClient.held = true;
    },
    resume() {
      toServer.open();
      toClient.open();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
