import { ErrorCode } from '../errors.ts';
import { builderShare } from '../capacity.ts';
import type { EmitEvent, ScaleUpCause } from '../events.ts';
import type { ObservedCluster } from './types.ts';
import type { ScaleDecision, ScalePolicy } from './decide.ts';

/** The events a decision is logged by: expired reports, a blocked scale-down, and a line per change of what is needed. */
export class DecisionLog {
  private readonly maxReportStalenessMs: number;
  private readonly callbacks: { emit: EmitEvent };
  private lastLogged = '';
  private readonly expiredSeen = new Set<string>();
  private blocked = false;

  constructor(inputs: { maxReportStalenessMs: number }, callbacks: { emit: EmitEvent }) {
    this.maxReportStalenessMs = inputs.maxReportStalenessMs;
    this.callbacks = callbacks;
  }

  /** After each decision: a line when something an operator watches changed, never one per decision. */
  record(decision: ScaleDecision, reporting: number, observed: ObservedCluster): void {
    const { emit } = this.callbacks;
    for (const identity of decision.expired) {
      if (this.expiredSeen.has(identity)) continue;
      this.expiredSeen.add(identity);
      emit({
        kind: 'report_expired',
        identity,
        maxStalenessMs: this.maxReportStalenessMs,
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
}

/** Why a scale-up is wanted, in words and as the cause the wake metric counts (connections first: they wait). */
export function scaleUpReason(
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
