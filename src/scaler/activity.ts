import { systemClock, type Clock } from '../clock.ts';
import type { ActivitySnapshot } from './types.ts';

/** One connection's place in the counts: held until it is given a pod, then on that pod until it closes. */
export interface ConnectionActivity {
  /** The router chose this pod (counted from the dial on, so a scale-down cannot miss a dial in flight). */
  assign(pod: string): void;
  /** The dial failed: back to held. */
  unassign(): void;
  close(): void;
}

/**
 * Counts this replica's held and open connections per builder pod and when each pod last had one. Replaces
 * the single-gateway idle timer: idleness is now judged by the scaler across every replica's report.
 */
export class LocalActivity {
  private heldCount = 0;
  private openCount = 0;
  private lastHeldCloseAt = 0;
  private readonly pods = new Map<string, { open: number; lastActiveAt: number }>();
  private readonly listeners = new Set<() => void>();
  private announcing = false;
  private changes = 0;
  private readonly clock: Clock;
  readonly since: number;

  constructor(inputs: { clock: Clock } = { clock: systemClock }) {
    this.clock = inputs.clock;
    this.since = this.clock.wallNow();
  }

  /** A connection arrived and wants a pod: it counts as demand at once. */
  arrive(): ConnectionActivity {
    this.heldCount += 1;
    this.changed();
    return new CountedConnection(this);
  }

  /** A held connection was given `pod` (called through its ConnectionActivity, as are the two below). */
  assigned(pod: string): void {
    this.heldCount -= 1;
    this.openCount += 1;
    this.touch(pod, +1);
  }

  /** An assigned connection's dial failed: held again. */
  unassigned(pod: string): void {
    this.touch(pod, -1);
    this.openCount -= 1;
    this.heldCount += 1;
    this.changed();
  }

  /** A connection closed, held (`pod` undefined) or on `pod`. */
  closed(pod: string | undefined): void {
    if (pod === undefined) {
      this.heldCount -= 1;
      this.lastHeldCloseAt = this.clock.wallNow();
      this.changed();
    } else {
      this.openCount -= 1;
      this.touch(pod, -1);
    }
  }

  get held(): number {
    return this.heldCount;
  }

  get open(): number {
    return this.openCount;
  }

  /** Counts every change, so a reader can tell whether its copy of the counts is still current. */
  get version(): number {
    return this.changes;
  }

  podNames(): IterableIterator<string> {
    return this.pods.keys();
  }

  /** Connections on `pod` from this replica now. */
  openOn(pod: string): number {
    return this.pods.get(pod)?.open ?? 0;
  }

  snapshot(): ActivitySnapshot {
    const pods: ActivitySnapshot['pods'] = {};
    for (const [name, entry] of this.pods) pods[name] = { ...entry };
    return {
      open: this.openCount,
      held: this.heldCount,
      pods,
      since: this.since,
      ...(this.lastHeldCloseAt ? { lastHeldCloseAt: this.lastHeldCloseAt } : {}),
    };
  }

  /** Forgets pods that no longer exist and have no connection here, so reports stay small. */
  forgetPodsExcept(existing: ReadonlySet<string>): void {
    for (const [name, entry] of this.pods) if (entry.open === 0 && !existing.has(name)) this.pods.delete(name);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private touch(name: string, delta: number): void {
    const entry = this.pods.get(name) ?? { open: 0, lastActiveAt: 0 };
    entry.open = Math.max(0, entry.open + delta);
    entry.lastActiveAt = this.clock.wallNow();
    this.pods.set(name, entry);
    this.changed();
  }

  /** Changes made in one synchronous step (arrive, then assign to a ready pod) are announced once, after it. */
  private changed(): void {
    this.changes += 1;
    if (this.announcing) return;
    this.announcing = true;
    queueMicrotask(() => {
      this.announcing = false;
      for (const listener of this.listeners) listener();
    });
  }
}

/** One connection's place in LocalActivity's counts: an object per connection rather than three closures. */
class CountedConnection implements ConnectionActivity {
  private pod: string | undefined;
  private done = false;
  private readonly activity: LocalActivity;

  constructor(activity: LocalActivity) {
    this.activity = activity;
  }

  assign(pod: string): void {
    if (this.done || this.pod !== undefined) return;
    this.pod = pod;
    this.activity.assigned(pod);
  }

  unassign(): void {
    if (this.done || this.pod === undefined) return;
    const pod = this.pod;
    this.pod = undefined;
    this.activity.unassigned(pod);
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.activity.closed(this.pod);
  }
}
