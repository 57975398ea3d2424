import type { V1Pod } from '@kubernetes/client-node';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import type { PodMetadataPatch, PodWriter } from '../kube/pods.ts';
import { carriesOurMarks, markPatch, unmarkPatch } from './busy-mark-patches.ts';

export interface BusyMarkerInputs {
  /** Builder pods with a connection (spliced or being dialled) on any gateway replica, as the scaler counts them. */
  busyPods: () => Iterable<string>;
  /** The pods carrying the busy label (a watch), and whether that watch has listed once. */
  labelledPods: () => readonly V1Pod[];
  labelledPodsSynced: () => boolean;
  /** Only this replica writes while true: the leader, or a lone gateway. */
  isWriter: () => boolean;
  /** Our StatefulSet's pods only: another gateway's builders in the same namespace are its business. */
  isBuilder: (podName: string) => boolean;
  pods: PodWriter;
  clock: Clock;
  /** First and largest wait before a pod whose write failed is tried again (default 1 s, 30 s). */
  retry?: { initialMs: number; maxMs: number };
}

export interface BusyMarkerCallbacks {
  emit: EmitEvent;
}

/** How long a write we made counts as done while the watch has not shown it yet. */
const writeSettleMs = 10_000;

/**
 * Keeps the busy marks on exactly the builder pods that have a connection on some gateway replica. Level
 * triggered: every pass compares what the reports say with what the watch shows and writes only the
 * difference, so a lost leader, a crashed replica or a restart leaves nothing behind once a writer runs.
 */
export class BusyMarker {
  private readonly inputs: BusyMarkerInputs;
  private readonly callbacks: BusyMarkerCallbacks;
  private readonly retry: { initialMs: number; maxMs: number };
  private scheduled = false;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Writes that succeeded but that the watch may not show yet: the state we wrote, until when we trust it. */
  private readonly written = new Map<string, { marked: boolean; until: number }>();
  private readonly failures = new Map<string, { count: number; retryAt: number; timer: Timer }>();

  constructor(inputs: BusyMarkerInputs, callbacks: BusyMarkerCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    this.retry = inputs.retry ?? { initialMs: 1_000, maxMs: 30_000 };
  }

  /** Compare and write soon; many triggers in one tick cost one pass. */
  requestReconcile(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /** One last pass after the last connection closed (a lone gateway takes its marks off before it exits), then stop. */
  async finish(): Promise<void> {
    await this.run();
    this.stopped = true;
    for (const failure of this.failures.values()) failure.timer.cancel();
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    if (this.stopped || !this.inputs.isWriter() || !this.inputs.labelledPodsSynced()) return;
    const now = this.inputs.clock.now();
    const busy = new Set([...this.inputs.busyPods()].filter((name) => this.inputs.isBuilder(name)));
    const seen = new Map<string, V1Pod>();
    for (const pod of this.inputs.labelledPods()) {
      const name = pod.metadata?.name;
      if (name !== undefined && this.inputs.isBuilder(name)) seen.set(name, pod);
    }
    const marked = (name: string): boolean => {
      const observed = seen.get(name);
      const isMarked = observed !== undefined && carriesOurMarks(observed);
      const wrote = this.written.get(name);
      if (wrote && (wrote.marked === isMarked || now >= wrote.until)) this.written.delete(name);
      else if (wrote) return wrote.marked;
      return isMarked;
    };
    for (const name of busy) {
      if (!marked(name) && this.mayTry(name, now)) await this.mark(name, seen.get(name));
    }
    for (const [name, pod] of seen) {
      if (!busy.has(name) && marked(name) && this.mayTry(name, now)) await this.unmark(name, pod);
    }
  }

  private async mark(name: string, observed: V1Pod | undefined): Promise<void> {
    try {
      const patch = await this.patchFresh(name, observed, markPatch);
      this.succeeded(name, true);
      if (patch) this.callbacks.emit({ kind: 'builder_marked', pod: name });
    } catch (error) {
      this.failed(name, 'mark', error);
    }
  }

  private async unmark(name: string, observed: V1Pod): Promise<void> {
    try {
      const patch = await this.patchFresh(name, observed, unmarkPatch);
      this.succeeded(name, false);
      if (patch) this.callbacks.emit({ kind: 'builder_unmarked', pod: name });
    } catch (error) {
      this.failed(name, 'unmark', error);
    }
  }

  /**
   * Patches the pod as `plan` says from the version we know; if it changed meanwhile (409) or is not in the
   * watch (no busy label yet), from a fresh read. Returns the patch written, undefined when none was needed.
   */
  private async patchFresh(
    name: string,
    observed: V1Pod | undefined,
    plan: (pod: V1Pod) => PodMetadataPatch | undefined,
  ): Promise<PodMetadataPatch | undefined> {
    for (let attempt = 0; ; attempt += 1) {
      const pod = attempt === 0 && observed ? observed : await this.inputs.pods.get(name);
      if (!pod) return undefined; // gone: its connections end with it
      const patch = plan(pod);
      if (!patch) return undefined;
      try {
        await this.inputs.pods.patchMetadata(name, patch);
        return patch;
      } catch (error) {
        if (apiStatus(error) !== 409 || attempt >= 2) throw error;
      }
    }
  }

  private succeeded(name: string, marked: boolean): void {
    this.written.set(name, { marked, until: this.inputs.clock.now() + writeSettleMs });
    this.failures.get(name)?.timer.cancel();
    this.failures.delete(name);
  }

  private failed(name: string, action: 'mark' | 'unmark', error: unknown): void {
    const status = apiStatus(error);
    if (status === 404) return; // gone meanwhile: nothing left to mark
    const count = (this.failures.get(name)?.count ?? 0) + 1;
    this.failures.get(name)?.timer.cancel();
    const waitMs = Math.min(this.retry.maxMs, this.retry.initialMs * 2 ** (count - 1));
    const timer = this.inputs.clock.setTimer(waitMs, () => this.requestReconcile());
    this.failures.set(name, { count, retryAt: this.inputs.clock.now() + waitMs, timer });
    this.callbacks.emit({
      kind: 'mark_failed',
      pod: name,
      action,
      code: ErrorCode.MarkFailed,
      error: apiMessage(error),
      status,
      retryInMs: waitMs,
    });
  }

  private mayTry(name: string, now: number): boolean {
    const failure = this.failures.get(name);
    return failure === undefined || now >= failure.retryAt;
  }
}
