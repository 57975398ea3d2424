import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';

export interface ScaleState {
  replicas: number;
  resourceVersion: string | undefined;
}

/** Reads and writes replicas through the statefulsets/scale subresource only (the smallest RBAC that works). */
export class StatefulSetScale {
  private readonly apps: AppsV1Api;
  private readonly namespace: string;
  private readonly name: string;

  constructor(kubeConfig: KubeConfig, namespace: string, name: string) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.namespace = namespace;
    this.name = name;
  }

  async read(): Promise<ScaleState> {
    const scale = await this.apps.readNamespacedStatefulSetScale({ name: this.name, namespace: this.namespace });
    return { replicas: scale.spec?.replicas ?? 0, resourceVersion: scale.metadata?.resourceVersion };
  }

  /** Writes replicas with optimistic concurrency: fails with 409 if the scale changed since `read`. */
  async write(replicas: number, resourceVersion: string | undefined): Promise<void> {
    await this.apps.replaceNamespacedStatefulSetScale({
      name: this.name,
      namespace: this.namespace,
      body: {
        apiVersion: 'autoscaling/v1',
        kind: 'Scale',
        metadata: { name: this.name, namespace: this.namespace, resourceVersion },
        spec: { replicas },
      },
    });
  }
}
