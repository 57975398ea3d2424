/**
 * The scaler's decision as a pure function of observed state, in the shape of Knative's decider and a
 * controller-runtime Reconcile: the same view always gives the same answer, so a lost event costs nothing
 * (the next reconcile decides again). No sockets, timers or API calls here; see controller.ts for the
 * loop and actuator.ts for the writes.
 *
 * Scale-down is one builder at a time, in two phases through shared state, so no gateway replica can
 * route a new connection to a pod while it is being removed:
 *   1. propose: the leader names the highest ordinal once it has been idle on every replica for the idle
 *      timeout; every replica stops routing to it and acknowledges in its own report;
 *   2. commit: once every counted report acknowledges with no connection on the pod, the leader lowers the
 *      StatefulSet by one. The proposal stays as a fence until the pod is gone, so a quick re-wake never
 *      reuses it (the StatefulSet controller may still delete it).
 * Anything that contradicts the proposal (a connection on the pod, one that came and went within the idle
 * timeout, demand that needs it, a replica gone quiet, someone else scaling) withdraws it.
 *
 * A wake request (POST /wake) in any counted report keeps at least its replicas until it ends, connections
 * or not; after that the ordinary idle rules apply to the woken pods.
 *
 * Over 300 lines for a reason: the decision's types and its small named steps read top to bottom in one file,
 * as the table in decide.test.ts tests them.
 */
import { builderShare, type BuilderCapacity } from '../capacity.ts';
import type { BuilderPod, ReplicaReport, ScaleDownProposal, WakeRequest } from './types.ts';
import { activeWake } from './wake-requests.ts';

export interface ScalePolicy extends BuilderCapacity {
  minReplicas: number;
  maxReplicas: number;
  idleTimeoutMs: number;
  /** A silent replica's report stops blocking scale-down after this long (its pod may be gone unnoticed). */
  maxReportStalenessMs: number;
  /** How long a proposal waits for every replica to acknowledge before it is withdrawn and tried again. */
  proposalTimeoutMs: number;
}

export interface ScalerView {
  /** This replica's wall-clock ms; every time in the view (reports, proposal) is on the same clock. */
  now: number;
  /** Every watch the decision reads has listed and is current. Scale-down never happens otherwise. */
  synced: boolean;
  statefulSetName: string;
  /** undefined while unknown (not synced yet); exists false when a synced watch lists none. */
  statefulSet: { exists: boolean; replicas: number } | undefined;
  pods: readonly BuilderPod[];
  reports: readonly ReplicaReport[];
  proposal: ScaleDownProposal | undefined;
  /** This replica may scale down (it holds the leader Lease, or leader election is off). */
  leader: boolean;
  policy: ScalePolicy;
}

export type ScaleDownStep =
  | { kind: 'propose'; proposal: ScaleDownProposal }
  | { kind: 'commit'; proposal: ScaleDownProposal }
  | { kind: 'withdraw'; proposal: ScaleDownProposal; reason: string }
  | { kind: 'clear'; proposal: ScaleDownProposal };

export interface ScaleDecision {
  /** Open and held connections over every counted report. */
  demand: number;
  /** The strongest wake request in force over every counted report (its replicas not yet clamped to the maximum). */
  wake: WakeRequest | undefined;
  /**
   * clamp(ceil(demand / connections per replica (or the cap, if lower)), min, max), and at least the wake
   * request's replicas (up to the maximum); builders on draining nodes do not count towards it, nor do the
   * connections they still carry.
   */
  needed: number;
  /** Names of the pods that may take new connections now, lowest ordinal first. */
  routable: string[];
  /** Connections on each builder pod now, over every counted report (the balancer's loads). */
  loads: Record<string, number>;
  /**
   * The StatefulSet is at its maximum and every builder the demand needs takes connections: none can be
   * added or is on its way, so a full one takes more rather than hold.
   */
  atMaximum: boolean;
  /** Make sure at least this many replicas are wanted (idempotent; any replica may do it). */
  scaleUpTo: number | undefined;
  /** The leader's next scale-down step, if any. */
  scaleDown: ScaleDownStep | undefined;
  /** Why something wanted is not happening yet, for logs and /readyz. */
  waiting: string | undefined;
  /** Replicas whose stale reports block scale-down (their pod may still splice a build). */
  blockedBy: string[];
  /** Stale reports past the maximum staleness, no longer counted. */
  expired: string[];
  /** Wall-clock ms at which deciding again could give another answer without any event. */
  recheckAt: number | undefined;
}

