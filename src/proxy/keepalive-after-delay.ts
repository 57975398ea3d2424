import type { Socket } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.ts';

/** TCP keepalive's first probe after this much idle time, as the gateway has always set it (then libuv's 1 s x 10). */
export const KEEPALIVE_IDLE_MS = 30_000;
/** How often sockets are checked; each gets keepalive one to two sweeps (2-4 s) before its first probe is due. */
export const KEEPALIVE_SWEEP_MS = 2_000;

/** What this needs of a socket (a fake in unit tests). */
export interface KeepaliveSocket {
  readonly destroyed: boolean;
  setKeepAlive(enable: boolean, initialDelayMs: number): unknown;
}

/**
 * Turns TCP keepalive on only for sockets still open shortly before its first probe would be due: the
 * four setsockopt calls per socket are wasted on connections that close sooner. A socket that gets it
 * ends up exactly as if set at connect, first probe included (the kernel counts idle time from the last
 * packet received, not from the setsockopt). One timer ticks while any socket waits; each socket costs a
 * Map insert and delete. Sockets wait in insertion order, so a tick stops at the first one not yet due.
 */
export class KeepaliveAfterDelay<S extends KeepaliveSocket = Socket> {
  /** Waiting sockets and the tick during which each was added. */
  private readonly waiting = new Map<S, number>();
  private tick = 0;
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private readonly idleMs: number;
  private readonly sweepMs: number;
  private readonly ticksBeforeKeepalive: number;

  constructor(clock: Clock = systemClock, idleMs = KEEPALIVE_IDLE_MS, sweepMs = KEEPALIVE_SWEEP_MS) {
    this.clock = clock;
    this.idleMs = idleMs;
    this.sweepMs = sweepMs;
    // Added during tick t, a socket is (n - 1) to n sweeps old at tick t + n: one sweep of margin for a late timer.
    this.ticksBeforeKeepalive = Math.max(1, Math.floor(idleMs / sweepMs) - 1);
  }

  /** Keepalive for `socket` once it has been open about idle time minus a sweep or two, unless forgotten first. */
  add(socket: S): void {
    this.waiting.set(socket, this.tick);
    this.timer ??= this.clock.setTimer(this.sweepMs, this.sweep);
  }

  /** The socket closed: it needs nothing more. */
  forget(socket: S): void {
    this.waiting.delete(socket);
  }

  /** How many sockets wait for keepalive (tests, and the cost of this in memory). */
  get size(): number {
    return this.waiting.size;
  }

  private readonly sweep = (): void => {
    this.tick += 1;
    const addedBy = this.tick - this.ticksBeforeKeepalive;
    for (const [socket, addedAt] of this.waiting) {
      if (addedAt > addedBy) break;
      this.waiting.delete(socket);
      if (!socket.destroyed) socket.setKeepAlive(true, this.idleMs);
    }
    this.timer = this.waiting.size > 0 ? this.clock.setTimer(this.sweepMs, this.sweep) : undefined;
  };
}

/** The gateway's one instance: client sockets (src/proxy/listener.ts) and backend sockets (src/proxy/dial.ts). */
const socketKeepalive = new KeepaliveAfterDelay();

/** A 'close' listener shared by every socket, so adding it allocates no closure. */
function forgetClosed(this: Socket): void {
  socketKeepalive.forget(this);
}

/** Keepalive for `socket` after the delay, unless it closes first (the one way in, for client and backend sockets). */
export function keepaliveAfterDelay(socket: Socket): void {
  socketKeepalive.add(socket);
  socket.on('close', forgetClosed);
}
