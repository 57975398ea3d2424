import type { Clock, Timer } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';

interface Waiter {
  resolve: () => void;
  reject: (error: GatewayError) => void;
  timer: Timer;
}

export interface Hold {
  /** Waits until backends may have changed; rejects at the deadline or on a wake-up failure. */
  wait(): Promise<void>;
  /** Ends a wait early (the client went away): the wait resolves so its caller can look again. */
  cancelWait(): void;
  /** Deadline as a clock time; dials share the same budget. */
  readonly deadline: number;
  release(): void;
}

/**
 * Connections held while buildkitd wakes up. Bounded in count and in the bytes they sent meanwhile (one
 * budget for all of them, so a flood of held clients cannot exhaust memory); each has its own deadline (the
 * ready-wait timeout, counted from when the connection arrived). Waiters are woken whenever the set of
 * backends changes and re-check for themselves, so no wake-up is lost and none is polled for.
 */
export interface PendingInputs {
  /** --max-pending: held connections at most; one more is refused (BKA_PENDING_FULL). */
  maxPending: number;
  /** --max-pending-bytes: what every held client sent meanwhile, together (BKA_PENDING_BYTES_FULL). */
  maxPendingBytes: number;
  clock: Clock;
}

export interface PendingCallbacks {
  /** The number of held connections changed (bka_connections_held). */
  onSizeChange?: (size: number) => void;
  /** The bytes kept for held clients changed (bka_pending_bytes). */
  onBytesChange?: (bytes: number) => void;
}

const ignore = (): void => undefined;

export class PendingConnections {
  private held = 0;
  private bytesHeld = 0;
  private waiters = new Set<Waiter>();
  private readonly max: number;
  private readonly maxBytes: number;
  private readonly clock: Clock;
  private readonly onSizeChange: (size: number) => void;
  private readonly onBytesChange: (bytes: number) => void;

  constructor(inputs: PendingInputs, callbacks: PendingCallbacks = {}) {
    this.max = inputs.maxPending;
    this.maxBytes = inputs.maxPendingBytes;
    this.clock = inputs.clock;
    this.onSizeChange = callbacks.onSizeChange ?? ignore;
    this.onBytesChange = callbacks.onBytesChange ?? ignore;
  }

  get size(): number {
    return this.held;
  }

  /** Bytes clients sent before a backend took them, still kept by the gateway. */
  get heldBytes(): number {
    return this.bytesHeld;
  }

  /** Counts early input against the shared budget; false (and nothing counted) when it does not fit. */
  reserveBytes(bytes: number): boolean {
    if (this.bytesHeld + bytes > this.maxBytes) return false;
    this.bytesHeld += bytes;
    this.onBytesChange(this.bytesHeld);
    return true;
  }

  releaseBytes(bytes: number): void {
    if (bytes === 0) return;
    this.bytesHeld -= bytes;
    this.onBytesChange(this.bytesHeld);
  }

  /** Takes a place in the queue, or returns undefined when it is full. */
  enter(deadline: number): Hold | undefined {
    if (this.held >= this.max) return undefined;
    this.held += 1;
    this.onSizeChange(this.held);
    let released = false;
    let waiter: Waiter | undefined;
    const cancelWait = () => {
      if (!waiter) return;
      const cancelled = waiter;
      waiter = undefined;
      cancelled.timer.cancel();
      this.waiters.delete(cancelled);
      cancelled.resolve();
    };
    return {
      deadline,
      wait: () =>
        new Promise<void>((resolve, reject) => {
          cancelWait();
          waiter = this.addWaiter(deadline, resolve, reject);
        }),
      cancelWait,
      release: () => {
        cancelWait();
        if (released) return;
        released = true;
        this.held -= 1;
        this.onSizeChange(this.held);
      },
    };
  }

  /** Something changed (backends, scale state): every waiter looks again. */
  wakeAll(): void {
    for (const waiter of this.takeAll()) waiter.resolve();
  }

  /** Waking up cannot succeed (StatefulSet missing, forbidden): every held connection fails now. */
  failAll(error: GatewayError): void {
    for (const waiter of this.takeAll()) waiter.reject(error);
  }

  private addWaiter(deadline: number, resolve: () => void, reject: (error: GatewayError) => void): Waiter {
    const remaining = deadline - this.clock.now();
    const waiter: Waiter = {
      resolve,
      reject,
      timer: this.clock.setTimer(Math.max(0, remaining), () => {
        this.waiters.delete(waiter);
        reject(new GatewayError(ErrorCode.ReadyTimeout, 'no buildkitd pod became ready within the ready-wait timeout'));
      }),
    };
    this.waiters.add(waiter);
    return waiter;
  }

  private takeAll(): Waiter[] {
    const all = [...this.waiters];
    this.waiters.clear();
    for (const waiter of all) waiter.timer.cancel();
    return all;
  }
}
