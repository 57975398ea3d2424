import type { CoreV1Event, KubeConfig } from '@kubernetes/client-node';
import type { GatewayEvent } from '../events.ts';
import { kubeRequest } from './rest.ts';

export interface ScaleEventInputs {
  kubeConfig: KubeConfig;
  /** Namespace and name of the StatefulSet the Events are about. */
  namespace: string;
  statefulSetName: string;
  /** The gateway replica that decided (its --identity), so `kubectl describe` says who scaled. */
  identity: string;
}

export interface ScaleEventCallbacks {
  /** The StatefulSet's UID as last seen, so the Event links to that object; undefined before it was seen. */
  statefulSetUid: () => string | undefined;
  /** An Event could not be recorded (best effort: traffic never depends on it). */
  onRecordFailed: (error: unknown) => void;
}

/**
 * Records scale decisions as Kubernetes Events on the StatefulSet, as the HPA does, so
 * `kubectl describe statefulset buildkitd` shows who scaled it and why. Best effort: a failure to record
 * goes to `onRecordFailed` and never affects traffic.
 */
export class ScaleEventRecorder {
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;
  private readonly statefulSetName: string;
  private readonly host: string;
  private readonly callbacks: ScaleEventCallbacks;

  constructor(inputs: ScaleEventInputs, callbacks: ScaleEventCallbacks) {
    this.kubeConfig = inputs.kubeConfig;
    this.namespace = inputs.namespace;
    this.statefulSetName = inputs.statefulSetName;
    this.host = inputs.identity;
    this.callbacks = callbacks;
  }

  readonly observe = (event: GatewayEvent): void => {
    if (event.kind === 'scale') {
      this.record(
        'Normal',
        event.direction === 'up' ? 'ScaledUp' : 'ScaledDown',
        `Scaled ${event.direction} from ${event.from} to ${event.to} replicas: ${event.reason} (decided by ${this.host})`,
      );
    } else if (event.kind === 'scale_failed') {
      this.record(
        'Warning',
        'ScaleFailed',
        `${event.code}: scale ${event.direction} to ${event.to} failed: ${event.error} (${this.host})`,
      );
    }
  };

  private record(type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date();
    const body: CoreV1Event = {
      metadata: { generateName: `${this.statefulSetName}.`, namespace: this.namespace },
      involvedObject: {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        name: this.statefulSetName,
        namespace: this.namespace,
        uid: this.callbacks.statefulSetUid(),
      },
      type,
      reason,
      message,
      source: { component: 'buildkitd-autoscaler', host: this.host },
      reportingComponent: 'buildkitd-autoscaler',
      reportingInstance: this.host,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    kubeRequest<CoreV1Event>(
      this.kubeConfig,
      'POST',
      `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/events`,
      { body },
    ).catch((error: unknown) => this.callbacks.onRecordFailed(error));
  }
}
