import type { RoutingView } from '../backends/backend-set.ts';
import { builderShare } from '../capacity.ts';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent, ScaleUpCause } from '../events.ts';
import type { LocalActivity } from './activity.ts';
import type { ScaleActuator } from './actuator.ts';
import { decide, fences, type ScaleDecision, type ScaleDownStep, type ScalePolicy } from './decide.ts';
import type { ProposalStore } from './proposal-store.ts';
import type { BuilderPod, ReplicaReport } from './types.ts';
import type { WakeRequests } from './wake-requests.ts';

/**
 * Decisions for connections on ready pods (they change only counts) are coalesced over this long: at
 * thousands of connections a second, one decision per event-loop turn was ~10% of the CPU per connection.
 * Held connections, watches and Leases still decide at once, and routing() counts connections live.
 */
export const countsDecisionDelayMs = 50;

/** What the watches show; `synced` only while every one of them is current. */
export interface ObservedCluster {
  synced: boolean;
  statefulSet: { exists: boolean; replicas: number } | undefined;
  pods: BuilderPod[];
}

/**
 * Something outside the controller whose change may change the decision: it subscribes `reconcile` to it.
 * `soon` coalesces changes that move only counts on ready pods over countsDecisionDelayMs.
 */
export type ReconcileTrigger = (reconcile: (when?: 'now' | 'soon') => void) => void;

export interface ScaleControllerInputs {
  statefulSetName: string;
  identity: string;
  policy: ScalePolicy;
  observe: () => ObservedCluster;
  activity: LocalActivity;
  /** Wake requests this replica accepted (POST /wake); they go into its report like its connections. */
  wakes?: WakeRequests;
  /** Every other replica's report (none without leader election). */
  otherReports: () => ReplicaReport[];
  /** Per builder pod, when it was last busy on a replica whose report is gone (it drained and deleted it). */
  departedActivity?: () => ReadonlyMap<string, number>;
  proposals: ProposalStore;
  isLeader: () => boolean;
  /** Aborts when this replica stops leading: the scale-down commit is cut short with it. */
  leadership?: () => AbortSignal | undefined;
  actuator: ScaleActuator;
  clock: Clock;
  /** Periodic re-decision, so reports that go quiet are noticed without any event. */
  resyncMs: number;
  /** Every change outside the controller that makes it decide again: the list is in reconcile-triggers.ts. */
  triggers: readonly ReconcileTrigger[];
}

export interface ScaleControllerCallbacks {
  emit: EmitEvent;
  /** The routable pods, `atMaximum` or a load up to the cap changed: held clients look again. */
  routingChanged?: () => void;
  /**
   * After every decision: this replica's report may have changed (the acknowledged proposal, the loads). The
   * publisher compares it with what it last published and writes at once only what the others must see.
   */
  decided?: () => void;
}

/**
 * The reconcile loop around decide(): gathers the observed state, decides, and hands each wanted change to
 * the one actuator, at most one write of each direction at a time. Triggered by every change of its inputs
 * (watches, this replica's connections, the Leases) and by a resync timer; each run decides from scratch,
 * so a lost trigger costs nothing.
 */
export class ScaleController {
  private readonly inputs: ScaleControllerInputs;
  private readonly callbacks: ScaleControllerCallbacks;
  private current: ScaleDecision | undefined;
  private ack: string | undefined;
  private scheduled = false;
  private soon: Timer | undefined;
  /** This replica's connections per pod as the current decision counted them, and the activity version then. */
  private decidedOwn: Record<string, number> = {};
  private decidedVersion = -1;
  /** This replica's open and held connections as the current decision counted them. */
  private decidedDemand = 0;
  private upInFlight = false;
  private downInFlight = false;
  private ensured: { replicas: number; observedSpec: number | undefined } | undefined;
  private recheckTimer: Timer | undefined;
  private resyncTimer: Timer | undefined;
  private routableNames = new Set<string>();
  private routingSignature = '';
  private lastLogged = '';
  private readonly expiredSeen = new Set<string>();
  private blocked = false;
  private stopped = true;

