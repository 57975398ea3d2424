import type { Socket } from 'node:net';
import type { BackendSet } from '../backends/backend-set.ts';
import type { Backend } from '../backends/source.ts';
import { dialBackend, dialBackoffMs } from './dial.ts';
import type { Clock } from '../clock.ts';
import type { WakeOn } from '../config.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import { ConnectionOutcome, type EmitEvent } from '../events.ts';
import type { ConnectionActivity } from '../scaler/activity.ts';
import { adoptReusableReads } from './accepted-reads.ts';
import { CapacityQueue } from './capacity-queue.ts';
import { EarlyInput } from './early-input.ts';
import { FirstByteDeadlines } from './first-byte-deadlines.ts';
import type { Hold, PendingConnections } from './pending.ts';
import { splice, type PipeResult } from './pipe.ts';
import { backendRefusedTls, watchTlsRefusal } from './tls-refusal.ts';

export interface RouterOptions {
  backends: BackendSet;
  pending: PendingConnections;
  /** Where connections count as demand (the scaler wakes builders for them) and why waking cannot work. */
  demand: {
    arrive(): ConnectionActivity;
    currentFailure(): GatewayError | undefined;
  };
  clock: Clock;
  emit: EmitEvent;
  readyWaitTimeoutMs: number;
  /** data: a connection is demand only from its first byte (health checks wake nothing); connect: from accept. */
  wakeOn: WakeOn;
  /** With wakeOn data, a connection silent this long is closed. */
  firstByteTimeoutMs: number;
  /** Upper bound for one connect attempt, so one silent pod cannot eat the whole ready-wait budget. */
  dialTimeoutMs?: number;
  /** Opens a backend connection; a seam so tests can hold a dial pending, like a pod that drops SYNs. */
  dial?: (backend: Backend, timeoutMs: number) => Promise<Socket>;
  /** Connections waiting for room under --max-connections-per-replica, in arrival order. */
  capacityQueue?: CapacityQueue;
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

/** Shared until a dial fails: most connections never need a set of their own. */
const noneFailed: ReadonlySet<string> = new Set();

const outcomeFor: Partial<Record<string, ConnectionOutcome>> = {
  [ErrorCode.ReadyTimeout]: ConnectionOutcome.readyTimeout,
  [ErrorCode.CapacityTimeout]: ConnectionOutcome.capacityTimeout,
  [ErrorCode.PendingFull]: ConnectionOutcome.rejectedMaxPending,
  [ErrorCode.PendingBytesFull]: ConnectionOutcome.rejectedPendingBytes,
  [ErrorCode.ScaleForbidden]: ConnectionOutcome.scaleFailed,
  [ErrorCode.StatefulSetNotFound]: ConnectionOutcome.scaleFailed,
  [ErrorCode.ScaleFailed]: ConnectionOutcome.scaleFailed,
  [ErrorCode.WakeGaveUp]: ConnectionOutcome.scaleFailed,
  [ErrorCode.WatchForbidden]: ConnectionOutcome.scaleFailed,
  [ErrorCode.ShutdownClosed]: ConnectionOutcome.closedByShutdown,
};

/**
 * Takes one client connection from accept to close: route to a ready backend, or hold it while the
 * scaler wakes buildkitd, dial with retries inside the ready-wait budget, then splice.
 */
export class Router {
  private nextId = 1;
  private readonly o: Required<RouterOptions>;
  /** Spliced backend sockets by pod key, so connections to a pod that is gone can be closed. */
  private readonly splicedByPod = new Map<string, Set<Socket>>();
  private readonly silentConnections: FirstByteDeadlines;
  /** Connections between accept and their access line, and who waits for that count to reach zero. */
  private handling = 0;
  private readonly allLogged: Array<() => void> = [];

  constructor(options: RouterOptions) {
    this.o = { dialTimeoutMs: 5000, dial: dialBackend, capacityQueue: new CapacityQueue(), ...options };
    this.silentConnections = new FirstByteDeadlines(options.firstByteTimeoutMs, options.clock);
    options.backends.onChange(() => {
      options.pending.wakeAll();
      this.closeConnectionsToGonePods();
    });
  }

  private closeConnectionsToGonePods(): void {
    for (const [key, sockets] of this.splicedByPod) {
      if (this.o.backends.stillExists(key)) continue;
      // A deleted pod's network may vanish without a FIN or RST; waiting for keepalive would leave the client hanging.
      for (const socket of sockets)
        socket.destroy(new GatewayError(ErrorCode.BackendLost, 'the buildkitd pod behind this connection is gone'));
      this.splicedByPod.delete(key);
    }
  }

  /** Closes every spliced backend socket, including those whose client has gone already (end of the shutdown grace period). */
  destroySpliced(cause: GatewayError): void {
    for (const sockets of this.splicedByPod.values()) for (const socket of sockets) socket.destroy(cause);
    this.splicedByPod.clear();
  }

  private track(key: string, socket: Socket): void {
    let sockets = this.splicedByPod.get(key);
    if (!sockets) this.splicedByPod.set(key, (sockets = new Set()));
    sockets.add(socket);
  }

