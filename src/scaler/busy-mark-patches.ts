import type { V1Pod } from '@kubernetes/client-node';
import type { PodMetadataPatch } from '../kube/pods.ts';

/** Selected by the PodDisruptionBudget buildkitd-busy (maxUnavailable 0): the Eviction API refuses a busy builder. */
export const busyLabel = 'buildkitd-autoscaler/busy';
/** Karpenter does not voluntarily disrupt (consolidate, drift, expire) a node running a pod with this. */
export const karpenterDoNotDisrupt = 'karpenter.sh/do-not-disrupt';
/** The cluster autoscaler does not remove a node running a pod with this set to "false". */
export const clusterAutoscalerSafeToEvict = 'cluster-autoscaler.kubernetes.io/safe-to-evict';
/**
 * What the gateway changed on the pod, as the values it found before (null: absent), so that removing the
 * marks restores exactly those and never touches a mark someone else set.
 */
export const marksRecordAnnotation = 'buildkitd-autoscaler/marks';

export const busyMarks = {
  labels: { [busyLabel]: 'true' },
  annotations: { [karpenterDoNotDisrupt]: 'true', [clusterAutoscalerSafeToEvict]: 'false' },
} as const;

interface MarksRecord {
  labels: Record<string, string | null>;
  annotations: Record<string, string | null>;
}

/** Whether the gateway's marks are on the pod (its record is there). */
export function carriesOurMarks(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[marksRecordAnnotation] !== undefined;
}

/** The patch that marks `pod` busy, recording each value it replaces; undefined when the pod carries our marks already. */
export function markPatch(pod: V1Pod): PodMetadataPatch | undefined {
  if (carriesOurMarks(pod)) return busyLabelBackPatch(pod);
  const record: MarksRecord = { labels: {}, annotations: {} };
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries(busyMarks.labels)) {
    const before = pod.metadata?.labels?.[key];
    if (before === value) continue;
    record.labels[key] = before ?? null;
    labels[key] = value;
  }
  for (const [key, value] of Object.entries(busyMarks.annotations)) {
    const before = pod.metadata?.annotations?.[key];
    if (before === value) continue;
    record.annotations[key] = before ?? null;
    annotations[key] = value;
  }
  annotations[marksRecordAnnotation] = JSON.stringify(record);
  return { resourceVersion: pod.metadata?.resourceVersion, labels, annotations };
}

/**
 * Our marks are on but the busy label is not (someone removed or changed it while the pod is busy): the
 * label alone comes back, since the disruption budget selects on it; the record keeps the earlier value.
 */
function busyLabelBackPatch(pod: V1Pod): PodMetadataPatch | undefined {
  const current = pod.metadata?.labels?.[busyLabel];
  if (current === busyMarks.labels[busyLabel]) return undefined;
  const record = parseRecord(pod.metadata?.annotations?.[marksRecordAnnotation]);
  const annotations: Record<string, string> = {};
  if (!(busyLabel in record.labels)) {
    record.labels[busyLabel] = current ?? null;
    annotations[marksRecordAnnotation] = JSON.stringify(record);
  }
  return { resourceVersion: pod.metadata?.resourceVersion, labels: { ...busyMarks.labels }, annotations };
}

/**
 * The patch that takes our marks off `pod`: each recorded key that still holds our value gets its earlier
 * value back (null removes it); a key someone changed since is left as it is. undefined: no marks of ours.
 */
export function unmarkPatch(pod: V1Pod): PodMetadataPatch | undefined {
  if (!carriesOurMarks(pod)) return undefined;
  const record = parseRecord(pod.metadata?.annotations?.[marksRecordAnnotation]);
  const labels: Record<string, string | null> = {};
  const annotations: Record<string, string | null> = { [marksRecordAnnotation]: null };
  for (const [key, before] of Object.entries(record.labels)) {
    const ours = (busyMarks.labels as Record<string, string>)[key];
    if (ours !== undefined && pod.metadata?.labels?.[key] === ours) labels[key] = before;
  }
  for (const [key, before] of Object.entries(record.annotations)) {
    const ours = (busyMarks.annotations as Record<string, string>)[key];
    if (ours !== undefined && pod.metadata?.annotations?.[key] === ours) annotations[key] = before;
  }
  return { resourceVersion: pod.metadata?.resourceVersion, labels, annotations };
}

// A record edited by hand into something unreadable: remove only the record, never guess what was ours.
function parseRecord(text: string | undefined): MarksRecord {
  const empty: MarksRecord = { labels: {}, annotations: {} };
  if (text === undefined) return empty;
  try {
    const parsed = JSON.parse(text) as Partial<MarksRecord> | null;
    if (typeof parsed !== 'object' || parsed === null) return empty;
    return { labels: onlyValues(parsed.labels), annotations: onlyValues(parsed.annotations) };
  } catch {
    return empty;
  }
}

function onlyValues(entries: unknown): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (typeof entries !== 'object' || entries === null) return out;
  for (const [key, value] of Object.entries(entries as Record<string, unknown>))
    if (typeof value === 'string' || value === null) out[key] = value;
  return out;
}
