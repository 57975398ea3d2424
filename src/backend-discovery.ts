import type { KubeConfig, V1EndpointSlice, V1StatefulSet } from '@kubernetes/client-node';
import type { BackendSource } from './backends/source.ts';
import { DnsBackends } from './backends/dns.ts';
import { DrainingNodes } from './backends/draining-nodes.ts';
import { EndpointSliceBackends } from './backends/endpoints.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { EmitEvent } from './events.ts';
import { watchEndpointSlices } from './kube/endpointslices.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { watchNodes } from './kube/nodes.ts';

export interface BackendDiscovery {
  source: BackendSource;
  /** The headless Service's EndpointSlices (`--backend-discovery=endpoints`); absent in DNS mode. */
  endpointSlices: ResilientInformer<V1EndpointSlice> | undefined;
  /** Nodes being drained (`--watch-nodes`): EndpointSlices name each pod's node, DNS names do not. */
  drainingNodes: DrainingNodes | undefined;
}

/** Where the builder pods come from: the EndpointSlices (with the draining-node watch), or per-pod DNS names. */
export function discoverBackends(
  inputs: { config: Config; kubeConfig: KubeConfig; statefulSet: ResilientInformer<V1StatefulSet>; clock: Clock },
  callbacks: { emit: EmitEvent },
): BackendDiscovery {
  const { config, kubeConfig, statefulSet, clock } = inputs;
  const { emit } = callbacks;
  const ns = config.stsNamespace;
  if (config.backendDiscovery === 'endpoints') {
    const endpointSlices = watchEndpointSlices(kubeConfig, ns, config.headlessServiceName, clock, emit);
    return {
      source: new EndpointSliceBackends(endpointSlices, config.stsName, config.targetPort, clock),
      endpointSlices,
      drainingNodes: config.watchNodes
        ? new DrainingNodes((nodeEmit) => watchNodes(kubeConfig, clock, nodeEmit), emit)
        : undefined,
    };
  }
  const source = new DnsBackends(statefulSet, {
    statefulSetName: config.stsName,
    serviceName: config.headlessServiceName,
    namespace: ns,
    clusterDomain: config.clusterDomain,
    port: config.targetPort,
  });
  return { source, endpointSlices: undefined, drainingNodes: undefined };
}
