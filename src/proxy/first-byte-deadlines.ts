import type { Clock, Timer } from '../clock.ts';

/** One connection waiting for its first byte; cancel it when the byte arrives or the client leaves. */
export interface FirstByteWait {
  cancel(): void;
}

/**
 * Ends connections that stay silent past --first-byte-timeout, with one timer for all of them instead of
 * one per connection (a timer per connection is CPU spent on every accept). Every connection gets the same
 * timeout, so deadlines fall in arrival order: a Set keeps that order, and only the oldest waiting
 * connection needs the timer.
 */
export class FirstByteDeadlines {
  private readonly waiting = new Set<{ deadline: number; expire: () => void }>();
  private timer: Timer | undefined;
  private readonly timeoutMs: number;
  private readonly clock: Clock;

  constructor(timeoutMs: number, clock: Clock) {
    this.timeoutMs = timeoutMs;
    this.clock = clock;
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Calls `expire` once the timeout has passed, unless cancelled first. */
  watch(expire: () => void): FirstByteWait {
    const entry = { deadline: this.clock.now() + this.timeoutMs, expire };
    this.waiting.add(entry);
    if (!this.timer) this.arm(entry.deadline);
    return { cancel: () => this.waiting.delete(entry) };
  }

  private arm(deadline: number): void {
    this.timer = this.clock.setTimer(Math.max(0, deadline - this.clock.now()), () => this.expireDue());
  }

  private expireDue(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (const entry of this.waiting) {
      if (entry.deadline > now) {
        this.arm(entry.deadline);
        return;
      }
      this.waiting.delete(entry);
      entry.expire();
    }
  }
}
