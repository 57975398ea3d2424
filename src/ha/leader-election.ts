import { randomUUID } from 'node:crypto';
import type { V1Lease } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import { microTime, type LeaseStore } from '../kube/leases.ts';
import { leaderInstanceAnnotation } from './lease-annotations.ts';

/** Like client-go's LeaderElectionConfig: lease duration > renew deadline > 1.2 x retry period, or it throws. */
export interface LeaderElectionInputs {
  store: LeaseStore;
  /** The leader Lease (`--leader-election-lease-name`). */
  name: string;
  identity: string;
  labels: Record<string, string>;
  /** How long others wait after the last renewal they saw before taking over: too short, a healthy leader is deposed. */
  leaseDurationMs: number;
  /** The leader stops leading when it has not renewed for this long: too long, two could lead at once. */
  renewDeadlineMs: number;
  /** Between two tries to acquire or renew (a candidate adds jitter). */
  retryPeriodMs: number;
  clock: Clock;
  /** Jitter source (default Math.random). */
  random?: () => number;
  /** Random per process (default: a new UUID): a second process with the same identity is someone else. */
  instance?: string;
}

/** Like client-go's LeaderCallbacks. */
export interface LeaderElectionCallbacks {
  emit: EmitEvent;
  /** This replica started or stopped leading (isLeader tells which). */
  leadershipChanged?: () => void;
}

/** client-go's JitterFactor: a candidate retries after retryPeriod * (1 + random * 1.2). */
const jitterFactor = 1.2;

/*
 * Over 300 lines for a reason: client-go's algorithm (acquire or renew, the renew deadline, release, the
 * leader's own annotations) is one term's bookkeeping; every write must see the same term and Lease version.
 */

/**
 * Leader election on a coordination.k8s.io Lease with client-go's semantics: a candidate takes the Lease
 * only when its holder has not renewed it for a lease duration as observed on this replica's own clock
 * (clocks of different nodes are never compared); every write carries the resourceVersion it read, so two
 * candidates cannot both win; the leader renews every retry period and stops leading if it has not renewed
 * within the renew deadline (even while a request hangs); on stop it releases the Lease so a successor
 * need not wait out the duration. The leader may also keep small shared state in the Lease's annotations.
 *
 * Why a leader never overlaps its successor:
 * - The Lease is ours only with our identity and our process's instance id: a second process started with
 *   the same identity waits it out like any other holder.
 * - A renewal counts from when it was sent, not answered: the API server applied it after that, so the
 *   others, who wait a lease duration from when they saw it, cannot take over before sent + lease duration
 *   > sent + renew deadline, where this replica stops leading. An answer that comes after that is ignored.
 * - Every request of a term is aborted when the term ends, and each is bounded by the renew deadline.
 * - Annotations are written onto the Lease as this process last wrote it (its resourceVersion): a Lease
 *   someone else wrote since, even one a failed renewal merely read, answers 409.
 */
