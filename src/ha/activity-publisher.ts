import { randomUUID } from 'node:crypto';
import type { V1Lease, V1OwnerReference } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import { microTime, type LeaseStore } from '../kube/leases.ts';
import { activityAnnotation, decodeActivity, encodeActivity, type PublishedActivity } from './activity-lease.ts';

type Report = Omit<PublishedActivity, 'instance'>;

export interface ActivityPublisherOptions {
  store: LeaseStore;
  /** This replica's activity Lease. */
  leaseName: string;
  identity: string;
  labels: Record<string, string>;
  leaseDurationMs: number;
  /** Renewal interval; a change that raises what the others see is published at once instead. */
  renewPeriodMs: number;
  /** How many connections one builder takes: the others see the replicas this report needs. */
  connectionsPerReplica: number;
  clock: Clock;
  emit: EmitEvent;
  /** What to publish now (counts, the acknowledged proposal, draining). */
  read: () => Report;
  /** The gateway's own pod: the Lease is owned by it, so the garbage collector removes a dead pod's report. */
  ownerPod?: { name: string; uid: string } | undefined;
  wallNow?: () => number;
}

/** Smallest gap between two publications, so a burst of connections costs one write, not one per connection. */
const minGapMs = 100;

/**
 * Whether `now` shows the others something they must act on at once that `published` did not: a pod newly
 * busy (never remove it), more replicas needed, held connections, a new ack, a wake request, draining.
 * Everything else only lowers (a pod idle starts the idle timeout): one renew period later is soon enough.
 */
export function raises(published: Report | undefined, now: Report, connectionsPerReplica: number): boolean {
  if (!published) return true;
  const needed = (r: Report) => Math.ceil((r.open + r.held) / connectionsPerReplica);
  const wakes = new Set(published.wake?.map((w) => `${w.replicas}@${w.until}`));
  return (
    (now.ack !== undefined && now.ack !== published.ack) ||
    (now.held > 0 && published.held === 0) ||
    needed(now) > needed(published) ||
    (now.draining && !published.draining) ||
    Object.entries(now.pods).some(([name, entry]) => entry.open > 0 && !((published.pods[name]?.open ?? 0) > 0)) ||
    (now.wake ?? []).some((w) => !wakes.has(`${w.replicas}@${w.until}`))
  );
}

/**
 * Publishes this replica's activity in its own Lease, renewed every renew period and at once when it raises
 * what the others see (a write per busy/idle flip was ~10 a second under connection churn). Deleted on
 * shutdown after the last connection closed, so the report of a replica that drained properly never blocks
 * anyone.
 */
export class ActivityPublisher {
  readonly instance = randomUUID();
  private readonly o: ActivityPublisherOptions;
  private readonly wallNow: () => number;
  private current: V1Lease | undefined;
  private timer: Timer | undefined;
  private soon: Timer | undefined;
  /** The report the Lease holds since this process last wrote it successfully. */
  private published: Report | undefined;
  private lastPublishAt = Number.NEGATIVE_INFINITY;
  private lastWrittenAt: number | undefined;
  private inFlight: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(options: ActivityPublisherOptions) {
    this.o = options;
    this.wallNow = options.wallNow ?? Date.now;
  }

  /**
   * Takes the Lease. If another process publishes under the same identity, it is waited out for one lease
   * duration (a restarted container of the same pod); if it keeps renewing, that is a misconfiguration and
   * this throws BKA_IDENTITY_CONFLICT instead of silently mixing two replicas' counts.
   */
  async start(): Promise<void> {
    try {
      await this.waitOutSameIdentity();
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      // The API server is unreachable: serve anyway; the renewals retry and the check happens on conflict.
      this.o.emit({ kind: 'lease_failed', lease: this.o.leaseName, action: 'publish', code: ErrorCode.LeaseFailed, error: apiMessage(error), status: apiStatus(error) });
    }
    await this.publish();
    this.scheduleRenewal();
  }

  private async waitOutSameIdentity(): Promise<void> {
    const first = await this.o.store.get(this.o.leaseName);
    const other = decodeActivity(first?.metadata?.annotations?.[activityAnnotation]);
    if (first && other && other.instance !== this.instance && first.spec?.holderIdentity) {
      const waitUntil = this.o.clock.now() + this.o.leaseDurationMs;
      let seen = first.metadata?.resourceVersion;
      while (this.o.clock.now() < waitUntil) {
        await new Promise<void>((resolve) => this.o.clock.setTimer(Math.min(this.o.renewPeriodMs, this.o.leaseDurationMs / 4), resolve));
        const again = await this.o.store.get(this.o.leaseName);
        if (!again) break;
        if (again.metadata?.resourceVersion !== seen) {
          const renewedBy = decodeActivity(again.metadata?.annotations?.[activityAnnotation]);
          if (renewedBy && renewedBy.instance !== this.instance) {
            throw new GatewayError(ErrorCode.IdentityConflict, `another gateway process is publishing as "${this.o.identity}" (Lease ${this.o.leaseName}); give every replica its own --identity / POD_NAME`);
          }
          seen = again.metadata?.resourceVersion;
        }
      }
    }
  }