  constructor(inputs: ScaleControllerInputs, callbacks: ScaleControllerCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    for (const trigger of inputs.triggers)
      trigger((when) => (when === 'soon' ? this.requestReconcileSoon() : this.requestReconcile()));
  }

  start(): void {
    this.stopped = false;
    this.requestReconcile();
  }

  stop(): void {
    this.stopped = true;
    this.recheckTimer?.cancel();
    this.resyncTimer?.cancel();
    this.soon?.cancel();
    this.soon = undefined;
  }

  /** Decide again soon; many triggers in one tick cost one decision. */
  requestReconcile(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.reconcileIfScheduled());
  }

  /** Decide again within countsDecisionDelayMs: the connections opened and closed meanwhile cost one decision. */
  private requestReconcileSoon(): void {
    if (this.scheduled || this.soon) return;
    this.soon = this.inputs.clock.setTimer(countsDecisionDelayMs, () => {
      this.soon = undefined;
      this.scheduled = true;
      this.reconcileIfScheduled();
    });
  }

  /**
   * Pods that may take a new connection now and their loads, this replica's own connections counted as
   * they are now. `fresh`: decide again first (when the last decision has no room for a connection).
   */
  routing(fresh = false): RoutingView {
    if (
      fresh &&
      (this.soon !== undefined || this.inputs.activity.version !== this.decidedVersion) &&
      !this.moreDemandChangesNothing()
    )
      this.scheduled = true;
    this.reconcileIfScheduled();
    const loads = this.current?.loads ?? {};
    return {
      routable: this.routableNames,
      loads: this.inputs.activity.version === this.decidedVersion ? loads : this.liveLoads(loads),
      atMaximum: this.current?.atMaximum ?? false,
    };
  }

  /**
   * Demand decides routing only through `needed`, which is clamped to the maximum: when the current decision
   * needs the maximum already and demand has only grown since, deciding again would route alike (at the
   * default of one builder, every connection beyond its share asked for a decision of its own).
   */
  private moreDemandChangesNothing(): boolean {
    const current = this.current;
    return (
      current !== undefined &&
      current.needed >= this.inputs.policy.maxReplicas &&
      this.inputs.activity.open + this.inputs.activity.held >= this.decidedDemand
    );
  }

  /** The decision's loads with this replica's part replaced by its live counts. */
  private liveLoads(decided: Readonly<Record<string, number>>): Record<string, number> {
    const loads: Record<string, number> = { ...decided };
    // for...in rather than Object.entries: this runs per connection, and entries() builds an array per pod.
    for (const pod in this.decidedOwn) loads[pod] = (loads[pod] ?? 0) - this.decidedOwn[pod]!;
    for (const pod of this.inputs.activity.podNames())
      loads[pod] = (loads[pod] ?? 0) + this.inputs.activity.openOn(pod);
    return loads;
  }

  /** The decision counting every connection so far: a scrape or /wake reads it, never a coalesced one still pending. */
  get decision(): ScaleDecision | undefined {
    if (this.soon !== undefined) this.scheduled = true;
    this.reconcileIfScheduled();
    return this.current;
  }

  /** The scale-down proposal this replica has fenced off, for its published report. */
  get acknowledged(): string | undefined {
    return this.ack;
  }

  private reconcileIfScheduled(): void {
    if (!this.scheduled) return;
    this.scheduled = false;
    this.reconcile();
  }

  private reconcile(): void {
    const o = this.inputs;
    // This decision counts every connection so far: a coalesced one still waiting has nothing left to do.
    this.soon?.cancel();
    this.soon = undefined;
    const now = o.clock.wallNow();
    const observed = o.observe();
    const proposal = o.proposals.current();
    // Acknowledge only what this decision fences: from it on nothing new is routed to the pods.
    this.ack = proposal && fences(proposal, observed.pods, now, o.policy) ? proposal.id : undefined;
    const snapshot = o.activity.snapshot();
    this.decidedVersion = o.activity.version;
    this.decidedDemand = snapshot.open + snapshot.held;
    this.decidedOwn = {};
    for (const [pod, entry] of Object.entries(snapshot.pods)) this.decidedOwn[pod] = entry.open;
    const wake = o.wakes?.current(now) ?? [];
    const own: ReplicaReport = {
      identity: o.identity,
      fresh: true,
      staleForMs: 0,
      ...snapshot,
      pods: withDeparted(snapshot.pods, o.departedActivity?.()),
      ack: this.ack,
      wake,
    };
    const others = o.otherReports();
    const decision = decide({
      now,
      synced: observed.synced,
      statefulSetName: o.statefulSetName,
      statefulSet: observed.statefulSet,
      pods: observed.pods,
      reports: [own, ...others],
      proposal,
      leader: o.isLeader(),
      policy: o.policy,
    });
    this.current = decision;
    o.activity.forgetPodsExcept(new Set(observed.pods.map((pod) => pod.name)));

    // Held clients look again when a pod becomes routable or gains room (a connection on it closed).
    // Loads up to the cap count too: at the maximum, a close below it is the room a queued client waits for.
    const roomUpTo = Math.max(o.policy.connectionsPerReplica, o.policy.maxConnectionsPerReplica);
    const routingSignature = `${decision.atMaximum}|${decision.routable.map((name) => `${name}:${Math.min(decision.loads[name] ?? 0, roomUpTo)}`).join(',')}`;
    if (routingSignature !== this.routingSignature) {
      this.routingSignature = routingSignature;
      this.routableNames = new Set(decision.routable);
      this.callbacks.routingChanged?.();
    }
    this.callbacks.decided?.();
    this.report(decision, others.length + 1, observed);
    if (this.stopped) return;
    this.act(decision, observed);
    this.schedule(decision, now);
  }

  private act(decision: ScaleDecision, observed: ObservedCluster): void {
    const target = decision.scaleUpTo;
    const spec = observed.statefulSet?.replicas;
    // Once the watch shows any other value, the write is behind us: ask again whenever needed.
    if (this.ensured && spec !== this.ensured.observedSpec) this.ensured = undefined;
    // A recent permanent failure (forbidden, not found) is re-checked by the actuator, not hammered per decision.
    if (
      target !== undefined &&
      !this.upInFlight &&
      !this.inputs.actuator.currentFailure() &&
      !(this.ensured && target <= this.ensured.replicas && spec === this.ensured.observedSpec)
    ) {
      this.upInFlight = true;
      const { reason, cause } = scaleUpReason(decision, target, this.inputs.policy);
      void this.inputs.actuator
        .ensureAtLeast(target, reason, () => (this.current?.scaleUpTo ?? 0) > 0, cause)
        .then(() => {
          // The watch has not shown the write yet: do not ask again until it changes.
          this.ensured = this.inputs.actuator.currentFailure() ? undefined : { replicas: target, observedSpec: spec };
        })
        .finally(() => {
          this.upInFlight = false;
          this.requestReconcile();
        });
    }
    const step = decision.scaleDown;
    if (step && !this.downInFlight) {
      this.downInFlight = true;
      void this.scaleDown(step).finally(() => {
        this.downInFlight = false;
        this.requestReconcile();
      });
    }
  }

  private async scaleDown(step: ScaleDownStep): Promise<void> {
    const { proposals, actuator } = this.inputs;
    const { emit } = this.callbacks;
    const { proposal } = step;
    const pods = Object.keys(proposal.pods).join(', ');
    switch (step.kind) {
      case 'propose':
        if (await proposals.write(proposal))
          emit({ kind: 'scale_down_proposed', from: proposal.from, to: proposal.to, pods, id: proposal.id });
        return;
      case 'commit': {
        // Asked again between reading and writing the scale: the lead or the proposal may have changed meanwhile.
        const stillCommittable = () => {
          const current = proposals.current();
          return this.inputs.isLeader() && current?.id === proposal.id && !current.committed;
        };
        const landed = await actuator.scaleDown(
          proposal.from,
          proposal.to,
          `${pods} idle for the idle timeout on every gateway replica`,
          {
            stillAllowed: stillCommittable,
            signal: this.inputs.leadership?.(),
          },
        );
        // Committed, the proposal keeps fencing the pods until they are gone; otherwise it is withdrawn (if still ours to).
        if (landed) await proposals.write({ ...proposal, committed: true });
        else if (stillCommittable()) await proposals.write(undefined);
        return;
      }
      case 'withdraw':
        if (await proposals.write(undefined))
          emit({ kind: 'scale_down_withdrawn', pods, id: proposal.id, reason: step.reason });
        return;
      case 'clear':
        await proposals.write(undefined);
        return;
    }
  }

  private report(decision: ScaleDecision, reporting: number, observed: ObservedCluster): void {
    const { emit } = this.callbacks;
    for (const identity of decision.expired) {
      if (this.expiredSeen.has(identity)) continue;
      this.expiredSeen.add(identity);
      emit({
        kind: 'report_expired',
        identity,
        maxStalenessMs: this.inputs.policy.maxReportStalenessMs,
        code: ErrorCode.ReportExpired,
      });
    }
    for (const identity of this.expiredSeen)
      if (!decision.expired.includes(identity)) this.expiredSeen.delete(identity);
    const blocked = decision.blockedBy.length > 0 && (observed.statefulSet?.replicas ?? 0) > decision.needed;
    if (blocked && !this.blocked) emit({ kind: 'scale_down_blocked', by: decision.blockedBy });
    this.blocked = blocked;
    const line = `${decision.needed}|${decision.waiting ?? ''}|${reporting}|${decision.blockedBy.length}`;
    if (line !== this.lastLogged) {
      this.lastLogged = line;
      emit({
        kind: 'scale_decision',
        demand: decision.demand,
        needed: decision.needed,
        replicasReporting: reporting,
        staleReports: decision.blockedBy.length,
        waiting: decision.waiting,
      });
    }
  }

  private schedule(decision: ScaleDecision, now: number): void {
    this.recheckTimer?.cancel();
    this.recheckTimer = undefined;
    if (decision.recheckAt !== undefined) {
      this.recheckTimer = this.inputs.clock.setTimer(Math.max(0, decision.recheckAt - now) + 1, () =>
        this.requestReconcile(),
      );
    }
    this.resyncTimer?.cancel();
    this.resyncTimer = this.inputs.clock.setTimer(this.inputs.resyncMs, () => this.requestReconcile());
  }
}

