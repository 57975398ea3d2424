import type { KubernetesObject, V1StatefulSet } from '@kubernetes/client-node';
import type { BackendDiscovery } from './backend-discovery.ts';
import { ErrorCode, GatewayError } from './errors.ts';
import type { EmitEvent } from './events.ts';
import type { ResilientInformer } from './kube/informer.ts';
import type { ObservedCluster } from './scaler/types.ts';

/** What this view reads of a watch. */
type Watch = Pick<ResilientInformer<KubernetesObject>, 'resource' | 'state' | 'onChange'>;

export interface ClusterViewInputs {
  statefulSet: ResilientInformer<V1StatefulSet>;
  /** The backend source, the EndpointSlice watch (a wake-up is seen through it too) and the draining nodes. */
  discovery: BackendDiscovery;
  /** Every watch the decision reads (the two above and, with leader election, the Leases). */
  decisionWatches: () => readonly Watch[];
}

export interface ClusterViewCallbacks {
  emit: EmitEvent;
  /** The StatefulSet watch lists it: a scale failure that said it was missing is over. */
  statefulSetSeen: () => void;
  /** A watch shows that a wake-up cannot be seen or done (forbidden, no StatefulSet): held clients fail at once. */
  wakeCannotWork: (failure: GatewayError) => void;
}

/** What the watches show, as the scale controller reads it, and the failures they make plain. */
export class ClusterView {
  private readonly inputs: ClusterViewInputs;
  private readonly callbacks: ClusterViewCallbacks;
  /** Builders on draining nodes as last logged. */
  private drainingPods = '';

  constructor(inputs: ClusterViewInputs, callbacks: ClusterViewCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    const { statefulSet } = inputs;
    for (const informer of this.wakeWatches()) {
      informer.onChange(() => {
        if (statefulSet.state.synced && statefulSet.objects().length > 0) callbacks.statefulSetSeen();
        const failure = this.failure();
        if (failure) callbacks.wakeCannotWork(failure);
      });
    }
  }

  observe(): ObservedCluster {
    const { statefulSet } = this.inputs;
    const synced = this.inputs.decisionWatches().every((informer) => informer.state.synced);
    const stsSynced = statefulSet.state.synced || statefulSet.state.everSynced;
    const sts = statefulSet.objects()[0];
    const drainingNodes = this.inputs.discovery.drainingNodes?.names();
    const pods = this.inputs.discovery.source
      .pods()
      .filter((pod) => pod.ordinal >= 0)
      .map((pod) => ({
        name: pod.podName,
        ordinal: pod.ordinal,
        key: pod.key,
        ready: pod.ready,
        terminating: pod.terminating,
        draining: pod.nodeName !== undefined && drainingNodes?.has(pod.nodeName) === true,
      }));
    this.reportDrainingPods(pods);
    return {
      synced,
      statefulSet: stsSynced ? { exists: sts !== undefined, replicas: sts?.spec?.replicas ?? 0 } : undefined,
      pods,
    };
  }

  /** Failures the watches show (StatefulSet missing, a watch forbidden): they last as long as the watch says. */
  failure(): GatewayError | undefined {
    const { statefulSet } = this.inputs;
    if (statefulSet.state.synced && statefulSet.objects().length === 0) {
      return new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist');
    }
    // Only the watches a wake-up is seen through; a forbidden Lease watch shows on /readyz instead.
    const forbidden = this.wakeWatches().find((informer) => informer.state.failure?.code === ErrorCode.WatchForbidden);
    if (forbidden) {
      return new GatewayError(
        ErrorCode.WatchForbidden,
        `the watch of ${forbidden.resource} is forbidden, so a wake-up could not be seen: ${forbidden.state.failure?.message ?? ''}`,
      );
    }
    return undefined;
  }

  /** The watches a wake-up is seen through: the StatefulSet's and the EndpointSlices' (none in DNS mode). */
  private wakeWatches(): Watch[] {
    const { endpointSlices } = this.inputs.discovery;
    return [this.inputs.statefulSet, ...(endpointSlices ? [endpointSlices] : [])];
  }

  /** One log line whenever the set of builders on draining nodes changes. */
  private reportDrainingPods(pods: readonly { name: string; draining: boolean }[]): void {
    const draining = pods.filter((pod) => pod.draining).map((pod) => pod.name);
    const text = draining.join(',');
    if (text === this.drainingPods) return;
    this.drainingPods = text;
    this.callbacks.emit({ kind: 'builders_draining', pods: draining });
  }
}
