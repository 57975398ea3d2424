// Time comes through this seam so idle and deadline logic is testable without sleeping.
export interface Timer {
  cancel(): void;
}

/**
 * The one source of time. `now` is monotonic (durations, deadlines, freshness: never jumps); `wallNow` is
 * this node's wall clock, only for times that are written down or compared with a writer's own stamps.
 */
export interface Clock {
  /** Monotonic milliseconds from an arbitrary origin. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (Date.now). */
  wallNow(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

/** Node's timers hold at most 2^31-1 ms (~24.8 days); a longer one fires after 1 ms instead. */
export const maxTimerMs = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(ms, fn) {
    if (ms > maxTimerMs) return chainedTimer(ms, fn);
    const handle = setTimeout(fn, ms);
    handle.unref?.();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A timer beyond Node's reach, as a chain of the longest ones it holds, so any configured duration waits in full. */
function chainedTimer(ms: number, fn: () => void): Timer {
  const due = performance.now() + ms;
  let handle: NodeJS.Timeout;
  const arm = (wait: number) => {
    handle = setTimeout(
      () => {
        const left = due - performance.now();
        if (left > 0) arm(left);
        else fn();
      },
      Math.min(wait, maxTimerMs),
    );
    handle.unref?.();
  };
  arm(ms);
  return { cancel: () => clearTimeout(handle) };
}

/** A clock for tests: time moves only when `advance` is called, both clocks together. */
export class ManualClock implements Clock {
  private current = 0;
  private timers = new Set<{ at: number; fn: () => void }>();
  private readonly wallAtStart: number;

  /** `wallAtStart`: the wall clock when the monotonic one reads 0 (another replica's skew is a different start). */
  constructor(wallAtStart = 0) {
    this.wallAtStart = wallAtStart;
  }

  now(): number {
    return this.current;
  }

  wallNow(): number {
    return this.wallAtStart + this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry = { at: this.current + ms, fn };
    this.timers.add(entry);
    return { cancel: () => this.timers.delete(entry) };
  }

  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const due = [...this.timers].filter((t) => t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers.delete(due);
      this.current = due.at;
      due.fn();
    }
    this.current = target;
  }

  get pendingTimers(): number {
    return this.timers.size;
  }
}