/** A leader withdraws an unacknowledged proposal after one timeout; the others stop honouring it after this many. */
const abandonedProposalFactor = 3;

export function podName(statefulSetName: string, ordinal: number): string {
  return `${statefulSetName}-${ordinal}`;
}

export function decide(view: ScalerView): ScaleDecision {
  const { policy, now } = view;
  const counted: ReplicaReport[] = [];
  const expired: string[] = [];
  const blockedBy: string[] = [];
  let recheckAt: number | undefined;
  const recheck = (at: number) => {
    recheckAt = recheckAt === undefined ? at : Math.min(recheckAt, at);
  };
  for (const report of view.reports) {
    if (report.fresh) {
      counted.push(report);
    } else if (report.staleForMs >= policy.maxReportStalenessMs) {
      expired.push(report.identity);
    } else {
      counted.push(report);
      blockedBy.push(report.identity);
      recheck(now + policy.maxReportStalenessMs - report.staleForMs);
    }
  }

  const demand = counted.reduce((sum, r) => sum + r.open + r.held, 0);
  const wakes = counted.flatMap((r) => r.wake ?? []).filter((request) => request.until > now);
  // Deciding again when a request ends lets the ordinary idle rules take over at once.
  for (const request of wakes) recheck(request.until);
  const wake = activeWake(wakes, now);
  const loads: Record<string, number> = {};
  for (const report of counted)
    for (const [name, entry] of Object.entries(report.pods))
      if (entry.open > 0) loads[name] = (loads[name] ?? 0) + entry.open;
  const draining = new Set(view.pods.filter((pod) => pod.draining && !pod.terminating).map((pod) => pod.ordinal));
  const carriedByDraining = view.pods.reduce(
    (sum, pod) => sum + (pod.draining && !pod.terminating ? (loads[pod.name] ?? 0) : 0),
    0,
  );
  const serving = Math.max(
    policy.minReplicas,
    Math.ceil(Math.max(0, demand - carriedByDraining) / builderShare(policy)),
    wake?.replicas ?? 0,
  );
  const needed = Math.min(policy.maxReplicas, ordinalsFor(serving, draining));
  const spec = view.statefulSet?.exists ? view.statefulSet.replicas : undefined;

  const proposal = view.proposal;
  const proposalPodsExist = proposal !== undefined && view.pods.some((pod) => podIsIn(pod, proposal));
  const fenceActive = proposal !== undefined && fences(proposal, view.pods, now, policy);
  if (proposal && fenceActive && !proposal.committed)
    recheck(proposal.proposedAt + abandonedProposalFactor * policy.proposalTimeoutMs + 1);

  const routable = view.pods
    .filter(
      (pod) =>
        pod.ready &&
        !pod.terminating &&
        !pod.draining &&
        (spec === undefined || pod.ordinal < spec) &&
        pod.ordinal < Math.max(needed, 1) &&
        !(fenceActive && podIsIn(pod, proposal)),
    )
    .sort((a, b) => a.ordinal - b.ordinal)
    .map((pod) => pod.name);

  let waiting: string | undefined;
  let scaleUpTo: number | undefined;
  if (view.statefulSet?.exists === false) {
    waiting = 'the StatefulSet does not exist';
  } else if (needed > (spec ?? 0)) {
    if (fenceActive && proposal.committed && needed > proposal.to) {
      waiting = `waiting for ${Object.keys(proposal.pods).join(', ')} to be gone before scaling up again`;
    } else {
      scaleUpTo = needed;
    }
  }

  let scaleDown: ScaleDownStep | undefined;
  if (view.leader && !view.synced && spec !== undefined && spec > needed) {
    // Never decide on a cache that may have missed events (API server down, a watch restarting).
    waiting ??= 'watches not synced: no scale-down until they are';
  }
  if (view.leader && view.synced && spec !== undefined) {
    const step = scaleDownStep(view, { counted, blockedBy, needed, spec, proposalPodsExist, recheck });
    scaleDown = step.step;
    waiting ??= step.waiting;
  }

  // Overloading is the last resort: while a builder the demand needs is still starting, it will have room soon.
  // Builders on draining nodes will not take connections however long the client waits: they count as up.
  const wanted = Math.min(spec ?? 0, needed);
  const drainingWanted = [...draining].filter((ordinal) => ordinal < wanted).length;
  const atMaximum = (spec ?? 0) >= policy.maxReplicas && routable.length >= wanted - drainingWanted;

  return {
    demand,
    wake,
    needed,
    routable,
    loads,
    atMaximum,
    scaleUpTo,
    scaleDown,
    waiting,
    blockedBy,
    expired,
    recheckAt,
  };
}

