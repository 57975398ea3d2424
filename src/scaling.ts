import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Clock } from './clock.ts';
import type { ClusterView } from './cluster-view.ts';
import type { Config } from './config.ts';
import type { Coordination } from './coordination.ts';
import type { GatewayError } from './errors.ts';
import type { EmitEvent } from './events.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { KubePods, watchLabelledPods } from './kube/pods.ts';
import { StatefulSetScale } from './kube/scale-subresource.ts';
import type { LocalActivity } from './scaler/activity.ts';
import { ScaleActuator, type ScaleTarget } from './scaler/actuator.ts';
import { busyLabel } from './scaler/busy-mark-patches.ts';
import { BusyMarker } from './scaler/busy-marks.ts';
import { ScaleController, type ReconcileTrigger } from './scaler/controller.ts';
import { LocalProposalStore } from './scaler/proposal-store.ts';
import type { WakeRequests } from './scaler/wake-requests.ts';

export interface ScalerParts {
  /** Builder pods carrying the busy label: what the marker compares the reports with. */
  busyPods: ResilientInformer<V1Pod>;
  actuator: ScaleActuator;
  marker: BusyMarker;
  controller: ScaleController;
}

export interface ScalerInputs {
  config: Config;
  kubeConfig: KubeConfig;
  clock: Clock;
  /** Replaces the scale subresource client (unit tests only). */
  scaleTarget: ScaleTarget | undefined;
  cluster: ClusterView;
  activity: LocalActivity;
  wakes: WakeRequests;
  /** The Lease parts with leader election; without, this replica decides alone and leads. */
  coordination: Coordination | undefined;
  /** What makes the controller decide again (reconcile-triggers.ts). */
  triggers: readonly ReconcileTrigger[];
}

export interface ScalerCallbacks {
  emit: EmitEvent;
  /** The actuator gave up or found scaling forbidden or the StatefulSet missing: held clients fail with it. */
  scaleFailed: (error: GatewayError) => void;
  /** Held clients look again (a pod became routable or gained room). */
  routingChanged: () => void;
}

/** The decide-and-act side: the one writer of replicas, the reconcile loop, and the writer of busy marks. */
export function buildScaler(inputs: ScalerInputs, callbacks: ScalerCallbacks): ScalerParts {
  const { config, clock, coordination } = inputs;
  const { emit } = callbacks;
  const ns = config.stsNamespace;
  const busyPods = watchLabelledPods(inputs.kubeConfig, ns, busyLabel, clock, emit);
  const isLeader = () => coordination?.elector.isLeader ?? true;
  const actuator = new ScaleActuator(
    { target: inputs.scaleTarget ?? new StatefulSetScale(inputs.kubeConfig, ns, config.stsName), clock },
    { emit, failed: callbacks.scaleFailed },
  );
  const builderName = new RegExp(`^${config.stsName.replaceAll('.', '\\.')}-\\d+$`);
  const marker = new BusyMarker(
    {
      busyPods: () => Object.keys(controller.decision?.loads ?? {}),
      labelledPods: () => busyPods.objects(),
      labelledPodsSynced: () => busyPods.state.everSynced,
      isWriter: isLeader,
      isBuilder: (name) => builderName.test(name),
      pods: new KubePods(inputs.kubeConfig, ns),
      clock,
    },
    { emit },
  );
  busyPods.onChange(() => marker.requestReconcile());
  coordination?.leadership.onChange(() => marker.requestReconcile());
  const controller: ScaleController = new ScaleController(
    {
      statefulSetName: config.stsName,
      identity: config.identity,
      policy: {
        minReplicas: config.minReplicas,
        maxReplicas: config.maxReplicas,
        connectionsPerReplica: config.connectionsPerReplica,
        maxConnectionsPerReplica: config.maxConnectionsPerReplica,
        idleTimeoutMs: config.idleTimeoutMs,
        maxReportStalenessMs: config.maxReportStalenessMs,
        proposalTimeoutMs: config.leaderElectionLeaseDurationMs,
      },
      observe: () => inputs.cluster.observe(),
      activity: inputs.activity,
      wakes: inputs.wakes,
      otherReports: () => coordination?.reports.reports() ?? [],
      departedActivity: () => coordination?.reports.departedActivity() ?? new Map<string, number>(),
      proposals: coordination?.proposals ?? new LocalProposalStore(),
      isLeader,
      leadership: () => coordination?.elector.leadership,
      actuator,
      clock,
      resyncMs: config.leaderElectionRetryPeriodMs,
      triggers: inputs.triggers,
    },
    {
      emit,
      routingChanged: callbacks.routingChanged,
      decided: () => {
        marker.requestReconcile();
        coordination?.publisher.publishSoon();
      },
    },
  );
  return { busyPods, actuator, marker, controller };
}
