import type { KubeConfig, V1Pod, V1PodList } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';
import { kubeRequest } from './rest.ts';

/** The metadata patch of a pod as a JSON merge patch: null removes a key, resourceVersion makes it conditional. */
export interface PodMetadataPatch {
  resourceVersion?: string | undefined;
  labels?: Record<string, string | null>;
  annotations?: Record<string, string | null>;
}

/** Reads and patches builder pods by name: the busy marks' only requests besides the watch. */
export interface PodWriter {
  /** undefined when the pod does not exist. */
  get(name: string): Promise<V1Pod | undefined>;
  patchMetadata(name: string, patch: PodMetadataPatch): Promise<V1Pod>;
}

export class KubePods implements PodWriter {
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;

  constructor(kubeConfig: KubeConfig, namespace: string) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
  }

  async get(name: string): Promise<V1Pod | undefined> {
    try {
      return await kubeRequest<V1Pod>(this.kubeConfig, 'GET', this.path(name));
    } catch (error) {
      if ((error as { code?: unknown }).code === 404) return undefined;
      throw error;
    }
  }

  patchMetadata(name: string, patch: PodMetadataPatch): Promise<V1Pod> {
    return kubeRequest<V1Pod>(this.kubeConfig, 'PATCH', this.path(name), { body: { metadata: patch } });
  }

  private path(name: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(name)}`;
  }
}

/** Watches the pods that carry `label` (any value): the busy builders, a handful at most, never every pod. */
export function watchLabelledPods(
  kubeConfig: KubeConfig,
  namespace: string,
  label: string,
  clock: Clock,
  emit: EmitEvent,
) {
  return new ResilientInformer<V1Pod>(
    {
      resource: `pods/${label}`,
      kubeConfig,
      path: `/api/v1/namespaces/${namespace}/pods`,
      list: () =>
        kubeRequest<V1PodList>(kubeConfig, 'GET', `/api/v1/namespaces/${namespace}/pods`, {
          query: { labelSelector: label },
        }),
      labelSelector: label,
      clock,
    },
    { emit },
  );
}
