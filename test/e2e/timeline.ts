// A timeline of what the cluster did during the run, from watches (not polling): StatefulSet replicas
// as written by the gateway, buildkitd and gateway pods becoming ready, plus the scenarios' own marks.
import { KubeConfig, Watch } from '@kubernetes/client-node';

export interface TimelineEntry {
  /** Milliseconds since the run started. */
  t: number;
  source: 'statefulset' | 'pod' | 'scenario';
  text: string;
  replicas?: number;
  readyReplicas?: number;
}

interface StatefulSetLike {
  spec?: { replicas?: number };
  status?: { readyReplicas?: number };
}
interface PodLike {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

export class Timeline {
  readonly entries: TimelineEntry[] = [];
  private readonly started: number;
  private readonly aborts: AbortController[] = [];
  private readonly waiters = new Set<() => void>();
  private lastReplicas: number | undefined;
  private lastReady: number | undefined;
  private readonly podState = new Map<string, string>();
  private stopped = false;

  /** `started` (a performance.now() value) lets several timelines of one run share their origin. */
  constructor(started = performance.now()) {
    this.started = started;
  }

  now(): number {
    return performance.now() - this.started;
  }

  mark(text: string): void {
    this.push({ t: this.now(), source: 'scenario', text });
  }

  /** Desired replicas as last seen by the watch. */
  get replicas(): number | undefined {
    return this.lastReplicas;
  }

  get readyReplicas(): number {
    return this.lastReady ?? 0;
  }

  /** Every replica count the StatefulSet had since `sinceMs`. */
  replicasSince(sinceMs: number): number[] {
    return this.entries
      .filter((e) => e.source === 'statefulset' && e.t >= sinceMs && e.replicas !== undefined)
      .map((e) => e.replicas ?? 0);
  }

  /** Resolves when `condition` holds (checked on every watch event), rejects after timeoutMs. */
  async until(what: string, condition: () => boolean, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 1000));
        this.waiters.add(wake);
      });
    }
    return this.now();
  }

  async watch(namespace: string, statefulSet: string): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const watch = new Watch(kc);
    const start = async (
      path: string,
      query: Record<string, string>,
      onEvent: (type: string, obj: unknown) => void,
    ) => {
      // A watch ends with the server's timeout or a dropped connection; resume it until stop().
      const restart = () => {
        if (!this.stopped) setTimeout(() => void start(path, query, onEvent).catch(restart), 1000);
      };
      this.aborts.push(await watch.watch(path, query, onEvent, restart));
    };
    await start(
      `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
      { fieldSelector: `metadata.name=${statefulSet}` },
      (_type, obj) => {
        const sts = obj as StatefulSetLike;
        const replicas = sts.spec?.replicas ?? 0;
        const ready = sts.status?.readyReplicas ?? 0;
        if (replicas === this.lastReplicas && ready === this.lastReady) return;
        this.lastReplicas = replicas;
        this.lastReady = ready;
        this.push({
          t: this.now(),
          source: 'statefulset',
          text: `replicas=${replicas} ready=${ready}`,
          replicas,
          readyReplicas: ready,
        });
      },
    );
    await start(`/api/v1/namespaces/${namespace}/pods`, {}, (type, obj) => {
      const pod = obj as PodLike;
      const name = pod.metadata?.name ?? '?';
      const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      const state =
        type === 'DELETED'
          ? 'deleted'
          : pod.metadata?.deletionTimestamp
            ? 'terminating'
            : `${pod.status?.phase ?? 'Unknown'}${ready ? ', Ready' : ''}`;
      if (this.podState.get(name) === state) return;
      this.podState.set(name, state);
      this.push({ t: this.now(), source: 'pod', text: `${name}: ${state}` });
    });
  }

  stop(): void {
    this.stopped = true;
    for (const abort of this.aborts) abort.abort();
  }

  private push(entry: TimelineEntry): void {
    this.entries.push(entry);
    for (const wake of [...this.waiters]) wake();
  }
}
