import { Watch, type KubeConfig } from '@kubernetes/client-node';

type WatchArgs = Parameters<Watch['watch']>;

/**
 * The client's ListWatch reconnects from inside Watch's `done` callback (and handles events in an async
 * callback) and drops those promises, so a failure there — a credential file unreadable at reconnect, a
 * malformed event — is an unhandled rejection that ends the process. This Watch hands it to `onError`
 * instead, so the informer can mark itself unsynced and restart with backoff.
 */
export class GuardedWatch extends Watch {
  private readonly onError: (error: unknown) => void;

  constructor(config: KubeConfig, onError: (error: unknown) => void) {
    super(config);
    this.onError = onError;
  }

  override watch(path: WatchArgs[0], queryParams: WatchArgs[1], callback: WatchArgs[2], done: WatchArgs[3]): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, apiObj, watchObj) => this.guard(() => callback(phase, apiObj, watchObj)),
      (err) => this.guard(() => done(err)),
    );
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
