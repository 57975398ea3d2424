// What each event becomes: its log level, message and fields, and the metrics it counts. The map has one
// entry per event kind, and the compiler insists on every one (satisfies), so logs, metrics and the E2E
// timeline cannot drift apart.
import type { Logger } from 'pino';
import type { ConnectionOutcome, EmitEvent, EventKind, GatewayEvent } from './events.ts';
import type { Metrics } from './metrics.ts';

type EventOf<K extends EventKind> = Extract<GatewayEvent, { kind: K }>;
type Level = 'debug' | 'info' | 'warn' | 'error';

interface EventRule<K extends EventKind> {
  level: (event: EventOf<K>) => Level;
  message: (event: EventOf<K>) => string;
  count?: (event: EventOf<K>, metrics: Metrics) => void;
  /** The log line's fields, for events logged per connection: built directly, cheaper than copying the event. */
  fields?: (event: EventOf<K>) => Record<string, unknown>;
}

// Health checks and port scanners close without a byte all day long: that is no warning.
const outcomeLevel = (outcome: ConnectionOutcome): Level =>
  outcome === 'completed' || outcome === 'client_gone_while_held' || outcome === 'closed_before_data' ? 'info' : 'warn';

// `satisfies` makes the compiler insist on a rule for every event kind.
const rules = {
  listening: { level: () => 'info', message: (e) => `${e.what} listening on ${e.address}:${e.port}` },
  connection_rejected: {
    level: () => 'warn',
    message: (e) => `connection from ${e.client} refused: ${e.outcome}`,
    count: (e, m) => {
      m.connectionsTotal.inc({ outcome: e.outcome });
      m.errors.inc({ code: e.code });
    },
  },
  connection_held: { level: () => 'info', message: (e) => `connection ${e.id} held until buildkitd is ready` },
  connection_queued: {
    level: () => 'info',
    message: (e) =>
      `connection ${e.id} from ${e.client} queued: every builder is at --max-connections-per-replica and the pool at --max-replicas`,
  },
  connection_routed: {
    level: (e) => (e.heldMs === undefined ? 'debug' : 'info'),
    message: (e) =>
      `connection ${e.id} spliced to ${e.backend}` +
      (e.heldMs === undefined ? '' : ` after ${Math.round(e.heldMs)}ms held`) +
      (e.queuedMs === undefined ? '' : ` (${Math.round(e.queuedMs)}ms of it queued for capacity)`),
    count: (e, m) => {
      if (e.heldMs !== undefined) m.holdDuration.observe(e.heldMs / 1000);
      if (e.affinityHit !== undefined) m.affinity.inc({ result: e.affinityHit ? 'hit' : 'miss' });
    },
    fields: (e) => ({
      event: 'connection_routed',
      id: e.id,
      backend: e.backend,
      heldMs: e.heldMs,
      affinityHit: e.affinityHit,
      queuedMs: e.queuedMs,
    }),
  },
  connection_closed: {
    level: (e) => outcomeLevel(e.outcome),
    message: (e) => `connection ${e.id} closed: ${e.outcome}`,
    count: (e, m) => {
      m.countConnectionEnded(e.outcome, e.bytesUp, e.bytesDown);
      if (e.code) m.errors.inc({ code: e.code });
    },
    fields: (e) => ({
      event: 'connection_closed',
      id: e.id,
      outcome: e.outcome,
      bytesUp: e.bytesUp,
      bytesDown: e.bytesDown,
      durationMs: e.durationMs,
      queuedMs: e.queuedMs,
      code: e.code,
      error: e.error,
    }),
  },
  dial_failed: {
    level: () => 'warn',
    message: (e) => `dial ${e.backend} failed (attempt ${e.attempt}): ${e.error}`,
    count: (e, m) => {
      m.dialFailures.inc({ reason: e.error.split(' ')[0] ?? 'unknown' });
      m.errors.inc({ code: e.code });
    },
  },
  scale: {
    level: () => 'info',
    message: (e) => `scaled ${e.direction} ${e.from} -> ${e.to} (${e.reason})`,
    count: (e, m) => {
      m.scaleOperations.inc({ direction: e.direction, result: 'success' });
      // A cold start caused by waiting connections is one connection-driven wake, however many connections wait.
      if (e.direction === 'up' && e.from === 0 && e.cause === 'connections') m.wakes.inc({ source: 'connection' });
    },
  },
  wake_requested: {
    level: () => 'info',
    message: (e) => `wake requested by ${e.client}: at least ${e.replicas} replicas until ${e.until}`,
    count: (_e, m) => m.wakes.inc({ source: 'api' }),
  },
  scale_failed: {
    level: () => 'error',
    message: (e) => `scale ${e.direction} to ${e.to} failed: ${e.error}`,
    count: (e, m) => {
      m.scaleOperations.inc({ direction: e.direction, result: e.code });
      m.errors.inc({ code: e.code });
    },
  },
  scale_skipped: { level: () => 'info', message: (e) => `scale ${e.direction} skipped: ${e.reason}` },
  scale_recovered: { level: () => 'info', message: (e) => `${e.code} is over: ${e.reason}` },
  wake_gave_up: {
    level: () => 'error',
    message: (e) =>
      `gave up waking buildkitd after ${e.attempts} failed attempts (the next connection tries again): ${e.error}`,
    count: (e, m) => m.errors.inc({ code: e.code }),
  },
  internal_error: {
    level: () => 'error',
    message: (e) => `${e.what}: ${e.error}`,
    count: (e, m) => m.errors.inc({ code: e.code }),
  },
  idle_timer_started: {
    level: () => 'info',
    message: (e) => `no open connections; scaling to zero in ${e.timeoutMs}ms unless one arrives`,
  },
  idle_timer_canceled: { level: () => 'debug', message: () => 'idle timer canceled by a new connection' },
  watch_synced: { level: () => 'info', message: (e) => `watch of ${e.resource} synced (${e.objects} objects)` },
  watch_failed: {
    level: () => 'warn',
    message: (e) => `watch of ${e.resource} failed, retrying in ${e.retryInMs}ms: ${e.error}`,
    count: (e, m) => {
      m.errors.inc({ code: e.code });
      m.watchRestarts.inc({ resource: e.resource });
    },
  },
  nodes_unwatched: {
    level: () => 'warn',
    message: (e) =>
      `cannot watch nodes, so builders on draining nodes keep taking connections (grant get, list, watch on nodes or set --watch-nodes=false): ${e.error}`,
    count: (e, m) => m.errors.inc({ code: e.code }),
  },
  builders_draining: {
    level: () => 'info',
    message: (e) =>
      e.pods.length === 0
        ? 'no builder is on a draining node'
        : `builders on draining nodes take no new connections: ${e.pods.join(', ')}`,
  },
  backends_changed: {
    level: () => 'info',
    message: (e) => `ready backends: ${e.ready.length === 0 ? 'none' : e.ready.join(', ')}`,
  },
  shutdown_started: {
    level: () => 'info',
    message: (e) =>
      `${e.signal}: not ready any more; ${e.openConnections} open connections get ${e.graceMs}ms to finish once the listener closes`,
  },
  scale_decision: {
    level: () => 'info',
    message: (e) =>
      `${e.demand} connections need ${e.needed} replicas ` +
      `(${e.replicasReporting} gateway replicas reporting${e.staleReports ? `, ${e.staleReports} stale` : ''})` +
      `${e.waiting ? `; waiting: ${e.waiting}` : ''}`,
    count: (e, m) => {
      m.desiredReplicas.set(e.needed);
      m.replicasReporting.set(e.replicasReporting);
      m.staleReports.set(e.staleReports);
    },
  },
  scale_down_proposed: {
    level: () => 'info',
    message: (e) =>
      `proposed scaling down ${e.from} -> ${e.to}: ${e.pods} takes no new connections on any gateway replica`,
  },
  scale_down_withdrawn: { level: () => 'info', message: (e) => `scale-down of ${e.pods} withdrawn: ${e.reason}` },
  scale_down_blocked: {
    level: () => 'warn',
    message: (e) => `scale-down blocked: no fresh report from ${e.by.join(', ')} (it may still splice a build)`,
    count: (_e, m) => m.scaleDownBlocked.inc(),
  },
  report_expired: {
    level: () => 'warn',
    message: (e) =>
      `the report of ${e.identity} has been stale for ${e.maxStalenessMs}ms; it no longer blocks scale-down`,
    count: (e, m) => m.errors.inc({ code: e.code }),
  },
  partition_stepped_back: {
    level: () => 'warn',
    message: (e) =>
      `own report not written for ${e.unwrittenMs}ms while ${e.confirmedBy} writes its own: this replica alone ` +
      `is cut off from the API server; /readyz fails until a write succeeds (open connections keep flowing)`,
    count: (e, m) => {
      m.errors.inc({ code: e.code });
      m.steppedBack.set(1);
    },
  },
  partition_recovered: {
    level: () => 'info',
    message: (e) => `back in the Service after ${e.steppedBackMs}ms: ${e.reason}`,
    count: (_e, m) => m.steppedBack.set(0),
  },
  // The failing writes are warned about (BKA_LEASE_FAILED); this only says why the replica stays in.
  report_unwritten: {
    level: () => 'info',
    message: (e) =>
      `own report not written for ${e.unwrittenMs}ms and none of the ${e.peersAsked} other replicas (${e.peersAnswered} ` +
      `answered) writes its own: an outage for all, staying in the Service`,
  },
  leader_changed: {
    level: () => 'info',
    message: (e) => `${e.identity} ${e.leading ? 'leads' : 'no longer leads'} (lease ${e.lease}): ${e.reason}`,
    count: (e, m) => m.leader.set(e.leading ? 1 : 0),
  },
  lease_failed: {
    level: () => 'warn',
    message: (e) => `lease ${e.lease}: ${e.action} failed: ${e.error}`,
    count: (e, m) => m.errors.inc({ code: e.code }),
  },
  builder_marked: {
    level: () => 'info',
    message: (e) =>
      `${e.pod} marked busy: evictions refused, Karpenter and the cluster autoscaler leave its node alone`,
    count: (_e, m) => m.marks.inc({ result: 'written' }),
  },
  builder_unmarked: {
    level: () => 'info',
    message: (e) => `${e.pod} no longer busy: marks removed`,
    count: (_e, m) => m.marks.inc({ result: 'removed' }),
  },
  mark_failed: {
    level: () => 'warn',
    message: (e) => `could not ${e.action} ${e.pod} (builds still flow; retrying in ${e.retryInMs}ms): ${e.error}`,
    count: (e, m) => {
      m.marks.inc({ result: 'failed' });
      m.errors.inc({ code: e.code });
    },
  },
  listener_closed: {
    level: () => 'info',
    message: (e) => `stopped accepting new connections; ${e.openConnections} open connections may finish`,
  },
  shutdown_finished: {
    level: () => 'info',
    message: (e) => `shutdown finished; ${e.closedByForce} connections closed at the end of the grace period`,
  },
} satisfies { [K in EventKind]: EventRule<K> };

/** Turns each event into one structured log line (with `code` on warnings and errors) and its metrics. */
export function createEventSink(log: Logger, metrics: Metrics, observers: EmitEvent[] = []): EmitEvent {
  return (event) => {
    const rule = rules[event.kind] as EventRule<EventKind>;
    rule.count?.(event, metrics);
    const level = rule.level(event);
    // A line below the level (connection_routed is debug) costs neither its fields nor its message.
    if (log.isLevelEnabled(level))
      log[level](rule.fields?.(event) ?? { event: event.kind, ...event, kind: undefined }, rule.message(event));
    for (const observe of observers) observe(event);
  };
}
