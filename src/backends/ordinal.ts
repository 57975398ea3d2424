/** The ordinal of a StatefulSet pod from its name (`<sts>-<ordinal>`), or undefined if it is not one of its pods. */
export function podOrdinal(podName: string, statefulSetName: string): number | undefined {
  if (!podName.startsWith(`${statefulSetName}-`)) return undefined;
  const suffix = podName.slice(statefulSetName.length + 1);
  return /^\d+$/.test(suffix) ? Number(suffix) : undefined;
}
