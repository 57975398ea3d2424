import type { RoutingView } from '../backends/backend-set.ts';

import type { Clock, Timer } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import type { LocalActivity } from './activity.ts';
import type { ScaleActuator } from './actuator.ts';
import { decide, fences, type ScaleDecision, type ScaleDownStep, type ScalePolicy } from './decide.ts';
import type { ProposalStore } from './proposal-store.ts';
import type { ObservedCluster, ReplicaReport } from './types.ts';
import { DecisionLog, scaleUpReason } from './decision-log.ts';
import { DecidedRouting } from './routing-view.ts';
import type { WakeRequests } from './wake-requests.ts';

/**
 * Decisions for connections on ready pods (they change only counts) are coalesced over this long: at
 * thousands of connections a second, one decision per event-loop turn was ~10% of the CPU per connection.
 * Held connections, watches and Leases still decide at once, and routing() counts connections live.
 */
export const countsDecisionDelayMs = 50;

/** What the watches show; `synced` only while every one of them is current. */
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

/*
 * About 300 lines: the loop's four jobs (triggers, decide, act, schedule) and the scale-down steps it acts on;
 * the routing view (routing-view.ts) and the decision's log lines (decision-log.ts) live apart.
 */

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
  private readonly routingView: DecidedRouting;
  private upInFlight = false;
  private downInFlight = false;
  private ensured: { replicas: number; observedSpec: number | undefined } | undefined;
  private recheckTimer: Timer | undefined;
  private resyncTimer: Timer | undefined;
  private readonly decisionLog: DecisionLog;
  private stopped = true;

  constructor(inputs: ScaleControllerInputs, callbacks: ScaleControllerCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    this.routingView = new DecidedRouting({ activity: inputs.activity, policy: inputs.policy });
    this.decisionLog = new DecisionLog({ maxReportStalenessMs: inputs.policy.maxReportStalenessMs }, callbacks);
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
    if (fresh && this.routingView.wantsDecision(this.soon !== undefined)) this.scheduled = true;
    this.reconcileIfScheduled();
    return this.routingView.view();
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
    this.routingView.counting(snapshot, o.activity.version);
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
    if (this.routingView.decided(decision)) this.callbacks.routingChanged?.();
    this.callbacks.decided?.();
    this.decisionLog.record(decision, others.length + 1, observed);
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