/** Why a scale-up is wanted, in words and as the cause the wake metric counts (connections first: they wait). */
function scaleUpReason(
  decision: ScaleDecision,
  target: number,
  policy: ScalePolicy,
): { reason: string; cause: ScaleUpCause } {
  if (decision.demand > 0 && Math.ceil(decision.demand / builderShare(policy)) >= target)
    return { reason: `${decision.demand} connections need ${target} replicas`, cause: 'connections' };
  if (decision.wake && target > policy.minReplicas)
    return {
      reason: `a wake request keeps ${Math.min(decision.wake.replicas, target)} replicas until ${new Date(decision.wake.until).toISOString()}`,
      cause: 'wake',
    };
  return { reason: `at least ${target} replicas are configured`, cause: 'minimum' };
}

/** This replica's pods with what departed replicas last did on them, so idleness is judged from their last close too. */
function withDeparted(
  pods: ReplicaReport['pods'],
  departed: ReadonlyMap<string, number> | undefined,
): ReplicaReport['pods'] {
  if (!departed || departed.size === 0) return pods;
  const merged = { ...pods };
  for (const [name, lastActiveAt] of departed)
    merged[name] = {
      open: merged[name]?.open ?? 0,
      lastActiveAt: Math.max(merged[name]?.lastActiveAt ?? 0, lastActiveAt),
    };
  return merged;
}
