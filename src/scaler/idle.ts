import type { Clock, Timer } from '../clock.ts';
import type { EmitEvent } from '../events.ts';

/**
 * Counts open connections and fires `onIdle(epoch)` once none has been open for the idle timeout.
 * Every new connection bumps the epoch, so a scale-down decided for an older epoch can tell that a
 * connection arrived after the timer fired and must not go ahead.
 */
export class IdleTracker {
  private open = 0;
  private epochCounter = 0;
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private readonly idleTimeoutMs: number;
  private readonly emit: EmitEvent;
  onIdle: (epoch: number) => void = () => undefined;

  constructor(clock: Clock, idleTimeoutMs: number, emit: EmitEvent) {
    this.clock = clock;
    this.idleTimeoutMs = idleTimeoutMs;
    this.emit = emit;
  }

  connectionOpened(): void {
    this.open += 1;
    this.epochCounter += 1;
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
      this.emit({ kind: 'idle_timer_canceled', openConnections: this.open });
    }
  }

  connectionClosed(): void {
    this.open = Math.max(0, this.open - 1);
    if (this.open === 0) this.arm();
  }

  /** Starts the idle countdown if nothing is open and none is running; `afterMs` overrides the timeout (retries). */
  arm(afterMs: number = this.idleTimeoutMs): void {
    if (this.open > 0 || this.timer) return;
    const epoch = this.epochCounter;
    this.emit({ kind: 'idle_timer_started', timeoutMs: afterMs });
    this.timer = this.clock.setTimer(afterMs, () => {
      this.timer = undefined;
      this.onIdle(epoch);
    });
  }

  disarm(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** True while no connection is open and none has opened since `epoch` was taken. */
  isStillIdle(epoch: number): boolean {
    return this.open === 0 && this.epochCounter === epoch;
  }

  get epoch(): number {
    return this.epochCounter;
  }

  get openConnections(): number {
    return this.open;
  }

  get armed(): boolean {
    return this.timer !== undefined;
  }
}
