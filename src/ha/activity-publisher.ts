import { randomUUID } from 'node:crypto';
import type { V1Lease, V1OwnerReference } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import { microTime, type LeaseStore } from '../kube/leases.ts';
import { activityAnnotation, decodeActivity, encodeActivity } from './lease-annotations.ts';
import { raises, type Report } from './report-raises.ts';

export interface ActivityPublisherInputs {
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
  /** With --max-connections-per-replica: every added connection on a pod is published at once, since the others route under the cap by it. */
  podCountsRaise?: boolean;
  clock: Clock;
  /** What to publish now (counts, the acknowledged proposal, draining). */
  read: () => Report;
  /** The gateway's own pod: the Lease is owned by it, so the garbage collector removes a dead pod's report. */
  ownerPod?: { name: string; uid: string } | undefined;
}

export interface ActivityPublisherCallbacks {
  emit: EmitEvent;
  /** This process owns its report Lease now (once; campaigning for the lead may start). */
  claimed?: () => void;
  /**
   * Another process publishes under this identity and this one must give way: called once, after which this
   * publisher writes nothing more (not even on stop). Not called for a conflict start() throws.
   */
  identityConflict: (error: GatewayError) => void;
}

/** Smallest gap between two publications, so a burst of connections costs one write, not one per connection. */
const minGapMs = 100;

/*
 * Over 300 lines for a reason: the claim, the renewal and giving way are one state machine over one Lease
 * (the list below); split, the cases it walks through would be spread over files.
 */

/**
 * Publishes this replica's activity in its own Lease, renewed every renew period and at once when it raises
 * what the others see (a write per busy/idle flip was ~10 a second under connection churn). Deleted on
 * shutdown after the last connection closed, so the report of a replica that drained properly never blocks
 * anyone.
 *
 * One Lease, one process: the report carries this process's random instance id, and this publisher writes
 * only onto a Lease that carries it. How that holds in every order of events:
 * - No Lease: it is created (POST, 409 if it exists), never overwritten. Two processes that both read 404
 *   both try; one gets 409, reads the winner's report and waits it out like any other.
 * - Someone else's Lease: waited out for one lease duration on this replica's clock. A change meanwhile is a
 *   live twin: this process is the second and is refused (BKA_IDENTITY_CONFLICT). No change: a dead
 *   predecessor (a restarted container); it is taken over with its resourceVersion, so of two processes
 *   doing that at once one gets 409, reads the other's report and waits that out in turn.
 * - The API server does not answer at start: nothing is written until the Lease has been read (retried
 *   every renew period); start() does not wait for that, the rest of the claim follows when it answers.
 * - Later, a write answered 409 or 404 by a Lease that carries another instance: another process waited
 *   this one out (it was frozen or cut off for a lease duration) and owns the report now. This one gives
 *   way: it stops writing and calls identityConflict.
 */
export class ActivityPublisher {
  readonly instance = randomUUID();
  private readonly inputs: ActivityPublisherInputs;
  private readonly callbacks: ActivityPublisherCallbacks;
  /** The Lease as this process last wrote (or read back) it; undefined after a 404. */
  private current: V1Lease | undefined;
  private claimed = false;
  /** Another process owns the report now: nothing is written any more. */
  private gaveWay = false;
  private timer: Timer | undefined;
  private soon: Timer | undefined;
  /** The report the Lease holds since this process last wrote it successfully. */
  private published: Report | undefined;
  private lastPublishAt = Number.NEGATIVE_INFINITY;
  private lastWrittenAt: number | undefined;
  private inFlight: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(inputs: ActivityPublisherInputs, callbacks: ActivityPublisherCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
  }

  /**
   * Claims the Lease and publishes. Throws BKA_IDENTITY_CONFLICT when another live process publishes under
   * this identity. If the API server does not answer, returns at once and keeps claiming in the background.
   */
  async start(): Promise<void> {
    try {
      await this.claim();
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      this.failed(error);
      this.scheduleClaim();
      return;
    }
    this.becameClaimed();
  }

  private becameClaimed(): void {
    this.claimed = true;
    this.callbacks.claimed?.();
    this.scheduleRenewal();
  }

