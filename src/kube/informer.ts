import { ListWatch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from './api-error.ts';
import { GuardedWatch } from './guarded-watch.ts';

export interface InformerOptions<T extends KubernetesObject> {
  /** A name for logs and metrics, e.g. "statefulset/buildkitd". */
  resource: string;
  kubeConfig: KubeConfig;
  /** The watch path, e.g. /apis/apps/v1/namespaces/default/statefulsets. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  clock: Clock;
  emit: EmitEvent;
  /** First and largest delay between restarts after a failed list or watch. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface InformerStatus {
  synced: boolean;
  /** Stable code of the last failure while not synced (e.g. forbidden), for /readyz. */
  failure: { code: ErrorCode; message: string; status: number | undefined } | undefined;
  lastEventAt: number | undefined;
}

/**
 * A list+watch cache that never gives up. The client's ListWatch stops on the first non-timeout error;
 * this restarts it with exponential backoff and a fresh list, so the cache is never trusted while it
 * might have missed events: `synced` is false from the error until the next list succeeds.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private current: ListWatch<T> | undefined;
  private lastKnown: readonly T[] = [];
  private status: InformerStatus = { synced: false, failure: undefined, lastEventAt: undefined };
  private listeners = new Set<() => void>();
  private restartTimer: Timer | undefined;
  private failures = 0;
  private stopped = false;
  private generation = 0;
  private readonly backoff: { initialMs: number; maxMs: number };

  private readonly options: InformerOptions<T>;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.restartTimer?.cancel();
    const watch = this.current;
    this.current = undefined;
    await watch?.stop();
  }

  /** Objects as last seen; kept through a watch outage so open traffic is not disturbed. */
  objects(): readonly T[] {
    return this.current && this.status.synced ? this.current.list() : this.lastKnown;
  }

  get state(): InformerStatus {
    return this.status;
  }

  get resource(): string {
    return this.options.resource;
  }

  /** Called after every change of objects or of sync state. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private connect(): void {
    const generation = ++this.generation;
    const { kubeConfig, path, labelSelector, fieldSelector } = this.options;
    const list = async () => {
      const result = await this.options.list();
      // ListWatch fills its cache after this promise settles; report once it has.
      setImmediate(() => {
        if (generation !== this.generation || this.stopped) return;
        this.failures = 0;
        this.status = { synced: true, failure: undefined, lastEventAt: this.options.clock.now() };
        this.options.emit({ kind: 'watch_synced', resource: this.options.resource, objects: result.items.length });
        this.changed();
      });
      return result;
    };
    const watch = new ListWatch<T>(path, new GuardedWatch(kubeConfig, (error) => generation === this.generation && this.failed(error)), list, false, labelSelector, fieldSelector);
    const onObject = () => {
      if (generation !== this.generation) return;
      this.status = { ...this.status, lastEventAt: this.options.clock.now() };
      if (this.status.synced) this.changed();
    };
    watch.on('add', onObject);
    watch.on('update', onObject);
    watch.on('delete', onObject);
    watch.on('error', (error: unknown) => {
      if (generation === this.generation) this.failed(error);
    });
    this.current = watch;
    watch.start().catch((error: unknown) => {
      if (generation === this.generation) this.failed(error);
    });
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    if (this.current && this.status.synced) this.lastKnown = this.current.list();
    const status = apiStatus(error);
    const code = status === 403 || status === 401 ? ErrorCode.WatchForbidden : ErrorCode.WatchFailed;
    const delay = Math.min(this.backoff.initialMs * 2 ** this.failures, this.backoff.maxMs);
    const retryInMs = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.failures += 1;
    this.status = { synced: false, failure: { code, message: apiMessage(error), status }, lastEventAt: this.status.lastEventAt };
    this.options.emit({ kind: 'watch_failed', resource: this.options.resource, code, error: apiMessage(error), status, retryInMs });
    const old = this.current;
    this.current = undefined;
    void old?.stop();
    this.changed();
    this.restartTimer?.cancel();
    this.restartTimer = this.options.clock.setTimer(retryInMs, () => {
      if (!this.stopped) this.connect();
    });
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
