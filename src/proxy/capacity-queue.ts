/**
 * Connections waiting for room on a builder while the pool is at --max-replicas and every builder carries
 * --max-connections-per-replica, in arrival order (connection ids grow with arrival). Room that frees up goes
 * to the earliest: a newcomer that happens to look first waits behind them. This replica's order only:
 * other gateway replicas keep their own queues.
 */
export class CapacityQueue {
  /** Connection ids, ascending. */
  private readonly waiting: number[] = [];
  private readonly onSizeChange: (size: number) => void;

  /** `onSizeChange`: the number of queued connections changed (bka_connections_queued). */
  constructor(callbacks: { onSizeChange?: (size: number) => void } = {}) {
    this.onSizeChange = callbacks.onSizeChange ?? (() => undefined);
  }

  get size(): number {
    return this.waiting.length;
  }

  has(id: number): boolean {
    return this.waiting.includes(id);
  }

  /** Whether a connection that arrived before `id` is waiting: then any room is theirs first. */
  anyoneAhead(id: number): boolean {
    const first = this.waiting[0];
    return first !== undefined && first < id;
  }

  /** Takes the place of connection `id` (by arrival, so one that lost its dial keeps its turn); false if it has one. */
  join(id: number): boolean {
    if (this.has(id)) return false;
    let at = this.waiting.length;
    while (at > 0 && (this.waiting[at - 1] ?? 0) > id) at -= 1;
    this.waiting.splice(at, 0, id);
    this.onSizeChange(this.waiting.length);
    return true;
  }

  /** Gives up the place of `id` (routed or gone); false if it had none. */
  leave(id: number): boolean {
    const at = this.waiting.indexOf(id);
    if (at < 0) return false;
    this.waiting.splice(at, 1);
    this.onSizeChange(this.waiting.length);
    return true;
  }
}
