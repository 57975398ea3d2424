import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { ResilientInformer } from '../kube/informer.ts';
import type { Backend, BackendSource } from './backend-set.ts';
import { podOrdinal } from './ordinal.ts';

/**
 * Ready pods from the headless Service's EndpointSlices. Unlike per-pod DNS names, these appear the moment
 * the pod turns Ready and are never negatively cached. `ready` unset means ready (API semantics);
 * terminating endpoints are excluded even while they still serve.
 */
export function backendsFromEndpointSlices(slices: readonly V1EndpointSlice[], statefulSetName: string, port: number): Backend[] {
  const byKey = new Map<string, Backend>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      if (conditions.ready === false || conditions.terminating === true) continue;
      const host = endpoint.addresses[0];
      if (!host) continue;
      const podName = endpoint.targetRef?.kind === 'Pod' ? (endpoint.targetRef.name ?? host) : (endpoint.hostname ?? host);
      const ordinal = podOrdinal(podName, statefulSetName) ?? podOrdinal(endpoint.hostname ?? '', statefulSetName);
      if (ordinal === undefined) continue;
      const key = endpoint.targetRef?.uid ?? `${podName}@${host}`;
      byKey.set(key, { key, podName, ordinal, host, port });
    }
  }
  return [...byKey.values()].sort((a, b) => a.ordinal - b.ordinal);
}

/** Keys of every endpoint of the slices, whatever its conditions: the pods that still exist. */
export function existingEndpointKeys(slices: readonly V1EndpointSlice[]): Set<string> {
  const keys = new Set<string>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      const host = endpoint.addresses[0];
      const podName = endpoint.targetRef?.name ?? endpoint.hostname ?? host;
      keys.add(endpoint.targetRef?.uid ?? `${podName}@${host}`);
    }
  }
  return keys;
}

export class EndpointSliceBackends implements BackendSource {
  private readonly informer: ResilientInformer<V1EndpointSlice>;
  private readonly statefulSetName: string;
  private readonly port: number;
  private cached: readonly Backend[] = [];
  private existingKeys: ReadonlySet<string> = new Set();

  constructor(informer: ResilientInformer<V1EndpointSlice>, statefulSetName: string, port: number) {
    this.informer = informer;
    this.statefulSetName = statefulSetName;
    this.port = port;
    informer.onChange(() => {
      const slices = this.informer.objects();
      this.cached = backendsFromEndpointSlices(slices, this.statefulSetName, this.port);
      this.existingKeys = existingEndpointKeys(slices);
    });
  }

  current(): readonly Backend[] {
    return this.cached;
  }

  existing(): ReadonlySet<string> {
    return this.existingKeys;
  }

  onChange(listener: () => void): () => void {
    // Registered after the constructor's own listener, so `cached` is fresh when this runs.
    return this.informer.onChange(listener);
  }
}
