// The events of the gateway as one union keyed by `kind`: what happened to a connection, a scale decision,
// a watch, the shutdown. Components emit them; event-sink.ts derives the log line and metrics of each.
import type { ErrorCode } from './errors.ts';

export const ConnectionOutcome = {
  completed: 'completed',
  backendError: 'backend_error',
  backendTlsRefused: 'backend_tls_refused',
  clientError: 'client_error',
  readyTimeout: 'ready_timeout',
  capacityTimeout: 'capacity_timeout',
  scaleFailed: 'scale_failed',
  rejectedMaxConnections: 'rejected_max_connections',
  rejectedMaxPending: 'rejected_max_pending',
  rejectedPendingBytes: 'rejected_pending_bytes',
  rejectedShuttingDown: 'rejected_shutting_down',
  closedByShutdown: 'closed_by_shutdown',
  clientGoneWhileHeld: 'client_gone_while_held',
  closedBeforeData: 'closed_before_data',
  firstByteTimeout: 'first_byte_timeout',
} as const;
export type ConnectionOutcome = (typeof ConnectionOutcome)[keyof typeof ConnectionOutcome];

/** Why replicas were raised: connections waiting, a wake request (POST /wake), or --min-replicas. */
export type ScaleUpCause = 'connections' | 'wake' | 'minimum';

/** Everything worth logging or counting; logs, metrics and the E2E timeline all derive from these. */
export type GatewayEvent =
  | { kind: 'listening'; what: 'proxy' | 'metrics'; address: string; port: number }
  | { kind: 'connection_rejected'; outcome: ConnectionOutcome; client: string; code: ErrorCode }
  | { kind: 'connection_held'; id: number; client: string }
  | { kind: 'connection_queued'; id: number; client: string }
  | {
      kind: 'connection_routed';
      id: number;
      backend: string;
      heldMs: number | undefined;
      affinityHit?: boolean | undefined;
      queuedMs?: number | undefined;
    }
  | {
      kind: 'connection_closed';
      id: number;
      outcome: ConnectionOutcome;
      bytesUp: number;
      bytesDown: number;
      durationMs: number;
      queuedMs?: number | undefined;
      code?: ErrorCode;
      error?: string;
    }
  | { kind: 'dial_failed'; id: number; backend: string; error: string; attempt: number; code: ErrorCode }
  | {
      kind: 'scale';
      direction: 'up' | 'down';
      from: number;
      to: number;
      reason: string;
      cause?: ScaleUpCause | undefined;
    }
  | { kind: 'wake_requested'; replicas: number; forMs: number; until: string; client: string }
  | {
      kind: 'scale_failed';
      direction: 'up' | 'down';
      to: number;
      code: ErrorCode;
      error: string;
      status: number | undefined;
    }
  | { kind: 'scale_skipped'; direction: 'up' | 'down'; reason: string }
  | { kind: 'scale_recovered'; code: ErrorCode; reason: string }
  | { kind: 'wake_gave_up'; code: ErrorCode; attempts: number; error: string }
  | { kind: 'internal_error'; code: ErrorCode; what: string; error: string }
  | { kind: 'idle_timer_started'; timeoutMs: number }
  | { kind: 'idle_timer_canceled'; openConnections: number }
  | { kind: 'watch_synced'; resource: string; objects: number }
  | {
      kind: 'watch_failed';
      resource: string;
      code: ErrorCode;
      error: string;
      status: number | undefined;
      retryInMs: number;
    }
  | { kind: 'nodes_unwatched'; code: ErrorCode; error: string }
  | { kind: 'builders_draining'; pods: string[] }
  | { kind: 'backends_changed'; ready: string[] }
  | { kind: 'shutdown_started'; signal: string; openConnections: number; graceMs: number }
  | { kind: 'listener_closed'; openConnections: number }
  | { kind: 'shutdown_finished'; closedByForce: number }
  | {
      kind: 'scale_decision';
      demand: number;
      needed: number;
      replicasReporting: number;
      staleReports: number;
      waiting: string | undefined;
    }
  | { kind: 'scale_down_proposed'; from: number; to: number; pods: string; id: string }
  | { kind: 'scale_down_withdrawn'; pods: string; id: string; reason: string }
  | { kind: 'scale_down_blocked'; by: string[] }
  | { kind: 'report_expired'; identity: string; maxStalenessMs: number; code: ErrorCode }
  | { kind: 'partition_stepped_back'; unwrittenMs: number; confirmedBy: string; code: ErrorCode }
  | { kind: 'partition_recovered'; steppedBackMs: number; reason: string }
  | { kind: 'report_unwritten'; unwrittenMs: number; peersAsked: number; peersAnswered: number }
  | { kind: 'leader_changed'; lease: string; identity: string; leading: boolean; reason: string }
  | { kind: 'builder_marked'; pod: string }
  | { kind: 'builder_unmarked'; pod: string }
  | {
      kind: 'mark_failed';
      pod: string;
      action: 'mark' | 'unmark';
      code: ErrorCode;
      error: string;
      status: number | undefined;
      retryInMs: number;
    }
  | {
      kind: 'lease_failed';
      lease: string;
      action: 'acquire' | 'renew' | 'release' | 'annotate' | 'publish' | 'delete';
      code: ErrorCode;
      error: string;
      status: number | undefined;
    };

export type EventKind = GatewayEvent['kind'];

/** Where components send their events: createEventSink (event-sink.ts) turns them into logs and metrics. */
export type EmitEvent = (event: GatewayEvent) => void;
