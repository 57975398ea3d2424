import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';

/** Watches the EndpointSlices of one Service (they carry the label kubernetes.io/service-name). */
export function watchEndpointSlices(kubeConfig: KubeConfig, namespace: string, serviceName: string, clock: Clock, emit: EmitEvent) {
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  const labelSelector = `kubernetes.io/service-name=${serviceName}`;
  return new ResilientInformer<V1EndpointSlice>({
    resource: `endpointslices/${serviceName}`,
    kubeConfig,
    path: `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    list: () => discovery.listNamespacedEndpointSlice({ namespace, labelSelector }),
    labelSelector,
    clock,
    emit,
  });
}
