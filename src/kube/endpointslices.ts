import type { KubeConfig, V1EndpointSlice, V1EndpointSliceList } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';
import { kubeRequest } from './rest.ts';

/** Watches the EndpointSlices of one Service (they carry the label kubernetes.io/service-name). */
export function watchEndpointSlices(
  kubeConfig: KubeConfig,
  namespace: string,
  serviceName: string,
  clock: Clock,
  emit: EmitEvent,
) {
  const labelSelector = `kubernetes.io/service-name=${serviceName}`;
  return new ResilientInformer<V1EndpointSlice>(
    {
      resource: `endpointslices/${serviceName}`,
      kubeConfig,
      path: `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      list: () =>
        kubeRequest<V1EndpointSliceList>(
          kubeConfig,
          'GET',
          `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
          { query: { labelSelector } },
        ),
      labelSelector,
      clock,
    },
    { emit },
  );
}
