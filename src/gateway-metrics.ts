import type { V1StatefulSet } from '@kubernetes/client-node';
import type { BackendSet } from './backends/backend-set.ts';
import type { EmitEvent } from './events.ts';
import type { ResilientInformer } from './kube/informer.ts';
import type { Metrics, WatchSource } from './metrics.ts';

/** The gauges and the one log line that follow the parts' state, wired to each part's change. */
export function followInMetrics(
  parts: {
    metrics: Metrics;
    statefulSet: ResilientInformer<V1StatefulSet>;
    backends: BackendSet;
    /** Every watch, for bka_watch_up and its restarts. */
    watches: () => readonly WatchSource[];
    /** Connections per builder pod over every replica, as the scaler decided last. */
    loads: () => Readonly<Record<string, number>>;
    /** With leader election: how long this replica's report went unwritten. */
    partition: { unwrittenMs(): number } | undefined;
  },
  callbacks: { emit: EmitEvent },
): void {
  const { metrics, statefulSet, backends, partition } = parts;
  metrics.observeWatches(parts.watches);
  metrics.observePodLoads(parts.loads);
  if (partition) metrics.observeReportWriteAge(() => partition.unwrittenMs());
  statefulSet.onChange(() => {
    const sts = statefulSet.objects()[0];
    metrics.replicas.set({ kind: 'desired' }, sts?.spec?.replicas ?? 0);
    metrics.replicas.set({ kind: 'ready' }, sts?.status?.readyReplicas ?? 0);
  });
  let lastReady = '';
  backends.onChange(() => {
    const ready = backends.ready().map((b) => `${b.podName}=${b.host}:${b.port}`);
    metrics.readyBackends.set(ready.length);
    const text = ready.join(',');
    if (text !== lastReady) {
      lastReady = text;
      callbacks.emit({ kind: 'backends_changed', ready });
    }
  });
}
