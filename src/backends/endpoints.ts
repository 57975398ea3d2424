import type { V1Endpoint, V1EndpointSlice } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import type { ResilientInformer } from '../kube/informer.ts';
import type { Backend, BackendSource, PodState } from './source.ts';
import { podOrdinal } from './ordinal.ts';

/**
 * How long a pod may be absent from every slice before it counts as gone. Controllers move an endpoint
 * between slices with two writes, and a watch can deliver the removal before the addition.
 */
export const absenceGraceMs = 5000;

/** Identity of the pod behind an endpoint: its UID where known, so a re-created pod of the same name differs. */
function endpointKey(endpoint: V1Endpoint): string {
  const host = endpoint.addresses[0];
  const podName = endpoint.targetRef?.kind === 'Pod' ? (endpoint.targetRef.name ?? host) : (endpoint.hostname ?? host);
  return endpoint.targetRef?.uid ?? `${podName}@${host}`;
}

/**
 * Ready pods from the headless Service's EndpointSlices. Unlike per-pod DNS names, these appear the moment
 * the pod turns Ready and are never negatively cached. `ready` unset means ready (API semantics);
 * terminating endpoints are excluded even while they still serve.
 */
export function backendsFromEndpointSlices(
  slices: readonly V1EndpointSlice[],
  statefulSetName: string,
  port: number,
): Backend[] {
  const byKey = new Map<string, Backend>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      if (conditions.ready === false || conditions.terminating === true) continue;
      const host = endpoint.addresses[0];
      if (!host) continue;
      const podName =
        endpoint.targetRef?.kind === 'Pod' ? (endpoint.targetRef.name ?? host) : (endpoint.hostname ?? host);
      const ordinal = podOrdinal(podName, statefulSetName) ?? podOrdinal(endpoint.hostname ?? '', statefulSetName);
      if (ordinal === undefined) continue;
      const key = endpointKey(endpoint);
      byKey.set(key, { key, podName, ordinal, host, port });
    }
  }
  return [...byKey.values()].sort((a, b) => a.ordinal - b.ordinal);
}

/** Every pod the slices list, whatever its conditions, and whether any slice reports it terminating. */
export function listedPods(slices: readonly V1EndpointSlice[], statefulSetName: string): Map<string, PodState> {
  const pods = new Map<string, PodState>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      const key = endpointKey(endpoint);
      const host = endpoint.addresses[0] ?? '';
      const podName =
        endpoint.targetRef?.kind === 'Pod' ? (endpoint.targetRef.name ?? host) : (endpoint.hostname ?? host);
      const ordinal =
        podOrdinal(podName, statefulSetName) ?? podOrdinal(endpoint.hostname ?? '', statefulSetName) ?? -1;
      const previous = pods.get(key);
      const conditions = endpoint.conditions ?? {};
      pods.set(key, {
        key,
        podName,
        ordinal,
        ready: previous?.ready === true || (conditions.ready !== false && conditions.terminating !== true),
        terminating: previous?.terminating === true || conditions.terminating === true,
        nodeName: endpoint.nodeName ?? previous?.nodeName,
      });
    }
  }
  return pods;
}

/**
 * A pod exists while some slice lists it (in any state), and after it left them all, for `graceMs`
 * more, unless the slices last reported it terminating: then its deletion was seen and the absence is
 * final. The grace ends by a timer, so the change is announced without waiting for another slice event.
 */
export class EndpointSliceBackends implements BackendSource {
  private readonly informer: Pick<ResilientInformer<V1EndpointSlice>, 'objects' | 'onChange'>;
  private readonly statefulSetName: string;
  private readonly port: number;
  private readonly clock: Clock;
  private readonly graceMs: number;
  private cached: readonly Backend[] = [];
  readonly tracksExistence = true;
  private listed = new Map<string, PodState>();
  /** Pods absent from every slice, not yet known to be gone, with the timer that ends their grace. */
  private readonly absent = new Map<string, { pod: PodState; timer: Timer }>();
  private existingPods: readonly PodState[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(
    informer: Pick<ResilientInformer<V1EndpointSlice>, 'objects' | 'onChange'>,
    statefulSetName: string,
    port: number,
    clock: Clock,
    graceMs = absenceGraceMs,
  ) {
    this.informer = informer;
    this.statefulSetName = statefulSetName;
    this.port = port;
    this.clock = clock;
    this.graceMs = graceMs;
    informer.onChange(() => {
      this.observe(this.informer.objects());
      this.notify();
    });
  }

  current(): readonly Backend[] {
    return this.cached;
  }

  pods(): readonly PodState[] {
    return this.existingPods;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private observe(slices: readonly V1EndpointSlice[]): void {
    this.cached = backendsFromEndpointSlices(slices, this.statefulSetName, this.port);
    const listed = listedPods(slices, this.statefulSetName);
    for (const [key, { timer }] of this.absent) {
      if (!listed.has(key)) continue;
      timer.cancel();
      this.absent.delete(key);
    }
    for (const [key, pod] of this.listed) {
      if (listed.has(key) || pod.terminating) continue;
      this.absent.set(key, {
        // Unlisted, it takes no new connections, but it still exists until the grace ends.
        pod: { ...pod, ready: false },
        timer: this.clock.setTimer(this.graceMs, () => {
          this.absent.delete(key);
          this.updateExisting();
          this.notify();
        }),
      });
    }
    this.listed = listed;
    this.updateExisting();
  }

  private updateExisting(): void {
    this.existingPods = [...this.listed.values(), ...[...this.absent.values()].map((entry) => entry.pod)];
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
