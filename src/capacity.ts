/** What one builder may carry: the share that sizes the pool, and the hard cap nothing exceeds (0: none). */
export interface BuilderCapacity {
  /** --connections-per-replica: demand / this = builders wanted; a builder at it passes new clients on while one can be added. */
  connectionsPerReplica: number;
  /** --max-connections-per-replica: no builder is given more, even at --max-replicas (0: no cap). */
  maxConnectionsPerReplica: number;
}

/** Connections per builder that size the pool: a cap below the share sizes it too, so a full pool adds a builder. */
export function builderShare(capacity: BuilderCapacity): number {
  return capacity.maxConnectionsPerReplica > 0
    ? Math.min(capacity.connectionsPerReplica, capacity.maxConnectionsPerReplica)
    : capacity.connectionsPerReplica;
}

/** Connections one builder may take at most once no builder can be added (Infinity without a cap). */
export function builderLimit(capacity: BuilderCapacity): number {
  return capacity.maxConnectionsPerReplica > 0 ? capacity.maxConnectionsPerReplica : Number.POSITIVE_INFINITY;
}