  private scheduleClaim(): void {
    if (this.stopped) return;
    this.timer = this.inputs.clock.setTimer(this.inputs.renewPeriodMs, () => {
      this.claim().then(
        () => this.becameClaimed(),
        (error: unknown) => {
          if (error instanceof GatewayError) return this.giveWay(error);
          this.failed(error);
          this.scheduleClaim();
        },
      );
    });
  }

  /** Ends with the Lease created or taken over by this process, or throws (a conflict, or an API failure). */
  private async claim(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const lease = await this.inputs.store.get(this.inputs.leaseName);
      if (!lease) {
        try {
          await this.create();
          return;
        } catch (error) {
          // Created by someone else since our read: look at it.
          if (apiStatus(error) === 409) continue;
          throw error;
        }
      }
      if (this.isOurs(lease)) {
        this.current = lease; // our own create or write whose answer was lost
        return;
      }
      const quiet = await this.waitOut(lease);
      if (!quiet) continue; // deleted meanwhile
      try {
        await this.update(quiet);
        return;
      } catch (error) {
        // Another process wrote it since: read it again, and wait that one out in turn.
        if (apiStatus(error) === 409) continue;
        throw error;
      }
    }
  }

  /** Watches a Lease that is not ours for one lease duration: the Lease if nobody renewed it, undefined if deleted. */
  private async waitOut(lease: V1Lease): Promise<V1Lease | undefined> {
    const waitUntil = this.inputs.clock.now() + this.inputs.leaseDurationMs;
    let seen = lease;
    while (this.inputs.clock.now() < waitUntil) {
      await new Promise<void>((resolve) =>
        this.inputs.clock.setTimer(Math.min(this.inputs.renewPeriodMs, this.inputs.leaseDurationMs / 4), resolve),
      );
      const again = await this.inputs.store.get(this.inputs.leaseName);
      if (!again) return undefined;
      if (again.metadata?.resourceVersion !== seen.metadata?.resourceVersion) {
        if (!this.isOurs(again)) throw this.conflict();
        seen = again;
      }
    }
    return seen;
  }

  private isOurs(lease: V1Lease | undefined): boolean {
    return decodeActivity(lease?.metadata?.annotations?.[activityAnnotation])?.instance === this.instance;
  }

  private conflict(): GatewayError {
    return new GatewayError(
      ErrorCode.IdentityConflict,
      `another gateway process is publishing as "${this.inputs.identity}" (Lease ${this.inputs.leaseName}); give every replica its own --identity / POD_NAME`,
    );
  }

  /** Gives the report up to the process that owns it now: no write from here on, and the gateway is told once. */
  private giveWay(error: GatewayError): void {
    if (this.gaveWay) return;
    this.gaveWay = true;
    this.timer?.cancel();
    this.soon?.cancel();
    this.callbacks.emit({
      kind: 'lease_failed',
      lease: this.inputs.leaseName,
      action: 'publish',
      code: ErrorCode.IdentityConflict,
      error: error.message,
      status: 409,
    });
    this.callbacks.identityConflict(error);
  }

  /** When (this process's monotonic clock) a write of the report last succeeded; undefined before the first. */
  get writtenAt(): number | undefined {
    return this.lastWrittenAt;
  }

  /** Something the other replicas decide on changed: publish soon (coalesced) if it raises what they see. */
  publishSoon(): void {
    if (this.stopped || this.gaveWay || !this.claimed || this.soon || !this.raisesPublished()) return;
    const wait = Math.max(0, this.lastPublishAt + minGapMs - this.inputs.clock.now());
    this.soon = this.inputs.clock.setTimer(wait, () => {
      this.soon = undefined;
      // Undone meanwhile (busy -> idle inside the gap): the renewal carries it.
      if (this.raisesPublished()) void this.publishAndReschedule();
    });
  }

  private raisesPublished(): boolean {
    return raises(this.published, this.inputs.read(), this.inputs.connectionsPerReplica, this.inputs.podCountsRaise);
  }

  /** Stops renewing, writes the final state if not written yet, deletes the Lease (once the last connection closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.soon?.cancel();
    await this.inFlight;
    if (!this.claimed || this.gaveWay) return;
    // The others remember a departed replica's last report (when its pods were last busy): make it the final one.
    if (
      !this.published ||
      encodeActivity({ ...this.inputs.read(), instance: this.instance }) !==
        encodeActivity({ ...this.published, instance: this.instance })
    )
      await this.write();
    if (this.gaveWay) return;
    try {
      // Only the version this process wrote: a Lease another process took over since stays.
      await this.inputs.store.delete(this.inputs.leaseName, this.current?.metadata?.resourceVersion);
    } catch (error) {
      this.callbacks.emit({
        kind: 'lease_failed',
        lease: this.inputs.leaseName,
        action: 'delete',
        code: ErrorCode.LeaseFailed,
        error: apiMessage(error),
        status: apiStatus(error),
      });
    }
  }

  private scheduleRenewal(): void {
    if (this.stopped || this.gaveWay) return;
    this.timer?.cancel();
    this.timer = this.inputs.clock.setTimer(this.inputs.renewPeriodMs, () => void this.publishAndReschedule());
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

  private annotations(report: Report): Record<string, string> {
    return { [activityAnnotation]: encodeActivity({ ...report, instance: this.instance }) };
  }

  private spec(): V1Lease['spec'] {
    return {
      holderIdentity: this.inputs.identity,
      leaseDurationSeconds: Math.round(this.inputs.leaseDurationMs / 1000),
      renewTime: microTime(this.inputs.clock.wallNow()) as unknown as Date,
    };
  }

  private async create(): Promise<void> {
    this.lastPublishAt = this.inputs.clock.now();
    const report = this.inputs.read();
    const ownerReferences: V1OwnerReference[] | undefined = this.inputs.ownerPod
      ? [{ apiVersion: 'v1', kind: 'Pod', name: this.inputs.ownerPod.name, uid: this.inputs.ownerPod.uid }]
      : undefined;
    const spec = this.spec();
    this.current = await this.inputs.store.create({
      metadata: {
        name: this.inputs.leaseName,
        labels: this.inputs.labels,
        annotations: this.annotations(report),
        ...(ownerReferences ? { ownerReferences } : {}),
      },
      spec: { ...spec, acquireTime: spec?.renewTime },
    });
    this.published = report;
    this.lastWrittenAt = this.inputs.clock.now();
  }

  /** Writes the report onto `lease` with its resourceVersion (409 if anyone wrote it since). */
  private async update(lease: V1Lease): Promise<void> {
    this.lastPublishAt = this.inputs.clock.now();
    const report = this.inputs.read();
    this.current = await this.inputs.store.update({
      ...lease,
      metadata: {
        ...lease.metadata,
        labels: { ...lease.metadata?.labels, ...this.inputs.labels },
        annotations: { ...lease.metadata?.annotations, ...this.annotations(report) },
      },
      spec: { ...lease.spec, ...this.spec() },
    });
    this.published = report;
    this.lastWrittenAt = this.inputs.clock.now();
  }

  private async write(): Promise<void> {
    if (this.gaveWay || !this.claimed) return;
    try {
      if (this.current) await this.update(this.current);
      else await this.create();
    } catch (error) {
      const status = apiStatus(error);
      if (status !== 409 && status !== 404) {
        // Our write may have landed without an answer: the next one finds out (409, then our own instance).
        this.failed(error);
        return;
      }
      const now = await this.inputs.store.get(this.inputs.leaseName).catch(() => undefined);
      if (now && !this.isOurs(now)) {
        this.giveWay(this.conflict());
        return;
      }
      // Still ours (a write of ours whose answer was lost), or gone (deleted: created again next time).
      this.current = now;
      if (status === 404 || !now) this.failed(error);
    }
  }

  private failed(error: unknown): void {
    this.callbacks.emit({
      kind: 'lease_failed',
      lease: this.inputs.leaseName,
      action: 'publish',
      code: ErrorCode.LeaseFailed,
      error: apiMessage(error),
      status: apiStatus(error),
    });
  }
}
