import type { Socket } from 'node:net';
import type { BackendSet } from '../backends/backend-set.ts';
import type { Backend } from '../backends/source.ts';
import type { Clock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import type { ConnectionActivity } from '../scaler/activity.ts';
import { CapacityQueue } from './capacity-queue.ts';
import { sleepUnlessClientLeaves, unlessClientLeaves, type ClientDeparture } from './client-departure.ts';
import { dialBackend, dialBackoffMs } from './dial.ts';
import type { Hold, PendingConnections } from './pending.ts';

export interface BackendConnectorInputs {
  /** The pods a connection may go to, best first, as the scaler and the balancer say. */
  backends: BackendSet;
  /** Where a connection waits while no pod can take it; bounded by --max-pending. */
  pending: PendingConnections;
  /** Connections waiting for room under --max-connections-per-replica, in arrival order (default: a new one). */
  capacityQueue?: CapacityQueue | undefined;
  clock: Clock;
  /** Upper bound for one connect attempt, so one silent pod cannot eat the whole ready-wait budget (default 5 s). */
  dialTimeoutMs?: number | undefined;
  /** Opens a backend connection (default dialBackend); a seam so tests can hold a dial pending, like a pod that drops SYNs. */
  dial?: ((backend: Backend, timeoutMs: number) => Promise<Socket>) | undefined;
}

export interface BackendConnectorCallbacks {
  /** Each failed dial (`dial_failed`, BKA_DIAL_FAILED). */
  emit: EmitEvent;
  /** Why waking cannot work now (StatefulSet missing, forbidden watch, permanent scale failure), if so. */
  currentFailure(): GatewayError | undefined;
}

/** A connected backend socket, the pod behind it, and whether it was the client's own builder. */
export interface Connected {
  socket: Socket;
  backend: Backend;
  affinityHit: boolean | undefined;
}

/** Shared until a dial fails: most connections never need a set of their own. */
const noneFailed: ReadonlySet<string> = new Set();

/**
 * The hold/dial/retry loop of one connection: choose a pod, hold the connection while none can take it
 * (or queue it for room under the cap), dial, and on failure try the next pod or back off, all within the
 * connection's ready-wait deadline.
 */
export class BackendConnector {
  private readonly backends: BackendSet;
  private readonly pending: PendingConnections;
  private readonly capacityQueue: CapacityQueue;
  private readonly clock: Clock;
  private readonly dialTimeoutMs: number;
  private readonly dial: (backend: Backend, timeoutMs: number) => Promise<Socket>;
  private readonly callbacks: BackendConnectorCallbacks;

  constructor(inputs: BackendConnectorInputs, callbacks: BackendConnectorCallbacks) {
    this.backends = inputs.backends;
    this.pending = inputs.pending;
    this.capacityQueue = inputs.capacityQueue ?? new CapacityQueue();
    this.clock = inputs.clock;
    this.dialTimeoutMs = inputs.dialTimeoutMs ?? 5000;
    this.dial = inputs.dial ?? dialBackend;
    this.callbacks = callbacks;
  }

  /** Gives up connection `id`'s place in the capacity queue, if it has one; the next in line looks again. */
  leaveCapacityQueue(id: number): boolean {
    const { capacityQueue, pending } = this;
    if (!capacityQueue.leave(id)) return false;
    if (capacityQueue.size > 0) pending.wakeAll();
    return true;
  }

  /**
   * Resolves with a connected backend socket, or undefined if the client left first; throws GatewayError.
   * `onWaiting` hears when the connection is first held, and when it first joins the capacity queue.
   */
  async connect(
    id: number,
    deadline: number,
    activity: ConnectionActivity,
    clientKey: () => string,
    clientLeft: ClientDeparture,
    onWaiting: (waiting: Hold | 'queued') => void,
  ): Promise<Connected | undefined> {
    const { backends, pending, clock, capacityQueue } = this;
    const { emit } = this.callbacks;
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
        const failure = this.callbacks.currentFailure();
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
          this.dial(backend, Math.min(remaining, this.dialTimeoutMs)),
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

const backendLabels = new WeakMap<Backend, string>();
/** How log lines name a backend, built once per backend rather than once per connection. */
export function backendLabel(backend: Backend): string {
  let label = backendLabels.get(backend);
  if (label === undefined) backendLabels.set(backend, (label = `${backend.podName} ${backend.host}:${backend.port}`));
  return label;
}
