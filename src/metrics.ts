import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfo } from './build-info.ts';
import { ErrorCode } from './errors.ts';

export type Metrics = ReturnType<typeof createMetrics>;

/** What the watch metrics read: an informer's name and state (kube/informer.ts's InformerStatus fits). */
export interface WatchSource {
  readonly resource: string;
  readonly state: { readonly up: boolean; readonly synced: boolean };
}

/** Every metric the gateway exports; one registry per gateway so tests can run several in one process. */
export function createMetrics() {
  let readPodLoads: () => Readonly<Record<string, number>> = () => ({});
  const registry = new Registry();
  let readWatches: () => readonly WatchSource[] = () => [];
  let readReportWriteAge: () => number | undefined = () => undefined;
  collectDefaultMetrics({ register: registry, prefix: 'bka_' });
  const registers = [registry];
  // Connections that ended, counted in plain numbers and handed to prom-client when /metrics is read: its
  // labelled inc() hashes the labels on every call, three calls per connection.
  const endedByOutcome = new Map<string, number>();
  let bytesUp = 0;
  let bytesDown = 0;
  return {
    registry,
    connectionsOpen: new Gauge({
      name: 'bka_connections_open',
      help: 'Client connections open now (held or spliced)',
      registers,
    }),
    connectionsHeld: new Gauge({
      name: 'bka_connections_held',
      help: 'Client connections held while buildkitd wakes up',
      registers,
    }),
    connectionsQueued: new Gauge({
      name: 'bka_connections_queued',
      help:
        'Held connections waiting in arrival order for room under --max-connections-per-replica, the pool being ' +
        'at --max-replicas (part of bka_connections_held)',
      registers,
    }),
    pendingBytes: new Gauge({
      name: 'bka_pending_bytes',
      help: 'Bytes held clients sent before buildkitd was ready, kept by the gateway (at most --max-pending-bytes)',
      registers,
    }),
    connectionsTotal: new Counter({
      name: 'bka_connections_total',
      help: 'Client connections ended, by outcome',
      labelNames: ['outcome'] as const,
      registers,
      collect() {
        for (const [outcome, count] of endedByOutcome) this.inc({ outcome }, count);
        endedByOutcome.clear();
      },
    }),
    holdDuration: new Histogram({
      name: 'bka_hold_duration_seconds',
      help: 'Time a connection was held before a backend took it (cold start as clients see it)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    bytesTotal: new Counter({
      name: 'bka_bytes_total',
      help: 'Bytes spliced, by direction (upstream: client to buildkitd)',
      labelNames: ['direction'] as const,
      registers,
      collect() {
        if (bytesUp > 0) this.inc({ direction: 'upstream' }, bytesUp);
        if (bytesDown > 0) this.inc({ direction: 'downstream' }, bytesDown);
        bytesUp = 0;
        bytesDown = 0;
      },
    }),
    scaleOperations: new Counter({
      name: 'bka_scale_operations_total',
      help: 'Writes to the statefulsets/scale subresource, by direction and result',
      labelNames: ['direction', 'result'] as const,
      registers,
    }),
    dialFailures: new Counter({
      name: 'bka_dial_failures_total',
      help: 'Failed connection attempts to a buildkitd pod, by error',
      labelNames: ['reason'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'bka_errors_total',
      help: 'Runtime failures, by stable error code',
      labelNames: ['code'] as const,
      registers,
      collect() {
        // Every code present at 0 from the start, so the alerts' increase() sees the first error.
        for (const code of Object.values(ErrorCode)) this.inc({ code }, 0);
      },
    }),
    replicas: new Gauge({
      name: 'bka_statefulset_replicas',
      help: 'buildkitd StatefulSet replicas as observed through the watch (desired = spec, ready = status)',
      labelNames: ['kind'] as const,
      registers,
    }),
    desiredReplicas: new Gauge({
      name: 'bka_desired_replicas',
      help: 'buildkitd replicas the current demand needs (clamped to min and max); the log line scale_decision says why',
      registers,
    }),
    replicasReporting: new Gauge({
      name: 'bka_gateway_replicas_reporting',
      help: 'Gateway replicas whose activity reports this replica reads, itself included',
      registers,
    }),
    staleReports: new Gauge({
      name: 'bka_gateway_stale_reports',
      help: 'Gateway replicas whose report is stale but still counted (their pod may still splice builds)',
      registers,
    }),
    wakes: new Counter({
      name: 'bka_wakes_total',
      help: 'Wakes by source: api = accepted POST /wake requests; connection = scale-ups from zero this replica wrote for waiting connections',
      labelNames: ['source'] as const,
      registers,
      collect() {
        // Present at 0 from the start, so increase() sees the first wake.
        for (const source of ['api', 'connection']) this.inc({ source }, 0);
      },
    }),
    steppedBack: new Gauge({
      name: 'bka_stepped_back',
      help: '1 while this replica is out of the Service (/readyz 503, BKA_PARTITIONED) because it alone cannot write its report Lease',
      registers,
    }),
    reportWriteAge: new Gauge({
      name: 'bka_report_write_age_seconds',
      help: 'Seconds since this replica last wrote its own report Lease (monotonic clock); above the lease duration the others count it as stale',
      registers,
      collect() {
        const age = readReportWriteAge();
        if (age !== undefined) this.set(age / 1000);
      },
    }),
    scaleDownBlocked: new Counter({
      name: 'bka_scale_down_blocked_total',
      help: 'Times a scale-down was held back by another replica whose report is stale',
      registers,
    }),
    affinity: new Counter({
      name: 'bka_affinity_total',
      help: "Connections routed with client-ip affinity: hit (the client's own builder) or miss (it was full)",
      labelNames: ['result'] as const,
      registers,
    }),
    podConnections: new Gauge({
      name: 'bka_pod_connections',
      help: 'Connections on each buildkitd pod, over every gateway replica (as this replica last heard)',
      labelNames: ['pod'] as const,
      registers,
      collect() {
        this.reset();
        for (const [pod, open] of Object.entries(readPodLoads())) this.set({ pod }, open);
      },
    }),
    busyBuilders: new Gauge({
      name: 'bka_busy_builders',
      help: 'buildkitd pods with a connection on some gateway replica (as this replica last heard): the leader marks them busy',
      registers,
      collect() {
        this.set(Object.keys(readPodLoads()).length);
      },
    }),
    marks: new Counter({
      name: 'bka_marks_total',
      help: 'Busy marks (label and annotations) on builder pods: written, removed, or failed to write (BKA_MARK_FAILED)',
      labelNames: ['result'] as const,
      registers,
      collect() {
        // Present at 0 from the start, so increase() sees the first one.
        for (const result of ['written', 'removed', 'failed']) this.inc({ result }, 0);
      },
    }),
    leader: new Gauge({
      name: 'bka_leader',
      help: '1 while this replica holds the leader Lease (the only one that scales down)',
      registers,
    }),
    readyBackends: new Gauge({
      name: 'bka_ready_backends',
      help: 'buildkitd pods the gateway may route to now',
      registers,
    }),
    // Liveness, not recency: a quiet healthy watch sees no events for hours and must not look stale.
    watchUp: new Gauge({
      name: 'bka_watch_up',
      help: '1 while the watch of the resource is synced and its watch stream connected',
      labelNames: ['resource'] as const,
      registers,
      collect() {
        for (const { resource, state } of readWatches()) this.set({ resource }, state.up ? 1 : 0);
      },
    }),
    watchSynced: new Gauge({
      name: 'bka_watch_synced',
      help: '1 while the last list of the resource succeeded and no watch failure followed (decisions need it)',
      labelNames: ['resource'] as const,
      registers,
      collect() {
        for (const { resource, state } of readWatches()) this.set({ resource }, state.synced ? 1 : 0);
      },
    }),
    watchRestarts: new Counter({
      name: 'bka_watch_restarts_total',
      help: 'Watch failures, each followed by a restart with a fresh list after backoff, by resource',
      labelNames: ['resource'] as const,
      registers,
      collect() {
        // Present at 0 from the start, so increase() sees the first restart.
        for (const { resource } of readWatches()) this.inc({ resource }, 0);
      },
    }),
    buildInfo: new Gauge({
      name: 'bka_build_info',
      help: 'Always 1; the labels say which version and revision of the gateway runs',
      labelNames: ['version', 'revision'] as const,
      registers,
      collect() {
        this.set({ version: buildInfo.version, revision: buildInfo.revision }, 1);
      },
    }),
    /** One connection ended: bka_connections_total and bka_bytes_total count it when they are next read. */
    countConnectionEnded(outcome: string, up: number, down: number): void {
      endedByOutcome.set(outcome, (endedByOutcome.get(outcome) ?? 0) + 1);
      bytesUp += up;
      bytesDown += down;
    },
    /** Where bka_pod_connections reads from: the scaler's latest loads per pod. */
    observePodLoads(read: () => Readonly<Record<string, number>>): void {
      readPodLoads = read;
    },
    /** Where the watch metrics read from; set once the informers exist. */
    observeWatches(watches: () => readonly WatchSource[]): void {
      readWatches = watches;
    },
    /** Where bka_report_write_age_seconds reads from (ms); only with leader election, which has a report. */
    observeReportWriteAge(read: () => number | undefined): void {
      readReportWriteAge = read;
    },
  };
}