interface StepContext {
  counted: readonly ReplicaReport[];
  blockedBy: readonly string[];
  needed: number;
  spec: number;
  proposalPodsExist: boolean;
  recheck: (at: number) => void;
}

type StepAnswer = { step?: ScaleDownStep; waiting?: string };

/** The leader's next scale-down step: after a commit, clear; with an open proposal, withdraw or commit; else propose. */
function scaleDownStep(view: ScalerView, c: StepContext): StepAnswer {
  const { proposal } = view;
  if (proposal?.committed) return committedStep(proposal, c);
  if (proposal) return openProposalStep(view, c, proposal);
  return proposeStep(view, c);
}

/** A committed proposal fences its pods until they are gone; then it is cleared. */
function committedStep(proposal: ScaleDownProposal, c: StepContext): StepAnswer {
  if (c.proposalPodsExist) return { waiting: `${Object.keys(proposal.pods).join(', ')} still terminating` };
  return { step: { kind: 'clear', proposal } };
}

/** Withdrawn on any contradiction; committed once every counted report acknowledged it. */
function openProposalStep(view: ScalerView, c: StepContext, proposal: ScaleDownProposal): StepAnswer {
  const reason = withdrawReason(view, c, proposal);
  if (reason) return { step: { kind: 'withdraw', proposal, reason } };
  const everyoneAcknowledged = c.counted.every((r) => r.ack === proposal.id);
  if (everyoneAcknowledged) return { step: { kind: 'commit', proposal } };
  c.recheck(proposal.proposedAt + view.policy.proposalTimeoutMs);
  return { waiting: 'waiting for every gateway replica to stop routing to the pod being removed' };
}

/** Proposes removing the highest ordinal once it has been idle on every counted report for the idle timeout. */
function proposeStep(view: ScalerView, c: StepContext): StepAnswer {
  const { policy, now } = view;
  if (c.spec <= c.needed) return {};
  if (c.blockedBy.length > 0) return { waiting: `scale-down blocked by stale reports from ${c.blockedBy.join(', ')}` };
  const ordinal = c.spec - 1;
  const name = podName(view.statefulSetName, ordinal);
  const busy = c.counted.find((r) => (r.pods[name]?.open ?? 0) > 0);
  if (busy) return { waiting: `${name} has connections (${busy.identity})` };
  let idleSince = 0;
  for (const report of c.counted)
    idleSince = Math.max(idleSince, report.since, report.pods[name]?.lastActiveAt ?? 0, report.lastHeldCloseAt ?? 0);
  const idleUntil = idleSince + policy.idleTimeoutMs;
  if (now < idleUntil) {
    c.recheck(idleUntil);
    return { waiting: `${name} must be idle on every gateway replica for the idle timeout first` };
  }
  const pods: Record<string, string> = { [name]: '' };
  for (const pod of view.pods) if (pod.ordinal >= ordinal) pods[pod.name] = pod.key;
  return {
    step: {
      kind: 'propose',
      proposal: {
        id: `${c.spec}-${ordinal}-${now}`,
        from: c.spec,
        to: ordinal,
        pods,
        proposedAt: now,
        committed: false,
      },
    },
  };
}

