import type { ReconcileTrigger } from './scaler/controller.ts';

/** Anything that announces its changes: informers, the backend source, LocalActivity, WakeRequests. */
interface Changing {
  onChange(listener: () => void): unknown;
}

export interface ReconcileSources {
  /** This replica's held and open connections. */
  activity: Changing & { readonly held: number };
  /** Accepted POST /wake windows, and wakes adopted from departed replicas or the wake Lease. */
  wakes: Changing;
  statefulSet: Changing;
  /** The backend source, the EndpointSlice watch (absent in DNS mode), the draining nodes (`--watch-nodes`). */
  discovery: {
    source: Changing;
    endpointSlices?: Changing | undefined;
    drainingNodes?: Changing | undefined;
  };
  /** With leader election: who leads, and the group's Leases (reports, the proposal, the wake Lease). */
  coordination?: { leadership: Changing; leases: Changing } | undefined;
}

/**
 * Every change outside the scale controller that makes it decide again, in one list. The controller adds
 * its own: the end of each scale step, a timer at `decision.recheckAt`, a resync every retry period, and the
 * synchronous reads that decide first when a decision is pending (`routing(true)`, the `decision` getter).
 * Each run decides from scratch, so a lost or extra trigger costs nothing.
 */
export function reconcileTriggers(sources: ReconcileSources): ReconcileTrigger[] {
  const { activity, discovery, coordination } = sources;
  const plain = [
    sources.wakes,
    sources.statefulSet,
    // A pod ready or gone, including the end of an absence grace.
    discovery.source,
    discovery.endpointSlices,
    discovery.drainingNodes,
    coordination?.leadership,
    coordination?.leases,
  ].filter((source): source is Changing => source !== undefined);
  return [
    // A held connection needs a decision at once (it may need a wake); one on a ready pod changes only counts.
    (reconcile) => activity.onChange(() => reconcile(activity.held > 0 ? 'now' : 'soon')),
    ...plain.map(
      (source): ReconcileTrigger =>
        (reconcile) =>
          source.onChange(() => reconcile()),
    ),
  ];
}
