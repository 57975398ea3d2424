import type { KubeConfig, V1StatefulSet, V1StatefulSetList } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';
import { kubeRequest } from './rest.ts';

/** Watches exactly one StatefulSet (field selector on its name), so RBAC can be limited by resourceNames. */
export function watchStatefulSet(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
  clock: Clock,
  emit: EmitEvent,
) {
  const fieldSelector = `metadata.name=${name}`;
  return new ResilientInformer<V1StatefulSet>(
    {
      resource: `statefulset/${name}`,
      kubeConfig,
      path: `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
      list: () =>
        kubeRequest<V1StatefulSetList>(kubeConfig, 'GET', `/apis/apps/v1/namespaces/${namespace}/statefulsets`, {
          query: { fieldSelector },
        }),
      fieldSelector,
      clock,
    },
    { emit },
  );
}
