// Time comes through this seam so idle and deadline logic is testable without sleeping.
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

// Node fires a longer setTimeout after 1 ms (TimeoutOverflowWarning): a longer wait is a chain of these.
const longestTimeoutMs = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    let handle: NodeJS.Timeout;
    const arm = (left: number) => {
      handle = left > longestTimeoutMs ? setTimeout(() => arm(left - longestTimeoutMs), longestTimeoutMs) : setTimeout(fn, left);
      handle.unref?.();
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock for tests: time moves only when `advance` is called. */
export class ManualClock implements Clock {
  private current = 0;
  private timers = new Set<{ at: number; fn: () => void }>();

  now(): number {
    return this.current;
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
