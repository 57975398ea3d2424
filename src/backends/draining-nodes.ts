import type { V1Node } from '@kubernetes/client-node';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import type { ResilientInformer } from '../kube/informer.ts';

/**
 * Taints that announce a node's removal: kubectl cordon / drain (as the node lifecycle controller mirrors
 * spec.unschedulable), Karpenter's disruption and the cluster autoscaler's scale-down.
 */
export const drainTaintKeys: readonly string[] = [
  'node.kubernetes.io/unschedulable',
  'karpenter.sh/disrupted',
  'ToBeDeletedByClusterAutoscaler',
];

/** Cordoned, or tainted by whatever is about to drain it. */
export function nodeIsDraining(node: V1Node): boolean {
  return (
    node.spec?.unschedulable === true ||
    (node.spec?.taints ?? []).some((taint) => drainTaintKeys.includes(taint.key) && taint.effect !== 'PreferNoSchedule')
  );
}

/**
 * The names of the nodes being drained, from a watch of every Node. A forbidden watch (no ClusterRole for
 * nodes) is reported once as BKA_NODES_FORBIDDEN and given up: no node counts as draining, so routing is as
 * it was without this watch, and the log does not repeat the warning on every retry.
 */
export class DrainingNodes {
  private readonly informer: ResilientInformer<V1Node>;
  private draining: ReadonlySet<string> = new Set();
  private forbidden = false;
  private readonly listeners = new Set<() => void>();

  /** `open` builds the watch with the emit it must use (this one filters the forbidden retries out). */
  constructor(open: (emit: EmitEvent) => ResilientInformer<V1Node>, emit: EmitEvent) {
    this.informer = open((event) => {
      if (event.kind === 'watch_failed' && event.code === ErrorCode.WatchForbidden) {
        if (!this.forbidden) {
          this.forbidden = true;
          emit({ kind: 'nodes_unwatched', code: ErrorCode.NodesForbidden, error: event.error });
          void this.informer.stop();
        }
        return;
      }
      emit(event);
    });
    this.informer.onChange(() => this.update());
  }

  start(): void {
    this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** Nodes being drained now; the same set until the next change. */
  names(): ReadonlySet<string> {
    return this.draining;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private update(): void {
    const names = this.forbidden
      ? []
      : this.informer
          .objects()
          .filter(nodeIsDraining)
          .map((node) => node.metadata?.name ?? '');
    if (names.length === this.draining.size && names.every((name) => this.draining.has(name))) return;
    this.draining = new Set(names);
    for (const listener of this.listeners) listener();
  }
}
