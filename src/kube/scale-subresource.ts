import type { KubeConfig, V1Scale } from '@kubernetes/client-node';
import { kubeRequest } from './rest.ts';

export interface ScaleState {
  replicas: number;
  resourceVersion: string | undefined;
}

/** Reads and writes replicas through the statefulsets/scale subresource only (the smallest RBAC that works). */
export class StatefulSetScale {
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;
  private readonly name: string;

  constructor(kubeConfig: KubeConfig, namespace: string, name: string) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
    this.name = name;
  }

  async read(signal?: AbortSignal): Promise<ScaleState> {
    const scale = await kubeRequest<V1Scale>(this.kubeConfig, 'GET', this.path(), { signal });
    return { replicas: scale.spec?.replicas ?? 0, resourceVersion: scale.metadata?.resourceVersion };
  }

  /** Writes replicas with optimistic concurrency: fails with 409 if the scale changed since `read`. */
  async write(replicas: number, resourceVersion: string | undefined, signal?: AbortSignal): Promise<void> {
    await kubeRequest<V1Scale>(this.kubeConfig, 'PUT', this.path(), {
      signal,
      body: {
        apiVersion: 'autoscaling/v1',
        kind: 'Scale',
        metadata: { name: this.name, namespace: this.namespace, resourceVersion },
        spec: { replicas },
      },
    });
  }

  private path(): string {
    return `/apis/apps/v1/namespaces/${encodeURIComponent(this.namespace)}/statefulsets/${encodeURIComponent(this.name)}/scale`;
  }
}
