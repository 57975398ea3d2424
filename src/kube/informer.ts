import { ListWatch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from './api-error.ts';
import { GuardedWatch } from './guarded-watch.ts';

export interface InformerInputs<T extends KubernetesObject> {
  /** A name for logs and metrics, e.g. "statefulset/buildkitd". */
  resource: string;
  kubeConfig: KubeConfig;
  /** The watch path, e.g. /apis/apps/v1/namespaces/default/statefulsets. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  clock: Clock;
  /** First and largest delay between restarts after a failed list or watch. */
  backoff?: { initialMs: number; maxMs: number };
  /** Cuts each watched object down to what the cache needs (the list function slims its own items). */
  slim?: (object: T) => T;
  /** Replaces client-node's ListWatch (unit tests only). */
  openListWatch?: OpenListWatch<T>;
}

export interface InformerCallbacks {
  /** `watch_synced` after each successful list, `watch_failed` (with the retry delay) after each failure. */
  emit: EmitEvent;
}

/** The part of client-node's ListWatch the informer uses: the seam where unit tests script list and watch outcomes. */
export interface ListWatchStream<T extends KubernetesObject> {
  on(verb: 'add' | 'update' | 'delete', callback: (object: T) => void): void;
  on(verb: 'error', callback: (error: unknown) => void): void;
  /** Lists through `list`, then opens the watch; settles once the watch request is answered. */
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): readonly T[];
}

/** `onError` receives failures the client would otherwise drop as unhandled rejections (see GuardedWatch). */
export type OpenListWatch<T extends KubernetesObject> = (
  list: () => Promise<KubernetesListObject<T>>,
  onError: (error: unknown) => void,
) => ListWatchStream<T>;

// client-go's reflector rule: only a watch that stayed up this long proves the API server healthy again and
// resets the backoff; a list that succeeds while every watch fails must not (it would relist every 0.5 s).
export const WATCH_STABLE_AFTER_MS = 2 * 60_000;

export interface InformerStatus {
  /** The last list succeeded and no failure since: the cache may be trusted for decisions. */
  synced: boolean;
  /** Synced and the watch request was answered: the cache follows the API server live. */
  up: boolean;
  /** Listed successfully at least once since start: the gateway has a picture of the cluster to serve from. */
  everSynced: boolean;
  /** Stable code of the last failure while not synced (e.g. forbidden), for /readyz. */
  failure: { code: ErrorCode; message: string; status: number | undefined } | undefined;
}

/**
 * A list+watch cache that never gives up. The client's ListWatch stops on the first non-timeout error;
 * this restarts it with exponential backoff and a fresh list, so the cache is never trusted while it
 * might have missed events: `synced` is false from the error until the next list succeeds. The backoff
 * starts over only after a watch stayed up for WATCH_STABLE_AFTER_MS.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private current: ListWatchStream<T> | undefined;
  private lastKnown: readonly T[] = [];
  private status: Omit<InformerStatus, 'up'> = { synced: false, everSynced: false, failure: undefined };
  /** Clock time the current watch request was answered; undefined while there is none. */
  private watchUpSince: number | undefined;
  private listeners = new Set<() => void>();
  private restartTimer: Timer | undefined;
  /** Failures since a watch last stayed up for WATCH_STABLE_AFTER_MS; the exponent of the backoff. */
  private failures = 0;
  private stopped = false;
  private generation = 0;
  private readonly backoff: { initialMs: number; maxMs: number };

  private readonly inputs: InformerInputs<T>;
  private readonly emit: EmitEvent;
  private readonly openListWatch: OpenListWatch<T>;

  constructor(inputs: InformerInputs<T>, callbacks: InformerCallbacks) {
    this.inputs = inputs;
    this.emit = callbacks.emit;
    this.backoff = inputs.backoff ?? { initialMs: 500, maxMs: 30_000 };
    const { kubeConfig, path, labelSelector, fieldSelector, slim } = inputs;
    this.openListWatch =
      inputs.openListWatch ??
      ((list, onError) =>
        new ListWatch<T>(
          path,
          new GuardedWatch(kubeConfig, onError, slim as ((object: object) => object) | undefined),
          list,
          false,
          labelSelector,
          fieldSelector,
        ));
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.restartTimer?.cancel();
    this.watchUpSince = undefined;
    const watch = this.current;
    this.current = undefined;
    await watch?.stop();
  }

  /** Objects as last seen; kept through a watch outage so open traffic is not disturbed. */
  objects(): readonly T[] {
    return this.current && this.status.synced ? this.current.list() : this.lastKnown;
  }

  get state(): InformerStatus {
    return { ...this.status, up: this.status.synced && this.watchUpSince !== undefined };
  }

  get resource(): string {
    return this.inputs.resource;
  }

  /** Called after every change of objects or of sync state. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private connect(): void {
    const generation = ++this.generation;
    this.watchUpSince = undefined;
    const list = async () => {
      const result = await this.inputs.list();
      // ListWatch fills its cache after this promise settles; report once it has.
      setImmediate(() => {
        if (!this.isCurrent(generation, watch)) return;
        this.status = { synced: true, everSynced: true, failure: undefined };
        this.emit({ kind: 'watch_synced', resource: this.inputs.resource, objects: result.items.length });
        this.changed();
      });
      return result;
    };
    const watch = this.openListWatch(list, (error) => {
      if (generation === this.generation) this.failed(error);
    });
    const onObject = () => {
      if (this.isCurrent(generation, watch) && this.status.synced) this.changed();
    };
    watch.on('add', onObject);
    watch.on('update', onObject);
    watch.on('delete', onObject);
    // Once per run: a failure replaces `current`, so a second report from the same run is ignored.
    const onFailure = (error: unknown) => {
      if (this.isCurrent(generation, watch)) this.failed(error);
    };
    watch.on('error', onFailure);
    this.current = watch;
    watch.start().then(() => {
      // start() settles once the watch request is answered; a failed list or watch has replaced `current` by then.
      if (this.isCurrent(generation, watch)) this.watchUpSince = this.inputs.clock.now();
    }, onFailure);
  }

  private isCurrent(generation: number, watch: ListWatchStream<T>): boolean {
    return generation === this.generation && this.current === watch && !this.stopped;
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    if (this.current && this.status.synced) this.lastKnown = this.current.list();
    const status = apiStatus(error);
    const code = status === 403 || status === 401 ? ErrorCode.WatchForbidden : ErrorCode.WatchFailed;
    const upSince = this.watchUpSince;
    this.watchUpSince = undefined;
    if (upSince !== undefined && this.inputs.clock.now() - upSince >= WATCH_STABLE_AFTER_MS) this.failures = 0;
    const delay = Math.min(this.backoff.initialMs * 2 ** this.failures, this.backoff.maxMs);
    const retryInMs = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.failures += 1;
    this.status = {
      synced: false,
      everSynced: this.status.everSynced,
      failure: { code, message: apiMessage(error), status },
    };
    this.emit({
      kind: 'watch_failed',
      resource: this.inputs.resource,
      code,
      error: apiMessage(error),
      status,
      retryInMs,
    });
    const old = this.current;
    this.current = undefined;
    void old?.stop();
    this.changed();
    this.restartTimer?.cancel();
    this.restartTimer = this.inputs.clock.setTimer(retryInMs, () => {
      if (!this.stopped) this.connect();
    });
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