  /** When (this process's monotonic clock) a write of the report last succeeded; undefined before the first. */
  get writtenAt(): number | undefined {
    return this.lastWrittenAt;
  }

  /** Something the other replicas decide on changed: publish soon (coalesced) if it raises what they see. */
  publishSoon(): void {
    if (this.stopped || this.soon || !this.raisesPublished()) return;
    const wait = Math.max(0, this.lastPublishAt + minGapMs - this.o.clock.now());
    this.soon = this.o.clock.setTimer(wait, () => {
      this.soon = undefined;
      // Undone meanwhile (busy -> idle inside the gap): the renewal carries it.
      if (this.raisesPublished()) void this.publishAndReschedule();
    });
  }

  private raisesPublished(): boolean {
    return raises(this.published, this.o.read(), this.o.connectionsPerReplica);
  }

  /** Stops renewing, writes the final state if not written yet, deletes the Lease (once the last connection closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.soon?.cancel();
    await this.inFlight;
    // The others remember a departed replica's last report (when its pods were last busy): make it the final one.
    if (!this.published || encodeActivity({ ...this.o.read(), instance: this.instance }) !== encodeActivity({ ...this.published, instance: this.instance })) await this.write();
    try {
      await this.o.store.delete(this.o.leaseName, undefined);
    } catch (error) {
      this.o.emit({ kind: 'lease_failed', lease: this.o.leaseName, action: 'delete', code: ErrorCode.LeaseFailed, error: apiMessage(error), status: apiStatus(error) });
    }
  }

  private scheduleRenewal(): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.o.clock.setTimer(this.o.renewPeriodMs, () => void this.publishAndReschedule());
  }

  private async publishAndReschedule(): Promise<void> {
    this.soon?.cancel();
    this.soon = undefined;
    await this.publish();
    this.scheduleRenewal();
  }

  private async publish(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = this.write().finally(() => {
      this.inFlight = undefined;
    });
    await this.inFlight;
    if (this.again && !this.stopped) {
      this.again = false;
      await this.publish();
    }
  }

  private async write(): Promise<void> {
    this.lastPublishAt = this.o.clock.now();
    const now = microTime(this.wallNow()) as unknown as Date;
    const report = this.o.read();
    const annotations = { [activityAnnotation]: encodeActivity({ ...report, instance: this.instance }) };
    const ownerReferences: V1OwnerReference[] | undefined = this.o.ownerPod
      ? [{ apiVersion: 'v1', kind: 'Pod', name: this.o.ownerPod.name, uid: this.o.ownerPod.uid }]
      : undefined;
    const spec = { holderIdentity: this.o.identity, leaseDurationSeconds: Math.round(this.o.leaseDurationMs / 1000), renewTime: now };
    try {
      if (!this.current) this.current = await this.o.store.get(this.o.leaseName);
      if (!this.current) {
        this.current = await this.o.store.create({
          metadata: { name: this.o.leaseName, labels: this.o.labels, annotations, ...(ownerReferences ? { ownerReferences } : {}) },
          spec: { ...spec, acquireTime: now },
        });
        this.published = report;
        this.lastWrittenAt = this.o.clock.now();
        return;
      }
      this.current = await this.o.store.update({
        ...this.current,
        metadata: { ...this.current.metadata, labels: { ...this.current.metadata?.labels, ...this.o.labels }, annotations: { ...this.current.metadata?.annotations, ...annotations } },
        spec: { ...this.current.spec, ...spec },
      });
      this.published = report;
      this.lastWrittenAt = this.o.clock.now();
    } catch (error) {
      const status = apiStatus(error);
      const other = status === 409 ? await this.o.store.get(this.o.leaseName).catch(() => undefined) : undefined;
      const otherInstance = decodeActivity(other?.metadata?.annotations?.[activityAnnotation])?.instance;
      const conflict = otherInstance !== undefined && otherInstance !== this.instance;
      // Re-read before the next write: the Lease changed or is gone.
      this.current = status === 409 ? other : undefined;
      this.o.emit({
        kind: 'lease_failed',
        lease: this.o.leaseName,
        action: 'publish',
        code: conflict ? ErrorCode.IdentityConflict : ErrorCode.LeaseFailed,
        error: conflict ? `another gateway process publishes as "${this.o.identity}"` : apiMessage(error),
        status,
      });
    }
  }
}
