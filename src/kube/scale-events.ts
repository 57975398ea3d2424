import type { CoreV1Event, KubeConfig } from '@kubernetes/client-node';
import type { GatewayEvent } from '../events.ts';
import type { Logger } from '../log.ts';
import { kubeRequest } from './rest.ts';

/**
 * Records scale decisions as Kubernetes Events on the StatefulSet, as the HPA does, so
 * `kubectl describe statefulset buildkitd` shows who scaled it and why. Best effort: a failure to record
 * is logged at debug level and never affects traffic.
 */
export class ScaleEventRecorder {
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;
  private readonly statefulSetName: string;
  private readonly uid: () => string | undefined;
  private readonly log: Logger;
  /** The gateway replica that decided (its --identity), so `kubectl describe` says who scaled. */
  private readonly host: string;

  constructor(
    kubeConfig: KubeConfig,
    namespace: string,
    statefulSetName: string,
    uid: () => string | undefined,
    log: Logger,
    identity: string,
  ) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
    this.statefulSetName = statefulSetName;
    this.uid = uid;
    this.log = log;
    this.host = identity;
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
        uid: this.uid(),
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
    ).catch((error: unknown) => this.log.debug({ err: error }, 'could not record a Kubernetes Event'));
  }
}
