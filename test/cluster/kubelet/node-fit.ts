// Whether a pod may be bound to a node, as kube-scheduler's filter plugins judge it (NodeUnschedulable,
// TaintToleration, NodeAffinity with nodeSelector): pure functions, so the process kubelet's scheduler
// and its unit test share them.
import type { V1Node, V1NodeSelectorRequirement, V1Pod, V1Taint, V1Toleration } from '@kubernetes/client-node';

/** The taint a cordon stands for; a pod that tolerates it may still land on a cordoned node (DaemonSets do). */
export const UNSCHEDULABLE_TAINT: V1Taint = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };

/** Does the toleration cover the taint (core/v1 Toleration.ToleratesTaint)? */
export function tolerates(toleration: V1Toleration, taint: V1Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  // An empty key with Exists tolerates every taint.
  if (!toleration.key && toleration.operator !== 'Exists') return false;
  return toleration.operator === 'Exists' || (toleration.value ?? '') === (taint.value ?? '');
}

function requirementHolds(req: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
      return value !== undefined && Number(value) > Number(values[0]);
    case 'Lt':
      return value !== undefined && Number(value) < Number(values[0]);
    default:
      return false;
  }
}

/** Why the pod cannot go to this node (kube-scheduler's wording), or undefined when it fits. */
export function unfitReason(pod: V1Pod, node: V1Node): string | undefined {
  const tolerations = pod.spec?.tolerations ?? [];
  if (node.spec?.unschedulable && !tolerations.some((t) => tolerates(t, UNSCHEDULABLE_TAINT)))
    return 'node(s) were unschedulable';
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
    if (!tolerations.some((t) => tolerates(t, taint)))
      return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
  }
  const labels = node.metadata?.labels ?? {};
  for (const [key, value] of Object.entries(pod.spec?.nodeSelector ?? {})) {
    if (labels[key] !== value) return "node(s) didn't match Pod's node affinity/selector";
  }
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms?.length) {
    // Terms are ORed, the requirements of one term ANDed.
    const matches = terms.some(
      (term) =>
        (term.matchExpressions ?? []).every((req) => requirementHolds(req, labels[req.key])) &&
        (term.matchFields ?? []).every((req) =>
          requirementHolds(req, req.key === 'metadata.name' ? node.metadata?.name : undefined),
        ),
    );
    if (!matches) return "node(s) didn't match Pod's node affinity/selector";
  }
  return undefined;
}

/** The first node (in the given order) the pod fits on, or kube-scheduler's summary of why none does. */
export function pickNode(pod: V1Pod, nodes: readonly V1Node[]): { node: string } | { unschedulable: string } {
  const reasons = new Map<string, number>();
  for (const node of nodes) {
    const reason = unfitReason(pod, node);
    if (reason === undefined) return { node: node.metadata?.name ?? '' };
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  const why = [...reasons].map(([reason, count]) => `${count} ${reason}`).join(', ');
  return { unschedulable: `0/${nodes.length} nodes are available${why ? `: ${why}` : ''}.` };
}
