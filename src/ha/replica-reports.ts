import type { V1Lease } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import { leaseRoleLabel } from '../kube/leases.ts';
import type { ReplicaReport, ScaleDownProposal, WakeRequest } from '../scaler/types.ts';
import {
  activityAnnotation,
  decodeActivity,
  decodeProposal,
  leaseAnnotation,
  proposalAnnotation,
  type PublishedActivity,
} from './lease-annotations.ts';

export interface ReplicaReportsInputs {
  leases: () => readonly V1Lease[];
  /** This replica's own activity Lease, replaced by its live counts. */
  ownLeaseName: string;
  leaderLeaseName: string;
  clock: Clock;
}

/**
 * The other replicas' reports, read from their Leases. Freshness is judged the way client-go judges a
 * leader: by when this replica saw the Lease change, on its own clock, never by comparing the writer's
 * clock with ours. So are the times in a report: each is moved onto our clock by how long before the
 * report's write it was on the writer's own clock (see onOurClock).
 */
export class ReplicaReports {
  private readonly inputs: ReplicaReportsInputs;
  /** Per Lease: the version last seen, when it was first seen, and its report decoded once (reports() runs per decision). */
  private readonly observed = new Map<
    string,
    { resourceVersion: string | undefined; at: number; activity: PublishedActivity | undefined }
  >();
  private leaderProposal: { resourceVersion: string | undefined; proposal: ScaleDownProposal | undefined } | undefined;
  private readonly departed = new Map<string, number>();
  private departedWakes: WakeRequest[] = [];

  constructor(inputs: ReplicaReportsInputs) {
    this.inputs = inputs;
  }

  /** Call on every change of the Lease watch, so a renewal is timed when it is seen. */
  observe(): void {
    const now = this.inputs.clock.now();
    const seen = new Set<string>();
    for (const lease of this.inputs.leases()) {
      const name = lease.metadata?.name ?? '';
      seen.add(name);
      const resourceVersion = lease.metadata?.resourceVersion;
      if (this.observed.get(name)?.resourceVersion !== resourceVersion) {
        const activity = decodeActivity(leaseAnnotation(lease, activityAnnotation));
        this.observed.set(name, {
          resourceVersion,
          at: now,
          activity: activity && onOurClock(activity, lease, this.inputs.clock.wallNow()),
        });
      }
    }
    for (const [name, { activity }] of this.observed) {
      if (seen.has(name)) continue;
      this.observed.delete(name);
      const pods = activity?.pods ?? {};
      const wake = activity?.wake ?? [];
      // Its wake requests outlive it (a rollout must not end a 10-hour wake): a surviving replica adopts them.
      this.departedWakes.push(...wake.filter((request) => request.until > this.inputs.clock.wallNow()));
      // A drained replica deletes its report after its last close: keep when its pods were last busy,
      // so the idle timeout still runs from that close (a pod still open in the last version seen: now).
      for (const [pod, entry] of Object.entries(pods)) {
        const at = entry.open > 0 ? this.inputs.clock.wallNow() : entry.lastActiveAt;
        this.departed.set(pod, Math.max(this.departed.get(pod) ?? 0, at));
      }
    }
  }

  /** Wake requests in force on replicas whose report is gone since the last call, for this replica to carry on. */
  takeDepartedWakes(): WakeRequest[] {
    this.observe();
    const taken = this.departedWakes;
    this.departedWakes = [];
    return taken;
  }

  /** Per builder pod, when it was last busy on a replica whose report is gone (wall-clock ms). */
  departedActivity(): ReadonlyMap<string, number> {
    this.observe();
    return this.departed;
  }

