import type { RoutingView } from '../backends/backend-set.ts';
import type { LocalActivity } from './activity.ts';
import type { ScaleDecision, ScalePolicy } from './decide.ts';
import type { ActivitySnapshot } from './types.ts';

/**
 * The per-connection view of the last decision: which pods may take a connection and their loads, with this
 * replica's own connections counted live in between decisions (routing() runs per connection, so a decision
 * per connection is avoided). The controller tells it what each decision counted and decided.
 */
export class DecidedRouting {
  private readonly activity: LocalActivity;
  private readonly policy: Pick<ScalePolicy, 'maxReplicas' | 'connectionsPerReplica' | 'maxConnectionsPerReplica'>;
  private decision: ScaleDecision | undefined;
  /** This replica's connections per pod as the current decision counted them, and the activity version then. */
  private decidedOwn: Record<string, number> = {};
  private decidedVersion = -1;
  /** This replica's open and held connections as the current decision counted them. */
  private decidedDemand = 0;
  private routableNames = new Set<string>();
  private signature = '';

  constructor(inputs: {
    activity: LocalActivity;
    policy: Pick<ScalePolicy, 'maxReplicas' | 'connectionsPerReplica' | 'maxConnectionsPerReplica'>;
  }) {
    this.activity = inputs.activity;
    this.policy = inputs.policy;
  }

  /** A decision is about to count `snapshot`, taken at activity version `version`. */
  counting(snapshot: ActivitySnapshot, version: number): void {
    this.decidedVersion = version;
    this.decidedDemand = snapshot.open + snapshot.held;
    this.decidedOwn = {};
    for (const [pod, entry] of Object.entries(snapshot.pods)) this.decidedOwn[pod] = entry.open;
  }

  /** Takes the new decision; true when held clients should look again (a pod became routable or gained room). */
  decided(decision: ScaleDecision): boolean {
    this.decision = decision;
    // Loads up to the cap count too: at the maximum, a close below it is the room a queued client waits for.
    const roomUpTo = Math.max(this.policy.connectionsPerReplica, this.policy.maxConnectionsPerReplica);
    const signature = `${decision.atMaximum}|${decision.routable.map((name) => `${name}:${Math.min(decision.loads[name] ?? 0, roomUpTo)}`).join(',')}`;
    if (signature === this.signature) return false;
    this.signature = signature;
    this.routableNames = new Set(decision.routable);
    return true;
  }

  /**
   * Whether a connection that found no room should have a decision of its own first: only if something was
   * left uncounted (`countsPending`: a coalesced decision waits, or the counts moved) and more demand could
   * change the answer.
   */
  wantsDecision(countsPending: boolean): boolean {
    return (countsPending || this.activity.version !== this.decidedVersion) && !this.moreDemandChangesNothing();
  }

  view(): RoutingView {
    const loads = this.decision?.loads ?? {};
    return {
      routable: this.routableNames,
      loads: this.activity.version === this.decidedVersion ? loads : this.liveLoads(loads),
      atMaximum: this.decision?.atMaximum ?? false,
    };
  }

  /**
   * Demand decides routing only through `needed`, which is clamped to the maximum: when the current decision
   * needs the maximum already and demand has only grown since, deciding again would route alike (at the
   * default of one builder, every connection beyond its share asked for a decision of its own).
   */
  private moreDemandChangesNothing(): boolean {
    const current = this.decision;
    return (
      current !== undefined &&
      current.needed >= this.policy.maxReplicas &&
      this.activity.open + this.activity.held >= this.decidedDemand
    );
  }

  /** The decision's loads with this replica's part replaced by its live counts. */
  private liveLoads(decided: Readonly<Record<string, number>>): Record<string, number> {
    const loads: Record<string, number> = { ...decided };
    // for...in rather than Object.entries: this runs per connection, and entries() builds an array per pod.
    for (const pod in this.decidedOwn) loads[pod] = (loads[pod] ?? 0) - this.decidedOwn[pod]!;
    for (const pod of this.activity.podNames()) loads[pod] = (loads[pod] ?? 0) + this.activity.openOn(pod);
    return loads;
  }
}