export class LeaderElector {
  readonly instance: string;
  private readonly inputs: LeaderElectionInputs;
  private readonly callbacks: LeaderElectionCallbacks;
  private readonly random: () => number;
  /** The Lease as last read or written, whoever holds it. */
  private observed: V1Lease | undefined;
  private observedAt = Number.NEGATIVE_INFINITY;
  /** The Lease as this process's own last successful write returned it (what annotations are written onto). */
  private owned: V1Lease | undefined;
  private leading = false;
  /** When the renewal that keeps this term alive was sent. */
  private lastRenewAt = 0;
  /** Aborted when this term of leadership ends: every request made for it stops. */
  private term: AbortController | undefined;
  private tickTimer: Timer | undefined;
  private deadlineTimer: Timer | undefined;
  private stopped = true;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(inputs: LeaderElectionInputs, callbacks: LeaderElectionCallbacks) {
    if (!(
      inputs.leaseDurationMs > inputs.renewDeadlineMs && inputs.renewDeadlineMs > jitterFactor * inputs.retryPeriodMs
    )) {
      // client-go's rule: otherwise a healthy leader could lose the Lease between two renewals.
      throw new RangeError('lease duration must exceed the renew deadline, which must exceed 1.2 x the retry period');
    }
    this.instance = inputs.instance ?? randomUUID();
    this.inputs = inputs;
    this.callbacks = callbacks;
    this.random = inputs.random ?? Math.random;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Aborts when the current term of leadership ends (undefined while not leading): for the leader's own writes. */
  get leadership(): AbortSignal | undefined {
    return this.leading ? this.term?.signal : undefined;
  }

  /** The holder as last observed (this replica's identity while it leads). */
  get holder(): string | undefined {
    return this.observed?.spec?.holderIdentity || undefined;
  }

  /** An annotation of the Lease as this replica last read or wrote it. */
  annotation(key: string): string | undefined {
    return (this.leading ? this.owned : this.observed)?.metadata?.annotations?.[key];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops campaigning and, if leading, releases the Lease (only the version this process wrote). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tickTimer?.cancel();
    await this.serialized(async () => {
      const lease = this.owned;
      if (!this.leading || !lease) return;
      try {
        this.observed = await this.request((signal) =>
          this.inputs.store.update(
            {
              ...lease,
              spec: {
                ...lease.spec,
                holderIdentity: undefined,
                leaseDurationSeconds: 1,
                renewTime: microTime(this.inputs.clock.wallNow()) as unknown as Date,
              },
            },
            { signal },
          ),
        );
      } catch (error) {
        this.callbacks.emit({
          kind: 'lease_failed',
          lease: this.inputs.name,
          action: 'release',
          code: ErrorCode.LeaseFailed,
          error: apiMessage(error),
          status: apiStatus(error),
        });
      }
      this.owned = undefined;
      this.setLeading(false, 'released on shutdown');
    });
  }

  /** Writes (or with undefined removes) an annotation on the Lease now; only the leader can, onto its own version. */
  setAnnotation(key: string, value: string | undefined): Promise<boolean> {
    return this.serialized(async () => {
      const lease = this.owned;
      if (!this.leading || !lease) return false;
      const annotations = { ...lease.metadata?.annotations };
      if (value === undefined) delete annotations[key];
      else annotations[key] = value;
      try {
        const written = await this.request((signal) =>
          this.inputs.store.update({ ...lease, metadata: { ...lease.metadata, annotations } }, { signal }),
        );
        if (!this.leading) return false;
        this.owned = this.observed = written;
        this.observedAt = this.inputs.clock.now();
        return true;
      } catch (error) {
        this.callbacks.emit({
          kind: 'lease_failed',
          lease: this.inputs.name,
          action: 'annotate',
          code: ErrorCode.LeaseFailed,
          error: apiMessage(error),
          status: apiStatus(error),
        });
        // A conflict means someone else wrote the Lease: the next renewal finds out whether we still lead.
        return false;
      }
    });
  }

  private schedule(delayMs: number): void {
    this.tickTimer?.cancel();
    this.tickTimer = this.inputs.clock.setTimer(delayMs, () => {
      void this.serialized(() => this.tick());
    });
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sentAt = this.inputs.clock.now();
    const wasLeading = this.leading;
    const term = this.term;
    const renewed = await this.tryAcquireOrRenew();
    if (this.stopped) return;
    const now = this.inputs.clock.now();
    // A term that ended while the request was out is over: an answer that comes back afterwards, even a
    // success, does not bring it back (the next tick campaigns afresh, with a new read).
    const endedMeanwhile = wasLeading && (!this.leading || this.term !== term);
    if (renewed && !endedMeanwhile && now - sentAt < this.inputs.renewDeadlineMs) {
      this.lastRenewAt = sentAt;
      if (!this.leading) this.setLeading(true, 'acquired the lease');
      this.armDeadline();
    } else if (this.leading && now - this.lastRenewAt >= this.inputs.renewDeadlineMs) {
      this.setLeading(false, 'could not renew within the renew deadline');
    }
    const retry = this.inputs.retryPeriodMs;
    this.schedule(this.leading ? retry : retry * (1 + this.random() * jitterFactor));
  }

  private ours(lease: V1Lease | undefined): boolean {
    return (
      lease?.spec?.holderIdentity === this.inputs.identity &&
      lease.metadata?.annotations?.[leaderInstanceAnnotation] === this.instance
    );
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { store, name, identity, leaseDurationMs, clock } = this.inputs;
    const nowIso = microTime(this.inputs.clock.wallNow()) as unknown as Date;
    const leaseDurationSeconds = Math.round(leaseDurationMs / 1000);
    try {
      const current = await this.request((signal) => store.get(name, { signal }));
      if (!current) {
        this.owned = this.observed = await this.request((signal) =>
          store.create(
            {
              metadata: {
                name,
                labels: this.inputs.labels,
                annotations: { [leaderInstanceAnnotation]: this.instance },
              },
              spec: {
                holderIdentity: identity,
                leaseDurationSeconds,
                acquireTime: nowIso,
                renewTime: nowIso,
                leaseTransitions: 0,
              },
            },
            { signal },
          ),
        );
        this.observedAt = clock.now();
        return true;
      }
      if (current.metadata?.resourceVersion !== this.observed?.metadata?.resourceVersion) {
        this.observed = current;
        this.observedAt = clock.now();
      }
      const holder = current.spec?.holderIdentity;
      const keep = this.ours(current);
      // Another holder, or another process under our identity: only once it has not renewed for a lease duration.
      if (holder && !keep && this.observedAt + leaseDurationMs > clock.now()) return false;
      this.owned = this.observed = await this.request((signal) =>
        store.update(
          {
            ...current,
            metadata: {
              ...current.metadata,
              labels: { ...current.metadata?.labels, ...this.inputs.labels },
              annotations: { ...current.metadata?.annotations, [leaderInstanceAnnotation]: this.instance },
            },
            spec: {
              ...current.spec,
              holderIdentity: identity,
              leaseDurationSeconds,
              renewTime: nowIso,
              acquireTime: keep ? current.spec?.acquireTime : nowIso,
              leaseTransitions: (current.spec?.leaseTransitions ?? 0) + (keep ? 0 : 1),
            },
          },
          { signal },
        ),
      );
      this.observedAt = clock.now();
      return true;
    } catch (error) {
      const status = apiStatus(error);
      // 409: another candidate wrote first; that is the election working, not a failure.
      if (status !== 409)
        this.callbacks.emit({
          kind: 'lease_failed',
          lease: name,
          action: this.leading ? 'renew' : 'acquire',
          code: ErrorCode.LeaseFailed,
          error: apiMessage(error),
          status,
        });
      return false;
    }
  }

  /** One request, aborted at the renew deadline and, while leading, when this term ends. */
  private async request<T>(send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const bound = new AbortController();
    const timer = this.inputs.clock.setTimer(this.inputs.renewDeadlineMs, () =>
      bound.abort(new Error(`no answer within the renew deadline (${this.inputs.renewDeadlineMs} ms)`)),
    );
    const signal = this.leading && this.term ? AbortSignal.any([bound.signal, this.term.signal]) : bound.signal;
    try {
      return await send(signal);
    } finally {
      timer.cancel();
    }
  }

  private armDeadline(): void {
    this.deadlineTimer?.cancel();
    // Fires even while a renewal hangs on an unreachable API server: a leader must step down in time.
    this.deadlineTimer = this.inputs.clock.setTimer(
      Math.max(0, this.lastRenewAt + this.inputs.renewDeadlineMs - this.inputs.clock.now()),
      () => {
        if (this.leading && this.inputs.clock.now() - this.lastRenewAt >= this.inputs.renewDeadlineMs)
          this.setLeading(false, 'could not renew within the renew deadline');
      },
    );
  }

  private setLeading(leading: boolean, reason: string): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) {
      this.term = new AbortController();
    } else {
      this.deadlineTimer?.cancel();
      this.term?.abort(new Error(`stopped leading: ${reason}`));
      this.term = undefined;
    }
    this.callbacks.emit({
      kind: 'leader_changed',
      lease: this.inputs.name,
      identity: this.inputs.identity,
      leading,
      reason,
    });
    this.callbacks.leadershipChanged?.();
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
