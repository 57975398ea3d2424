import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ErrorCode, GatewayError } from '../errors.ts';
import { ConnectionOutcome, type EmitEvent } from '../events.ts';
import type { ListenAddress } from '../listen-address.ts';
import { keepaliveAfterDelay } from './keepalive-after-delay.ts';

export interface ListenerInputs {
  /** --listen-addr. */
  address: ListenAddress;
  /** --max-connections: beyond it a new client is refused at once (BKA_MAX_CONNECTIONS). */
  maxConnections: number;
}

export interface ListenerCallbacks {
  /** `listening` once, and `connection_rejected` for each client refused. */
  emit: EmitEvent;
  /** Takes an accepted connection from here to its close (Router.handle). */
  handle: (socket: Socket) => Promise<void>;
  /** The number of open client connections changed (bka_connections_open). */
  onOpenChange?: (open: number) => void;
}

/** Accepts client connections, enforces --max-connections, and tracks every socket for shutdown. */
export class ProxyListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly inputs: ListenerInputs;
  private readonly callbacks: ListenerCallbacks;
  /** One 'close' listener shared by every client socket (`this` is the socket): no closure per connection. */
  private readonly socketClosed: (this: Socket) => void;
  private accepting = false;

  constructor(inputs: ListenerInputs, callbacks: ListenerCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    // allowHalfOpen: a client's FIN must reach buildkitd while the response still flows back. Keepalive
    // (a vanished client is found) only for connections that outlive its delay: see KeepaliveAfterDelay.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    const sockets = this.sockets;
    this.socketClosed = function (this: Socket): void {
      sockets.delete(this);
      callbacks.onOpenChange?.(sockets.size);
    };
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = this.inputs.address;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (error) =>
        reject(
          new GatewayError(ErrorCode.ListenFailed, `cannot listen on ${host ?? ''}:${port}: ${error.message}`, {
            cause: error,
          }),
        ),
      );
      this.server.listen({ host, port, backlog: 4096 }, resolve);
    });
    this.accepting = true;
    const address = this.server.address() as AddressInfo;
    this.callbacks.emit({ kind: 'listening', what: 'proxy', address: address.address, port: address.port });
    return address;
  }

  get listening(): boolean {
    return this.accepting;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stops accepting; open connections go on. Resolves once every connection has closed. */
  async stopAccepting(): Promise<void> {
    this.accepting = false;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Closes every client socket still open, with `cause` as its error (the access line's reason); returns how many. */
  destroyAll(cause: GatewayError): number {
    const count = this.sockets.size;
    for (const socket of this.sockets) socket.destroy(cause);
    return count;
  }

  private accept(socket: Socket): void {
    // Every socket gets an error listener at once: an unhandled socket error would end the process.
    socket.on('error', ignoreError);
    if (this.sockets.size >= this.inputs.maxConnections) {
      const client = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      this.callbacks.emit({
        kind: 'connection_rejected',
        outcome: ConnectionOutcome.rejectedMaxConnections,
        client,
        code: ErrorCode.MaxConnections,
      });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    keepaliveAfterDelay(socket);
    this.callbacks.onOpenChange?.(this.sockets.size);
    socket.on('close', this.socketClosed);
    void this.callbacks.handle(socket);
  }
}

/** Errors reach the access line through the router's own listeners; this one only keeps an error from ending the process. */
function ignoreError(): void {}
