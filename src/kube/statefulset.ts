import { AppsV1Api, type KubeConfig, type V1StatefulSet } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';

/** Watches exactly one StatefulSet (field selector on its name), so RBAC can be limited by resourceNames. */
export function watchStatefulSet(kubeConfig: KubeConfig, namespace: string, name: string, clock: Clock, emit: EmitEvent) {
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const fieldSelector = `metadata.name=${name}`;
  return new ResilientInformer<V1StatefulSet>({
    resource: `statefulset/${name}`,
    kubeConfig,
    path: `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
    list: () => apps.listNamespacedStatefulSet({ namespace, fieldSelector }),
    fieldSelector,
    clock,
    emit,
  });
}
