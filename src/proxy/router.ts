import type { Socket } from 'node:net';
import type { BackendSet } from '../backends/backend-set.ts';
import type { Clock } from '../clock.ts';
import type { WakeOn } from '../config.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import { ConnectionOutcome, type EmitEvent } from '../events.ts';
import type { ConnectionActivity } from '../scaler/activity.ts';
import { adoptReusableReads } from './accepted-reads.ts';
import { BackendConnector, backendLabel, type BackendConnectorInputs } from './backend-connector.ts';
import { ClientDeparture } from './client-departure.ts';
import { howRoutingFailed, howSpliceEnded } from './connection-end.ts';
import { EarlyInput } from './early-input.ts';
import { FirstByteDeadlines } from './first-byte-deadlines.ts';
import type { Hold, PendingConnections } from './pending.ts';
import { splice } from './pipe.ts';
import { SplicedSockets } from './spliced-sockets.ts';
import { backendRefusedTls, watchTlsRefusal } from './tls-refusal.ts';

export interface RouterInputs extends BackendConnectorInputs {
  backends: BackendSet;
  pending: PendingConnections;
  clock: Clock;
  /** How long a connection may wait for a pod to accept it, counted from when it became demand. */
  readyWaitTimeoutMs: number;
  /** data: a connection is demand only from its first byte (health checks wake nothing); connect: from accept. */
  wakeOn: WakeOn;
  /** With wakeOn data, a connection silent this long is closed. */
  firstByteTimeoutMs: number;
}

export interface RouterCallbacks {
  /** Every step of a connection (held, queued, routed, dial_failed) and its access line (connection_closed). */
  emit: EmitEvent;
  /** Counts the connection as demand: the scaler wakes builders for it. Called once, at accept or first byte. */
  arrive(): ConnectionActivity;
  /** Why waking cannot work now, if so: a held connection ends at once with this code. */
  currentFailure(): GatewayError | undefined;
}

/** A connection the routing phase handed to the relay: its backend socket and what the client sent while it waited. */
interface Routed {
  socket: Socket;
  podKey: string;
  head: Buffer;
  activity: ConnectionActivity;
  /** How long it waited in the capacity queue; undefined if it never did. */
  queuedMs: number | undefined;
}

/**
 * One client connection from accept to its access line: wait for the first byte, count it as demand,
 * get a backend socket from the BackendConnector (hold, dial, retry), splice, and emit how it ended
 * (connection-end.ts names the outcome). Also what shutdown needs: every access line out, spliced
 * sockets closed.
 */
export class Router {
  private nextId = 1;
  private readonly inputs: RouterInputs;
  private readonly callbacks: RouterCallbacks;
  private readonly connector: BackendConnector;
  private readonly spliced = new SplicedSockets();
  private readonly silentConnections: FirstByteDeadlines;
  /** Connections between accept and their access line, and who waits for that count to reach zero. */
  private handling = 0;
  private readonly allLogged: Array<() => void> = [];

  constructor(inputs: RouterInputs, callbacks: RouterCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    this.connector = new BackendConnector(inputs, callbacks);
    this.silentConnections = new FirstByteDeadlines(inputs.firstByteTimeoutMs, inputs.clock);
    const { backends, pending } = inputs;
    const stillExists = (podKey: string) => backends.stillExists(podKey);
    backends.onChange(() => {
      pending.wakeAll();
      this.spliced.closeGone(stillExists);
    });
  }

  /** Closes every spliced backend socket, including those whose client has gone already (end of the shutdown grace period). */
  destroySpliced(cause: GatewayError): void {
    this.spliced.destroyAll(cause);
  }

  /**
   * Resolves once the connection is spliced or ended (untilAllLogged() waits for its access line): a
   * promise that lasted as long as the connection would cost every open one its reactions.
   */
  handle(client: Socket): Promise<void> {
    const id = this.nextId++;
    const arrivedAt = this.inputs.clock.now();
    this.handling += 1;
    // Two phases, so that a long-lived connection keeps only what relaying needs: the routing phase's
    // closures, early-input capture and hold are garbage once it returns (~3 KiB less heap per open connection).
    return this.route(client, id, arrivedAt).then(
      (routed) => (routed ? this.relay(client, id, arrivedAt, routed) : this.logged()),
      (error: unknown) => {
        this.logged();
        throw error;
      },
    );
  }

  /** One connection's access line is out (relay and route call it last). */
  private logged(): void {
    this.handling -= 1;
    if (this.handling === 0) this.allLogged.splice(0).forEach((resolve) => resolve());
  }

  /** Resolves once every connection handled so far has ended and emitted its access line (shutdown waits for it). */
  untilAllLogged(): Promise<void> {
    if (this.handling === 0) return Promise.resolve();
    return new Promise((resolve) => this.allLogged.push(resolve));
  }

