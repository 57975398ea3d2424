import { STATUS_CODES } from 'node:http';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { openKubeRequest } from './rest.ts';

type WatchArgs = Parameters<Watch['watch']>;

/** Client-go's and the client's own watch timeout: no byte for this long and the watch is restarted. */
const WATCH_INACTIVITY_TIMEOUT_MS = 30_000;

/**
 * The client's Watch contract (what its ListWatch calls), over node:https instead of undici (see
 * openKubeRequest): `done` is called once, with the error (HTTP status in `statusCode`, a TimeoutError
 * after WATCH_INACTIVITY_TIMEOUT_MS without a byte) or null when the server ends the watch.
 *
 * Guarded: the client's ListWatch reconnects from inside `done` (and handles events in an async callback)
 * and drops those promises, so a failure there — a credential file unreadable at reconnect, a malformed
 * event — would be an unhandled rejection that ends the process. It goes to `onError` instead, so the
 * informer can mark itself unsynced and restart with backoff.
 */
export class GuardedWatch extends Watch {
  private readonly kubeConfig: KubeConfig;
  private readonly onError: (error: unknown) => void;
  private readonly slim: ((object: object) => object) | undefined;

  /** `slim` cuts each watched object down to what the cache needs (ERROR events are passed as they are). */
  constructor(config: KubeConfig, onError: (error: unknown) => void, slim?: (object: object) => object) {
    super(config);
    this.kubeConfig = config;
    this.onError = onError;
    this.slim = slim;
  }

  override async watch(
    path: WatchArgs[0],
    queryParams: WatchArgs[1],
    callback: WatchArgs[2],
    done: WatchArgs[3],
  ): Promise<AbortController> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('No currently active cluster');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    for (const [key, value] of Object.entries(queryParams))
      if (value !== undefined) url.searchParams.set(key, String(value));

    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = (error: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      this.guard(() => done(error));
    };
    const restartTimer = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => finish(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
        WATCH_INACTIVITY_TIMEOUT_MS,
      );
      timer.unref();
    };
    restartTimer();
    try {
      const response = await openKubeRequest(this.kubeConfig, 'GET', url, {
        headers: { accept: 'application/json' },
        signal: controller.signal,
      });
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        finish(
          Object.assign(new Error(response.statusMessage || STATUS_CODES[status] || 'Internal Server Error'), {
            statusCode: status,
          }),
        );
        return controller;
      }
      restartTimer();
      // One JSON event per line; a line may span chunks.
      let partial = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        restartTimer();
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.deliver(line, callback);
      });
      response.once('error', finish);
      response.once('close', () => finish(null));
    } catch (error) {
      finish(error);
    }
    return controller;
  }

  private deliver(line: string, callback: WatchArgs[2]): void {
    let event: { type: string; object: object };
    try {
      event = JSON.parse(line) as { type: string; object: object };
    } catch {
      return; // the client's Watch skips a line that is not JSON too
    }
    if (this.slim && event.type !== 'ERROR' && event.type !== 'BOOKMARK') event.object = this.slim(event.object);
    this.guard(() => callback(event.type, event.object, event));
  }

  private guard(call: () => unknown): void {
    try {
      const result = call();
      if (result instanceof Promise) result.catch(this.onError);
    } catch (error) {
      this.onError(error);
    }
  }
}