/**
 * Why an uncommitted proposal must be withdrawn now, or undefined: the first of these checks that fails, in
 * order. Each is something that contradicts removing the pods; the last gives every replica one proposal
 * timeout to acknowledge.
 */
function withdrawReason(view: ScalerView, c: StepContext, proposal: ScaleDownProposal): string | undefined {
  const { policy, now } = view;
  const names = Object.keys(proposal.pods);

  if (c.spec !== proposal.from) return `the StatefulSet has ${c.spec} replicas now, not ${proposal.from}`;

  const withConnection = c.counted.find((r) => names.some((name) => (r.pods[name]?.open ?? 0) > 0));
  if (withConnection) return `${withConnection.identity} has a connection on ${names.join(', ')}`;

  // A connection that came and went between two writes of a report shows only in its lastActiveAt.
  const usedWithinIdleTimeout = (report: ReplicaReport) =>
    names.filter((name) => now < (report.pods[name]?.lastActiveAt ?? 0) + policy.idleTimeoutMs);
  const recentUser = c.counted.find((r) => usedWithinIdleTimeout(r).length > 0);
  if (recentUser)
    return `${recentUser.identity} used ${usedWithinIdleTimeout(recentUser).join(', ')} within the idle timeout`;

  if (c.needed > proposal.to) return `demand needs ${c.needed} replicas`;

  if (c.blockedBy.length > 0) return `no fresh report from ${c.blockedBy.join(', ')}`;

  const timedOut = now - proposal.proposedAt >= policy.proposalTimeoutMs;
  if (timedOut) {
    const notAcknowledged = c.counted.filter((r) => r.ack !== proposal.id).map((r) => r.identity);
    return `not acknowledged by ${notAcknowledged.join(', ')} in time`;
  }
  return undefined;
}

/**
 * Whether this replica keeps `proposal`'s pods from new connections now; it acknowledges only a proposal it
 * fences. `proposedAt` must be on this replica's clock (when it first saw the proposal), never the leader's.
 * A committed proposal fences until its pods are gone: the controller may still delete them. One left
 * behind by a leader that vanished before deciding stops fencing after a while, so a pod that was never
 * removed serves again even while no replica can lead.
 */
export function fences(
  proposal: ScaleDownProposal,
  pods: readonly BuilderPod[],
  now: number,
  policy: Pick<ScalePolicy, 'proposalTimeoutMs'>,
): boolean {
  if (proposal.committed) return pods.some((pod) => podIsIn(pod, proposal));
  return now - proposal.proposedAt <= abandonedProposalFactor * policy.proposalTimeoutMs;
}

/** How many ordinals from 0 hold `serving` builders that are not on draining nodes. */
function ordinalsFor(serving: number, draining: ReadonlySet<number>): number {
  let ordinals = 0;
  for (let found = 0; found < serving; ordinals++) if (!draining.has(ordinals)) found++;
  return ordinals;
}

function podIsIn(pod: BuilderPod, proposal: ScaleDownProposal): boolean {
  const key = proposal.pods[pod.name];
  // An unknown key fences whatever instance carries the name; a known one only that instance.
  return key !== undefined && (key === '' || key === pod.key);
}
