import type { KubeConfig, V1Node, V1NodeList } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { ResilientInformer } from './informer.ts';
import { kubeRequest } from './rest.ts';

/** Only what tells whether a node is being drained: a Node's status (images, conditions) is most of its size. */
export function slimNode(node: V1Node): V1Node {
  const { name, uid, resourceVersion } = node.metadata ?? {};
  return {
    metadata: { name, uid, resourceVersion },
    spec: { unschedulable: node.spec?.unschedulable, taints: node.spec?.taints },
  };
}

/** Watches every Node (cluster-scoped: needs a ClusterRole), keeping only name, cordon and taints. */
export function watchNodes(kubeConfig: KubeConfig, clock: Clock, emit: EmitEvent) {
  return new ResilientInformer<V1Node>(
    {
      resource: 'nodes',
      kubeConfig,
      path: '/api/v1/nodes',
      list: async () => {
        const list = await kubeRequest<V1NodeList>(kubeConfig, 'GET', '/api/v1/nodes');
        return { ...list, items: list.items.map(slimNode) };
      },
      slim: slimNode,
      clock,
    },
    { emit },
  );
}
