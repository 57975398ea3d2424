import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { ListWatchStream, OpenListWatch } from '../../src/kube/informer.ts';

/** One list+watch run in memory: start() lists through the informer, then the watch opens or fails as scripted. */
class FakeListWatch<T extends KubernetesObject> implements ListWatchStream<T> {
  private readonly errorCallbacks: Array<(error: unknown) => void> = [];
  private items: T[] = [];
  private readonly listThroughInformer: () => Promise<KubernetesListObject<T>>;
  private readonly watchError: () => unknown;

  constructor(listThroughInformer: () => Promise<KubernetesListObject<T>>, watchError: () => unknown) {
    this.listThroughInformer = listThroughInformer;
    this.watchError = watchError;
  }

  // No object events: these tests are about list and watch outcomes, not cache contents.
  on(verb: 'add' | 'update' | 'delete', callback: (object: T) => void): void;
  on(verb: 'error', callback: (error: unknown) => void): void;
  on(verb: string, callback: (value: never) => void): void {
    if (verb === 'error') this.errorCallbacks.push(callback as (error: unknown) => void);
  }

  async start(): Promise<void> {
    try {
      this.items = (await this.listThroughInformer()).items;
    } catch (error) {
      this.fail(error);
      return;
    }
    // The watch request is network I/O: it is answered on a later turn of the event loop than the list.
    await new Promise((resolve) => setImmediate(resolve));
    const error = this.watchError();
    if (error !== undefined) this.fail(error);
  }

  async stop(): Promise<void> {}

  list(): readonly T[] {
    return this.items;
  }

  /** The open watch breaks (connection reset, API server gone). */
  fail(error: unknown): void {
    for (const callback of this.errorCallbacks) callback(error);
  }
}

/** The API side of the informer's ListWatch seam: counts lists and decides whether each watch opens. */
export class FakeListWatchApi<T extends KubernetesObject> {
  lists = 0;
  items: T[] = [];
  /** What the next watch requests fail with; undefined lets them open. */
  watchError: unknown;
  private readonly runs: FakeListWatch<T>[] = [];

  readonly open: OpenListWatch<T> = (informerList) => {
    const run = new FakeListWatch<T>(informerList, () => this.watchError);
    this.runs.push(run);
    return run;
  };

  /** Answers the informer's list call. */
  readonly list = (): Promise<KubernetesListObject<T>> => {
    this.lists += 1;
    return Promise.resolve({
      apiVersion: 'v1',
      kind: 'List',
      metadata: { resourceVersion: String(this.lists) },
      items: this.items,
    });
  };

  /** The run the informer is using now. */
  get current(): FakeListWatch<T> {
    const run = this.runs.at(-1);
    if (!run) throw new Error('the informer has not started a list+watch');
    return run;
  }
}

/** Errors shaped like the ones client-node's Watch reports. */
export const watchErrors = {
  forbidden: () => Object.assign(new Error('Forbidden'), { statusCode: 403 }),
  reset: () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
};
