import type { V1StatefulSet } from '@kubernetes/client-node';
import type { ResilientInformer } from '../kube/informer.ts';
import type { Backend, BackendSource, PodState } from './source.ts';

export interface DnsNaming {
  statefulSetName: string;
  serviceName: string;
  namespace: string;
  clusterDomain: string;
  port: number;
}

/**
 * The Go tool's form: `<sts>-<ordinal>.<svc>.<ns>.svc.<domain>` for the ordinals the StatefulSet reports
 * ready. Per-pod DNS records lag and are negatively cached, so the dial retries inside the deadline.
 */
export function backendsFromStatefulSet(statefulSet: V1StatefulSet | undefined, naming: DnsNaming): Backend[] {
  if (!statefulSet) return [];
  // A status that has not caught up with the latest spec (e.g. just after a scale write) may still count
  // pods that are being terminated; trust it only once the controller has observed the current generation.
  const observed = (statefulSet.status?.observedGeneration ?? 0) >= (statefulSet.metadata?.generation ?? 0);
  const desired = statefulSet.spec?.replicas ?? 0;
  const ready = observed ? Math.min(desired, statefulSet.status?.readyReplicas ?? 0) : 0;
  const backends: Backend[] = [];
  for (let ordinal = 0; ordinal < ready; ordinal += 1) {
    const podName = `${naming.statefulSetName}-${ordinal}`;
    backends.push({
      key: `${statefulSet.metadata?.uid ?? ''}/${podName}`,
      podName,
      ordinal,
      host: `${podName}.${naming.serviceName}.${naming.namespace}.svc.${naming.clusterDomain}`,
      port: naming.port,
    });
  }
  return backends;
}

export class DnsBackends implements BackendSource {
  private readonly informer: ResilientInformer<V1StatefulSet>;
  private readonly naming: DnsNaming;
  private cached: readonly Backend[] = [];
  /** DNS names say nothing about a pod's deletion: open connections are left to TCP keepalive. */
  readonly tracksExistence = false;

  constructor(informer: ResilientInformer<V1StatefulSet>, naming: DnsNaming) {
    this.informer = informer;
    this.naming = naming;
    informer.onChange(() => {
      this.cached = backendsFromStatefulSet(this.informer.objects()[0], this.naming);
    });
  }

  current(): readonly Backend[] {
    return this.cached;
  }

  /** Only the ready ordinals are known; a pod being removed shows as absent from them. */
  pods(): readonly PodState[] {
    return this.cached.map((b) => ({
      key: b.key,
      podName: b.podName,
      ordinal: b.ordinal,
      ready: true,
      terminating: false,
    }));
  }

  onChange(listener: () => void): () => void {
    return this.informer.onChange(listener);
  }
}