  private untrack(key: string, socket: Socket): void {
    const sockets = this.splicedByPod.get(key);
    if (!sockets?.delete(socket)) return;
    if (sockets.size === 0) this.splicedByPod.delete(key);
  }

  /**
   * Resolves once the connection is spliced or ended (untilAllLogged() waits for its access line): a
   * promise that lasted as long as the connection would cost every open one its reactions.
   */
  handle(client: Socket): Promise<void> {
    const id = this.nextId++;
    const arrivedAt = this.o.clock.now();
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
    const { clock, emit } = this.o;
    let hold: Hold | undefined;
    const clientLeft = new ClientDeparture();
    const onEarlyClose = () => {
      clientLeft.leave();
      hold?.cancelWait();
      this.o.pending.wakeAll();
    };
    // on, not once: every path below removes it, and once would wrap it in a closure per connection.
    client.on('close', onEarlyClose);
    let refusal: GatewayError | undefined;
    // A FIN before the splice means the client left; bytes beyond what may be kept refuse it (see EarlyInput).
    const early = new EarlyInput(client, this.o.pending, {
      onEnd: onEarlyClose,
      onOverflow: (error) => {
        refusal = error;
        client.destroy();
      },
    });
    if (this.o.wakeOn === 'data') {
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
    const deadline = demandSince + this.o.readyWaitTimeoutMs;
    const activity = this.o.demand.arrive();
    let queuedAt: number | undefined;
    try {
      const connected = await this.connectBackend(
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
      this.leaveCapacityQueue(id);
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
      const failed =
        error instanceof GatewayError ? error : new GatewayError(ErrorCode.DialFailed, String(error), { cause: error });
      // Its deadline passed while it waited in the queue: for want of room, not for a builder to wake.
      const gatewayError =
        this.leaveCapacityQueue(id) && failed.code === ErrorCode.ReadyTimeout ? capacityTimeout(failed) : failed;
      emit({
        kind: 'connection_closed',
        id,
        outcome: outcomeFor[gatewayError.code] ?? ConnectionOutcome.backendError,
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
    this.track(podKey, backendSocket);
    // Client bytes are read into a reused buffer from here on, as the backend's are (see adoptReusableReads).
    adoptReusableReads(client);
    splice(client, backendSocket, { head, ended: false }, (result) => {
      try {
        this.untrack(podKey, backendSocket);
        this.o.emit({
          kind: 'connection_closed',
          id,
          ...howSpliceEnded(result, backendRefusedTls(backendSocket)),
          bytesUp: result.bytesUp,
          bytesDown: result.bytesDown,
          durationMs: this.o.clock.now() - arrivedAt,
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

  /** Gives up connection `id`'s place in the capacity queue, if it has one; the next in line looks again. */
  private leaveCapacityQueue(id: number): boolean {
    const { capacityQueue, pending } = this.o;
    if (!capacityQueue.leave(id)) return false;
    if (capacityQueue.size > 0) pending.wakeAll();
    return true;
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
            `the client sent nothing within --first-byte-timeout (${this.o.firstByteTimeoutMs}ms)`,
          ),
        }),
      );
    });
  }

  /**
   * Resolves with a connected backend socket, or undefined if the client left first; throws GatewayError.
   * `onWaiting` hears when the connection is first held, and when it first joins the capacity queue.
   */
  private async connectBackend(
    id: number,
    deadline: number,
    activity: ConnectionActivity,
    clientKey: () => string,
    clientLeft: ClientDeparture,
    onWaiting: (waiting: Hold | 'queued') => void,
  ): Promise<{ socket: Socket; backend: Backend; affinityHit: boolean | undefined } | undefined> {
    const { backends, pending, demand, clock, emit, capacityQueue } = this.o;
    let hold: Hold | undefined;
    const ensureHeld = () => {
      if (hold) return hold;
      hold = pending.enter(deadline);
      if (!hold)
        throw new GatewayError(
          ErrorCode.PendingFull,
          'too many connections already held while buildkitd wakes up (--max-pending)',
        );
      onWaiting(hold);
      return hold;
    };
    let recentlyFailed: ReadonlySet<string> = noneFailed;
    let attempt = 0;
    let queued = false;
    for (;;) {
      if (clientLeft.left) return undefined;
      const { order: candidates, affinityHit, atCapacity } = backends.choose(clientKey, recentlyFailed);
      // Arrival order: while a connection that came earlier waits for room, the room is theirs.
      const behind = capacityQueue.anyoneAhead(id);
      const backend = behind ? undefined : candidates[0];
      if (!backend) {
        const failure = demand.currentFailure();
        if (failure) throw failure;
        // Already counted as demand since it arrived: the scaler is waking a builder for it, or one closes.
        const held = ensureHeld();
        if ((atCapacity || behind) && capacityQueue.join(id) && !queued) {
          queued = true;
          onWaiting('queued');
        }
        await held.wait();
        continue;
      }
      const remaining = deadline - clock.now();
      if (remaining <= 0)
        throw new GatewayError(
          ErrorCode.ReadyTimeout,
          'no buildkitd pod accepted a connection within the ready-wait timeout',
        );
      // Counted on the pod from the dial on, so a scale-down cannot miss a connection still being dialled.
      activity.assign(backend.podName);
      this.leaveCapacityQueue(id);
      try {
        const socket = await unlessClientLeaves(
          this.o.dial(backend, Math.min(remaining, this.o.dialTimeoutMs)),
          clientLeft,
        );
        return socket && { socket, backend, affinityHit };
      } catch (error) {
        activity.unassign();
        attempt += 1;
        const message =
          error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
        emit({
          kind: 'dial_failed',
          id,
          backend: backendLabel(backend),
          error: message,
          attempt,
          code: ErrorCode.DialFailed,
        });
        recentlyFailed = new Set([...recentlyFailed, backend.key]);
        ensureHeld();
        if (candidates.length > 1 && attempt < candidates.length) continue; // try the next pod at once
        const delay = Math.min(dialBackoffMs(attempt), Math.max(0, deadline - clock.now()));
        await sleepUnlessClientLeaves(clock, delay, clientLeft);
        if (clientLeft.left) return undefined;
        if (clock.now() >= deadline)
          throw new GatewayError(
            ErrorCode.ReadyTimeout,
            `no buildkitd pod accepted a connection within the ready-wait timeout (last error: ${message})`,
          );
      }
    }
  }
}

/** Milliseconds since `start`, or undefined if it never happened (a connection that never queued). */
function since(start: number | undefined, clock: Clock): number | undefined {
  return start === undefined ? undefined : clock.now() - start;
}

/** What a connection that waited in the capacity queue failed with: its ready-wait deadline passed for want of room. */
function capacityTimeout(error: GatewayError): GatewayError {
  return new GatewayError(
    ErrorCode.CapacityTimeout,
    'every buildkitd pod stayed at --max-connections-per-replica with the pool at --max-replicas for the whole ready-wait timeout',
    { cause: error },
  );
}

const backendLabels = new WeakMap<Backend, string>();
/** How log lines name a backend, built once per backend rather than once per connection. */
function backendLabel(backend: Backend): string {
  let label = backendLabels.get(backend);
  if (label === undefined) backendLabels.set(backend, (label = `${backend.podName} ${backend.host}:${backend.port}`));
  return label;
}

/** Outcome and code of a spliced connection: a TLS refusal by the backend is named as such, whichever side errored after it. */
function howSpliceEnded(
  result: PipeResult,
  backendRefusedHandshake: boolean,
): { outcome: ConnectionOutcome; code?: ErrorCode; error?: string } {
  const failed = result.error;
  if (backendRefusedHandshake) {
    const why =
      'buildkitd refused the TLS handshake with an alert (for example mTLS and a client without a certificate)';
    return {
      outcome: ConnectionOutcome.backendTlsRefused,
      code: ErrorCode.BackendTlsRefused,
      error: failed ? `${why}; then ${failed.error.message}` : why,
    };
  }
  if (failed === undefined) return { outcome: ConnectionOutcome.completed };
  const closedByGateway = failed.error instanceof GatewayError ? outcomeFor[failed.error.code] : undefined;
  if (closedByGateway && failed.error instanceof GatewayError)
    return { outcome: closedByGateway, code: failed.error.code, error: failed.error.message };
  return failed.side === 'backend'
    ? { outcome: ConnectionOutcome.backendError, code: ErrorCode.BackendLost, error: failed.error.message }
    : { outcome: ConnectionOutcome.clientError, code: ErrorCode.ClientError, error: failed.error.message };
}

/**
 * The dial's socket, or undefined as soon as the client leaves: a pod that drops SYNs must not keep a
 * departed client counted as open for the whole dial timeout. A socket that connects later is closed.
 */
function unlessClientLeaves(dialing: Promise<Socket>, clientLeft: ClientDeparture): Promise<Socket | undefined> {
  return new Promise((resolve, reject) => {
    const onLeft = () => {
      dialing.then(
        (late) => late.destroy(),
        () => undefined,
      );
      resolve(undefined);
    };
    if (clientLeft.left) return onLeft();
    clientLeft.onLeave(onLeft);
    dialing.then(
      (socket) => {
        clientLeft.onLeave(undefined);
        resolve(socket);
      },
      (error: Error) => {
        clientLeft.onLeave(undefined);
        reject(error);
      },
    );
  });
}

/** Waits out a dial backoff, ending early if the client leaves. */
function sleepUnlessClientLeaves(clock: Clock, delayMs: number, clientLeft: ClientDeparture): Promise<void> {
  return new Promise((resolve) => {
    if (clientLeft.left) return resolve();
    const onLeft = () => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(delayMs, () => {
      clientLeft.onLeave(undefined);
      resolve();
    });
    clientLeft.onLeave(onLeft);
  });
}

/**
 * Whether a client left before it was spliced, and the one wait (a dial or a backoff) to end then: an
 * AbortController per connection would cost an EventTarget for what is one flag and one callback.
 */
class ClientDeparture {
  left = false;
  private waiter: (() => void) | undefined;

  leave(): void {
    if (this.left) return;
    this.left = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  onLeave(waiter: (() => void) | undefined): void {
    this.waiter = waiter;
  }
}
