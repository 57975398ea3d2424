import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

/** Every metric the gateway exports; one registry per gateway so tests can run several in one process. */
export interface WatchReading {
  resource: string;
  synced: boolean;
  /** Seconds since the last list or event; undefined before the first one. */
  ageSeconds: number | undefined;
}

export function createMetrics() {
  const registry = new Registry();
  let readWatches: () => WatchReading[] = () => [];
  collectDefaultMetrics({ register: registry, prefix: 'bka_' });
  const registers = [registry];
  return {
    registry,
    connectionsOpen: new Gauge({ name: 'bka_connections_open', help: 'Client connections open now (held or spliced)', registers }),
    connectionsHeld: new Gauge({ name: 'bka_connections_held', help: 'Client connections held while buildkitd wakes up', registers }),
    pendingBytes: new Gauge({ name: 'bka_pending_bytes', help: 'Bytes held clients sent before buildkitd was ready, kept by the gateway (at most --max-pending-bytes)', registers }),
    connectionsTotal: new Counter({
      name: 'bka_connections_total',
      help: 'Client connections ended, by outcome',
      labelNames: ['outcome'] as const,
      registers,
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
    }),
    replicas: new Gauge({
      name: 'bka_statefulset_replicas',
      help: 'buildkitd StatefulSet replicas as observed through the watch (desired = spec, ready = status)',
      labelNames: ['kind'] as const,
      registers,
    }),
    readyBackends: new Gauge({ name: 'bka_ready_backends', help: 'buildkitd pods the gateway may route to now', registers }),
    watchEventAge: new Gauge({
      name: 'bka_watch_last_event_age_seconds',
      help: 'Seconds since the last list or watch event, by resource',
      labelNames: ['resource'] as const,
      registers,
      collect() {
        for (const watch of readWatches()) if (watch.ageSeconds !== undefined) this.set({ resource: watch.resource }, watch.ageSeconds);
      },
    }),
    watchSynced: new Gauge({
      name: 'bka_watch_synced',
      help: '1 when the watch of the resource is synced and connected',
      labelNames: ['resource'] as const,
      registers,
      collect() {
        for (const watch of readWatches()) this.set({ resource: watch.resource }, watch.synced ? 1 : 0);
      },
    }),
    /** Where the watch gauges read from; set once the informers exist. */
    observeWatches(read: () => WatchReading[]): void {
      readWatches = read;
    },
  };
}
