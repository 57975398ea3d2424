import type { PublishedActivity } from './lease-annotations.ts';

/** A report as this replica publishes it (the instance id is the publisher's own). */
export type Report = Omit<PublishedActivity, 'instance'>;

/**
 * Whether `now` shows the others something they must act on at once that `published` did not: a pod newly
 * busy (never remove it), or with a cap any pod with more connections (they route under the cap by it),
 * more replicas needed, held connections, a new ack, a wake request, draining.
 * Everything else only lowers (a pod idle starts the idle timeout): one renew period later is soon enough.
 */
export function raises(
  published: Report | undefined,
  now: Report,
  connectionsPerReplica: number,
  podCountsRaise = false,
): boolean {
  if (!published) return true;
  const needed = (r: Report) => Math.ceil((r.open + r.held) / connectionsPerReplica);
  const wakes = new Set(published.wake?.map((w) => `${w.replicas}@${w.until}`));
  return (
    (now.ack !== undefined && now.ack !== published.ack) ||
    (now.held > 0 && published.held === 0) ||
    needed(now) > needed(published) ||
    (now.draining && !published.draining) ||
    Object.entries(now.pods).some(([name, entry]) => {
      const before = published.pods[name]?.open ?? 0;
      return podCountsRaise ? entry.open > before : entry.open > 0 && before === 0;
    }) ||
    (now.wake ?? []).some((w) => !wakes.has(`${w.replicas}@${w.until}`))
  );
}
