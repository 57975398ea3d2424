import type { V1Lease } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import { microTime, type LeaseStore } from '../kube/leases.ts';

export interface LeaderElectionOptions {
  store: LeaseStore;
  name: string;
  identity: string;
  labels: Record<string, string>;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  clock: Clock;
  emit: EmitEvent;
  /** Wall clock for the times written into the Lease (readers compare them only for display). */
  wallNow?: () => number;
  random?: () => number;
}

/** client-go's JitterFactor: a candidate retries after retryPeriod * (1 + random * 1.2). */
const jitterFactor = 1.2;

/**
 * Leader election on a coordination.k8s.io Lease with client-go's semantics: a candidate takes the Lease
 * only when its holder has not renewed it for a lease duration as observed on this replica's own clock
 * (clocks of different nodes are never compared); every write carries the resourceVersion it read, so two
 * candidates cannot both win; the leader renews every retry period and stops leading if it has not renewed
 * within the renew deadline (even while a request hangs); on stop it releases the Lease so a successor
 * need not wait out the duration. The leader may also keep small shared state in the Lease's annotations.
 */
export class LeaderElector {
  private readonly o: Required<LeaderElectionOptions>;
  private observed: V1Lease | undefined;
  private observedAt = Number.NEGATIVE_INFINITY;
  private leading = false;
  private lastRenewAt = 0;
  private tickTimer: Timer | undefined;
  private deadlineTimer: Timer | undefined;
  private stopped = true;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<() => void>();

  constructor(options: LeaderElectionOptions) {
    if (!(options.leaseDurationMs > options.renewDeadlineMs && options.renewDeadlineMs > jitterFactor * options.retryPeriodMs)) {
      // client-go's rule: otherwise a healthy leader could lose the Lease between two renewals.
      throw new RangeError('lease duration must exceed the renew deadline, which must exceed 1.2 x the retry period');
    }
    this.o = { wallNow: Date.now, random: Math.random, ...options };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder as last observed (this replica's identity while it leads). */
  get holder(): string | undefined {
    return this.observed?.spec?.holderIdentity || undefined;
  }

  /** An annotation of the Lease as this replica last read or wrote it. */
  annotation(key: string): string | undefined {
    return this.observed?.metadata?.annotations?.[key];
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops campaigning and, if leading, releases the Lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tickTimer?.cancel();
    await this.serialized(async () => {
      if (!this.leading || !this.observed) return;
      const lease = this.observed;
      try {
        this.observed = await this.o.store.update({
          ...lease,
          spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(this.o.wallNow()) as unknown as Date },
        });
      } catch (error) {
        this.o.emit({ kind: 'lease_failed', lease: this.o.name, action: 'release', code: ErrorCode.LeaseFailed, error: apiMessage(error), status: apiStatus(error) });
      }
      this.setLeading(false, 'released on shutdown');
    });
  }

  /** Writes (or with undefined removes) an annotation on the Lease now; only the leader can. */
  setAnnotation(key: string, value: string | undefined): Promise<boolean> {
    return this.serialized(async () => {
      if (!this.leading || !this.observed) return false;
      const lease = this.observed;
      const annotations = { ...lease.metadata?.annotations };
      if (value === undefined) delete annotations[key];
      else annotations[key] = value;
      try {
        this.observed = await this.o.store.update({ ...lease, metadata: { ...lease.metadata, annotations } });
        this.observedAt = this.o.clock.now();
        return true;
      } catch (error) {
        this.o.emit({ kind: 'lease_failed', lease: this.o.name, action: 'annotate', code: ErrorCode.LeaseFailed, error: apiMessage(error), status: apiStatus(error) });
        // A conflict means someone else wrote the Lease: the next renewal finds out whether we still lead.
        return false;
      }
    });
  }

  private schedule(delayMs: number): void {
    this.tickTimer?.cancel();
    this.tickTimer = this.o.clock.setTimer(delayMs, () => {
      void this.serialized(() => this.tick());
    });
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const renewed = await this.tryAcquireOrRenew();
    if (this.stopped) return;
    const now = this.o.clock.now();
    if (renewed) {
      this.lastRenewAt = now;
      this.armDeadline();
      if (!this.leading) this.setLeading(true, 'acquired the lease');
    } else if (this.leading && now - this.lastRenewAt >= this.o.renewDeadlineMs) {
      this.setLeading(false, 'could not renew within the renew deadline');
    }
    const retry = this.o.retryPeriodMs;
    this.schedule(this.leading ? retry : retry * (1 + this.o.random() * jitterFactor));
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { store, name, identity, leaseDurationMs, clock } = this.o;
    const nowIso = microTime(this.o.wallNow()) as unknown as Date;
    const leaseDurationSeconds = Math.round(leaseDurationMs / 1000);
    try {
      const current = await store.get(name);
      if (!current) {
        this.observed = await store.create({
          metadata: { name, labels: this.o.labels },
          spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: nowIso, renewTime: nowIso, leaseTransitions: 0 },
        });
        this.observedAt = clock.now();
        return true;
      }
      if (current.metadata?.resourceVersion !== this.observed?.metadata?.resourceVersion) {
        this.observed = current;
        this.observedAt = clock.now();
      }
      const holder = current.spec?.holderIdentity;
      if (holder && holder !== identity && this.observedAt + leaseDurationMs > clock.now()) return false;
      const keep = holder === identity;
      this.observed = await store.update({
        ...current,
        metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...this.o.labels } },
        spec: {
          ...current.spec,
          holderIdentity: identity,
          leaseDurationSeconds,
          renewTime: nowIso,
          acquireTime: keep ? current.spec?.acquireTime : nowIso,
          leaseTransitions: (current.spec?.leaseTransitions ?? 0) + (keep ? 0 : 1),
        },
      });
      this.observedAt = clock.now();
      return true;
    } catch (error) {
      const status = apiStatus(error);
      // 409: another candidate wrote first; that is the election working, not a failure.
      if (status !== 409) this.o.emit({ kind: 'lease_failed', lease: name, action: this.leading ? 'renew' : 'acquire', code: ErrorCode.LeaseFailed, error: apiMessage(error), status });
      return false;
    }
  }

  private armDeadline(): void {
    this.deadlineTimer?.cancel();
    // Fires even while a renewal hangs on an unreachable API server: a leader must step down in time.
    this.deadlineTimer = this.o.clock.setTimer(this.o.renewDeadlineMs, () => {
      if (this.leading && this.o.clock.now() - this.lastRenewAt >= this.o.renewDeadlineMs) this.setLeading(false, 'could not renew within the renew deadline');
    });
  }

  private setLeading(leading: boolean, reason: string): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (!leading) this.deadlineTimer?.cancel();
    this.o.emit({ kind: 'leader_changed', lease: this.o.name, identity: this.o.identity, leading, reason });
    for (const listener of this.listeners) listener();
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