  /**
   * From accept to a connected backend socket: waits for the first byte (--wake-on=data), holds the
   * client while no pod can take it, dials with retries. Undefined once the connection ended here
   * (its closing event emitted and its activity closed).
   */
  private async route(client: Socket, id: number, arrivedAt: number): Promise<Routed | undefined> {
    const { clock } = this.inputs;
    const { emit } = this.callbacks;
    let hold: Hold | undefined;
    const clientLeft = new ClientDeparture();
    const onEarlyClose = () => {
      clientLeft.leave();
      hold?.cancelWait();
      this.inputs.pending.wakeAll();
    };
    // on, not once: every path below removes it, and once would wrap it in a closure per connection.
    client.on('close', onEarlyClose);
    let refusal: GatewayError | undefined;
    // A FIN before the splice means the client left; bytes beyond what may be kept refuse it (see EarlyInput).
    const early = new EarlyInput(client, this.inputs.pending, {
      onEnd: onEarlyClose,
      onOverflow: (error) => {
        refusal = error;
        client.destroy();
      },
    });
    if (this.inputs.wakeOn === 'data') {
      const silentEnd = await this.untilFirstByte(client);
      if (silentEnd) {
        client.off('close', onEarlyClose);
        client.destroy();
        const error = refusal ?? silentEnd.error;
        emit({
          kind: 'connection_closed',
          id,
          outcome: refusal ? ConnectionOutcome.rejectedPendingBytes : silentEnd.outcome,
          bytesUp: 0,
          bytesDown: 0,
          durationMs: clock.now() - arrivedAt,
          ...(error ? { code: error.code, error: error.message } : {}),
        });
        return undefined;
      }
    }
    // Demand (and the ready-wait deadline) start here: at accept, or at the first byte with --wake-on=data.
    const demandSince = clock.now();
    const deadline = demandSince + this.inputs.readyWaitTimeoutMs;
    const activity = this.callbacks.arrive();
    let queuedAt: number | undefined;
    try {
      const connected = await this.connector.connect(
        id,
        deadline,
        activity,
        () => client.remoteAddress ?? '',
        clientLeft,
        (waiting) => {
          const from = `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`;
          if (waiting === 'queued') {
            queuedAt = clock.now();
            emit({ kind: 'connection_queued', id, client: from });
          } else {
            hold = waiting;
            emit({ kind: 'connection_held', id, client: from });
          }
        },
      );
      client.off('close', onEarlyClose);
      hold?.release();
      this.connector.leaveCapacityQueue(id);
      if (connected === undefined) {
        if (refusal) throw refusal;
        // Not the client's doing: the gateway closed it (end of the shutdown grace period).
        if (client.errored instanceof GatewayError) throw client.errored;
        client.destroy();
        activity.close();
        emit({
          kind: 'connection_closed',
          id,
          outcome: ConnectionOutcome.clientGoneWhileHeld,
          bytesUp: 0,
          bytesDown: 0,
          durationMs: clock.now() - arrivedAt,
          queuedMs: since(queuedAt, clock),
        });
        return undefined;
      }
      const { backend } = connected;
      const waited = since(queuedAt, clock);
      emit({
        kind: 'connection_routed',
        id,
        backend: backendLabel(backend),
        heldMs: hold ? clock.now() - demandSince : undefined,
        affinityHit: connected.affinityHit,
        queuedMs: waited,
      });
      return { socket: connected.socket, podKey: backend.key, head: early.take(), activity, queuedMs: waited };
    } catch (error) {
      client.off('close', onEarlyClose);
      hold?.release();
      client.destroy();
      activity.close();
      const { outcome, error: gatewayError } = howRoutingFailed(error, this.connector.leaveCapacityQueue(id));
      emit({
        kind: 'connection_closed',
        id,
        outcome,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: clock.now() - arrivedAt,
        queuedMs: since(queuedAt, clock),
        code: gatewayError.code,
        error: gatewayError.message,
      });
      return undefined;
    }
  }

  /**
   * Splices a routed connection; once both sides closed, emits its access line and closes its activity.
   * Callbacks rather than an awaiting async function: an idle spliced connection keeps one closure here
   * (its context: what the access line needs), not a suspended generator and its promises.
   */
  private relay(client: Socket, id: number, arrivedAt: number, routed: Routed): void {
    const { socket: backendSocket, podKey, head, activity, queuedMs } = routed;
    this.spliced.track(podKey, backendSocket);
    // Client bytes are read into a reused buffer from here on, as the backend's are (see adoptReusableReads).
    adoptReusableReads(client);
    splice(client, backendSocket, { head, ended: false }, (result) => {
      try {
        this.spliced.untrack(podKey, backendSocket);
        this.callbacks.emit({
          kind: 'connection_closed',
          id,
          ...howSpliceEnded(result, backendRefusedTls(backendSocket)),
          bytesUp: result.bytesUp,
          bytesDown: result.bytesDown,
          durationMs: this.inputs.clock.now() - arrivedAt,
          queuedMs,
        });
      } finally {
        activity.close();
        this.logged();
      }
    });
    // After the splice has started the pipes: a stream socket's 'data' listener must not set it flowing first.
    watchTlsRefusal(client, backendSocket, head);
  }

  /** Resolves at the client's first byte (EarlyInput keeps it), or with how the connection ended without one. */
  private untilFirstByte(client: Socket): Promise<{ outcome: ConnectionOutcome; error?: GatewayError } | undefined> {
    return new Promise((resolve) => {
      const settle = (result: { outcome: ConnectionOutcome; error?: GatewayError } | undefined) => {
        wait.cancel();
        client.off('data', onData);
        client.off('end', onLeft);
        client.off('close', onLeft);
        resolve(result);
      };
      const left = { outcome: ConnectionOutcome.closedBeforeData };
      // EarlyInput's listener ran first: a client it refused (budget full) is destroyed already.
      const onData = () => settle(client.destroyed ? left : undefined);
      const onLeft = () => settle(left);
      // settle removes all three, so once's wrapper closures would be garbage made per connection.
      client.on('data', onData);
      client.on('end', onLeft);
      client.on('close', onLeft);
      const wait = this.silentConnections.watch(() =>
        settle({
          outcome: ConnectionOutcome.firstByteTimeout,
          error: new GatewayError(
            ErrorCode.FirstByteTimeout,
            `the client sent nothing within --first-byte-timeout (${this.inputs.firstByteTimeoutMs}ms)`,
          ),
        }),
      );
    });
  }
}

/** Milliseconds since `start`, or undefined if it never happened (a connection that never queued). */
function since(start: number | undefined, clock: Clock): number | undefined {
  return start === undefined ? undefined : clock.now() - start;
}