  reports(): ReplicaReport[] {
    this.observe();
    const now = this.inputs.clock.now();
    const reports: ReplicaReport[] = [];
    for (const lease of this.inputs.leases()) {
      const name = lease.metadata?.name ?? '';
      if (name === this.inputs.ownLeaseName || lease.metadata?.labels?.[leaseRoleLabel] !== 'activity') continue;
      const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      const known = this.observed.get(name);
      const age = now - (known?.at ?? now);
      const activity = known?.activity;
      const identity = lease.spec?.holderIdentity ?? name;
      const fresh = age < durationMs;
      if (!activity) {
        // Nothing readable is known about this replica: it blocks scale-down like a silent one.
        reports.push({
          identity,
          fresh: false,
          staleForMs: Math.max(0, age - durationMs),
          open: 0,
          held: 0,
          pods: {},
          since: 0,
          ack: undefined,
        });
        continue;
      }
      reports.push({
        identity,
        fresh,
        staleForMs: fresh ? 0 : age - durationMs,
        open: activity.open,
        held: activity.held,
        pods: activity.pods,
        since: activity.since,
        lastHeldCloseAt: activity.lastHeldCloseAt,
        ack: activity.ack,
        wake: activity.wake,
      });
    }
    return reports;
  }

  /** The other replicas that said where they can be asked (GET /report), as last read from their reports. */
  peers(): Array<{ identity: string; ops: string }> {
    this.observe();
    const peers: Array<{ identity: string; ops: string }> = [];
    for (const lease of this.inputs.leases()) {
      const name = lease.metadata?.name ?? '';
      if (name === this.inputs.ownLeaseName || lease.metadata?.labels?.[leaseRoleLabel] !== 'activity') continue;
      const ops = this.observed.get(name)?.activity?.ops;
      if (ops !== undefined) peers.push({ identity: lease.spec?.holderIdentity ?? name, ops });
    }
    return peers;
  }

  /** The scale-down proposal on the leader Lease, whoever wrote it. */
  proposal(): ScaleDownProposal | undefined {
    const leader = this.inputs.leases().find((lease) => lease.metadata?.name === this.inputs.leaderLeaseName);
    const resourceVersion = leader?.metadata?.resourceVersion;
    if (!this.leaderProposal || this.leaderProposal.resourceVersion !== resourceVersion) {
      this.leaderProposal = { resourceVersion, proposal: decodeProposal(leaseAnnotation(leader, proposalAnnotation)) };
    }
    return this.leaderProposal.proposal;
  }
}

/**
 * A report's times moved onto this replica's wall clock: the writer stamps renewTime and the report in one
 * write, so `renewTime - t` is how long before the write `t` was, on the writer's clock alone; seen at `seenAt`
 * here, `t` was at `seenAt - (renewTime - t)`. Skew cancels out; the write's travel time only makes activity
 * look more recent (a later scale-down, never an early one). Replicas of every version write renewTime so.
 */
export function onOurClock(activity: PublishedActivity, lease: V1Lease, seenAt: number): PublishedActivity {
  const shift = writerClockShift(lease.spec?.renewTime, seenAt);
  if (shift === undefined) return activity;
  const pods: PublishedActivity['pods'] = {};
  for (const [name, entry] of Object.entries(activity.pods))
    pods[name] = { open: entry.open, lastActiveAt: entry.lastActiveAt + shift };
  return {
    ...activity,
    pods,
    since: activity.since + shift,
    ...(activity.lastHeldCloseAt === undefined ? {} : { lastHeldCloseAt: activity.lastHeldCloseAt + shift }),
    ...(activity.wake
      ? { wake: activity.wake.map((request) => ({ replicas: request.replicas, until: request.until + shift })) }
      : {}),
  };
}

/**
 * What to add to a time on a writer's clock to put it on ours: `written` is the writer's stamp of the write
 * (a Date or RFC 3339), `seenAt` when we saw that write; undefined without a readable stamp.
 */
export function writerClockShift(written: unknown, seenAt: number): number | undefined {
  const writtenMs =
    written instanceof Date ? written.getTime() : typeof written === 'string' ? Date.parse(written) : Number.NaN;
  return Number.isNaN(writtenMs) ? undefined : seenAt - writtenMs;
}
