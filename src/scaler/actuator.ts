import type { Clock, Timer } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent, ScaleUpCause } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import type { ScaleState } from '../kube/scale-subresource.ts';

/** Reads and writes the StatefulSet's replicas (the scale subresource in production, a fake in unit tests). */
export interface ScaleTarget {
  read(signal?: AbortSignal): Promise<ScaleState>;
  write(replicas: number, resourceVersion: string | undefined, signal?: AbortSignal): Promise<void>;
}

/**
 * What guards a scale-down: `stillAllowed` is asked again between the read and the write (leadership and the
 * proposal may have changed while the read was on its way), and `signal` aborts both when the lead is lost.
 */
export interface ScaleDownFence {
  stillAllowed: () => boolean;
  signal?: AbortSignal | undefined;
}

export interface ScaleActuatorInputs {
  target: ScaleTarget;
  clock: Clock;
  /** Largest delay between retries of a failed write (default 5 s). */
  retryMs?: number;
  /** How long after a failed write or check new connections fail at once without asking the API server again (default 5 s). */
  failureHoldMs?: number;
  /**
   * Re-checks of a permanent failure (forbidden, not found) while nothing else asks: the first comes after
   * `initialMs` and confirms the failure for /readyz, then the delay doubles up to `maxMs` (default 2 s, 30 s).
   * Re-check at 2 s: a kubelet probing every 5 s with failureThreshold 2 never sees a one-off 403 twice.
   */
  failureRecheck?: { initialMs: number; maxMs: number };
}

export interface ScaleActuatorCallbacks {
  emit: EmitEvent;
  /** A permanent failure (forbidden, not found) or a wake given up: held clients fail with it at once. */
  failed?: (error: GatewayError) => void;
}

const maxAttempts = 20;

/** A permanent scale failure, kept until a write, a re-check or the watch shows it is over. */
interface ScaleFailure {
  error: GatewayError;
  since: number;
  lastFailedAt: number;
  /** Seen again by a later check: a single 403 (API server just restarted) must not turn /readyz red. */
  confirmed: boolean;
  recheckMs: number;
  recheck: Timer | undefined;
}

/**
 * The only code that writes replicas. Up is "at least N" (idempotent: any replica may do it, and it never
 * lowers what another writer asked for); down is "from exactly R to R-1" with the resourceVersion it read,
 * so a scale-up that lands in between makes the scale-down fail instead of undoing it. Permanent failures
 * (forbidden, not found) are kept until a write, a re-check or the watch shows they are over: new clients
 * fail fast with them, and /readyz reports them once a second check has confirmed them.
 */
export class ScaleActuator {
  private readonly target: ScaleTarget;
  private readonly clock: Clock;
  private readonly retryMs: number;
  private readonly failureHoldMs: number;
  private readonly failureRecheck: { initialMs: number; maxMs: number };
  private readonly callbacks: ScaleActuatorCallbacks;
  private failure: ScaleFailure | undefined;
  private inFlight = 0;

  constructor(inputs: ScaleActuatorInputs, callbacks: ScaleActuatorCallbacks) {
    this.target = inputs.target;
    this.clock = inputs.clock;
    this.retryMs = inputs.retryMs ?? 5000;
    this.failureHoldMs = inputs.failureHoldMs ?? 5000;
    this.failureRecheck = inputs.failureRecheck ?? { initialMs: 2000, maxMs: 30_000 };
    this.callbacks = callbacks;
  }

  /** A permanent reason why scaling cannot work right now: new connections fail at once with it. */
  currentFailure(): GatewayError | undefined {
    if (this.failure && this.clock.now() - this.failure.lastFailedAt < this.failureHoldMs) return this.failure.error;
    return undefined;
  }

  /** What /readyz reports: a permanent failure for as long as it lasts, once a second check has seen it. */
  readinessFailure(): GatewayError | undefined {
    return this.failure?.confirmed ? this.failure.error : undefined;
  }

  /** The synced watch lists the StatefulSet: a "not found" from the scale subresource is over. */
  statefulSetSeen(): void {
    if (this.failure?.error.code === ErrorCode.StatefulSetNotFound)
      this.clearFailure('the StatefulSet is in the synced watch');
  }

  /**
   * Makes sure at least `replicas` are wanted, retrying transient failures with backoff while `stillWanted`
   * says so. Resolves when done or given up (a give-up fails the held clients with BKA_WAKE_GAVE_UP; the
   * next demand tries again).
   */
  async ensureAtLeast(
    replicas: number,
    reason: string,
    stillWanted: () => boolean,
    cause?: ScaleUpCause,
  ): Promise<void> {
    this.inFlight += 1;
    try {
      let lastError = '';
      for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
        try {
          const state = await this.target.read();
          if (this.failure?.error.code === ErrorCode.StatefulSetNotFound)
            this.clearFailure('the scale subresource answered');
          if (state.replicas >= replicas) {
            this.callbacks.emit({
              kind: 'scale_skipped',
              direction: 'up',
              reason: `already at ${state.replicas} replicas`,
            });
          } else {
            await this.target.write(replicas, state.resourceVersion);
            this.callbacks.emit({ kind: 'scale', direction: 'up', from: state.replicas, to: replicas, reason, cause });
            this.clearFailure('scale up succeeded');
          }
          return;
        } catch (error) {
          if (apiStatus(error) === 409) continue; // someone else wrote in between; read again
          const failure = this.classify(error, 'up', replicas);
          if (failure.code !== ErrorCode.ScaleFailed) {
            this.fail(failure);
            return;
          }
          lastError = apiMessage(error);
          if (!stillWanted()) return;
          await new Promise<void>((resolve) =>
            this.clock.setTimer(Math.min(250 * 2 ** (attempt - 1), this.retryMs), resolve),
          );
          if (!stillWanted()) return;
        }
      }
      // The clients held now are told why at once (not at their deadline, with the wrong cause).
      this.callbacks.emit({
        kind: 'wake_gave_up',
        code: ErrorCode.WakeGaveUp,
        attempts: maxAttempts,
        error: lastError,
      });
      this.notify(
        new GatewayError(
          ErrorCode.WakeGaveUp,
          `gave up waking buildkitd after ${maxAttempts} failed attempts: ${lastError}`,
        ),
      );
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Lowers replicas from exactly `from` to `to`; false if the scale is not at `from`, the fence says no, or the write failed. */
  async scaleDown(from: number, to: number, reason: string, fence?: ScaleDownFence): Promise<boolean> {
    this.inFlight += 1;
    try {
      const state = await this.target.read(fence?.signal);
      if (state.replicas !== from) {
        this.callbacks.emit({
          kind: 'scale_skipped',
          direction: 'down',
          reason: `the StatefulSet is at ${state.replicas} replicas, not ${from}`,
        });
        return false;
      }
      if (fence && (fence.signal?.aborted || !fence.stillAllowed())) {
        this.callbacks.emit({
          kind: 'scale_skipped',
          direction: 'down',
          reason: 'no longer the leader, or the proposal changed, while reading the scale',
        });
        return false;
      }
      await this.target.write(to, state.resourceVersion, fence?.signal);
      this.clearFailure('scale down succeeded');
      this.callbacks.emit({ kind: 'scale', direction: 'down', from, to, reason });
      return true;
    } catch (error) {
      if (apiStatus(error) === 409) {
        this.callbacks.emit({
          kind: 'scale_skipped',
          direction: 'down',
          reason: 'the scale changed while writing (someone scaled up)',
        });
      } else if (fence?.signal?.aborted) {
        this.callbacks.emit({
          kind: 'scale_skipped',
          direction: 'down',
          reason: 'aborted: this replica stopped leading',
        });
      } else {
        const failure = this.classify(error, 'down', to);
        if (failure.code !== ErrorCode.ScaleFailed) this.fail(failure);
      }
      return false;
    } finally {
      this.inFlight -= 1;
    }
  }

  private classify(error: unknown, direction: 'up' | 'down', to: number): GatewayError {
    const status = apiStatus(error);
    const message = apiMessage(error);
    const code = permanentCode(status) ?? ErrorCode.ScaleFailed;
    this.callbacks.emit({ kind: 'scale_failed', direction, to, code, error: message, status });
    return new GatewayError(code, `scale ${direction} to ${to} failed: ${message}`, { cause: error });
  }

  /** Records a permanent failure from the API server, tells held connections, and starts the re-checks. */
  private fail(error: GatewayError): void {
    const now = this.clock.now();
    const known = this.failure;
    if (known && known.error.code === error.code) {
      known.error = error;
      known.lastFailedAt = now;
      if (now - known.since >= this.failureRecheck.initialMs) known.confirmed = true;
    } else {
      known?.recheck?.cancel();
      this.failure = {
        error,
        since: now,
        lastFailedAt: now,
        confirmed: false,
        recheckMs: this.failureRecheck.initialMs,
        recheck: undefined,
      };
      this.scheduleRecheck();
    }
    this.notify(error);
  }

  private notify(error: GatewayError): void {
    this.callbacks.failed?.(error);
  }

  private clearFailure(reason: string): void {
    const known = this.failure;
    if (!known) return;
    known.recheck?.cancel();
    this.failure = undefined;
    this.callbacks.emit({ kind: 'scale_recovered', code: known.error.code, reason });
  }

  private scheduleRecheck(): void {
    const known = this.failure;
    if (!known) return;
    known.recheck = this.clock.setTimer(known.recheckMs, () => void this.recheck(known));
    known.recheckMs = Math.min(known.recheckMs * 2, this.failureRecheck.maxMs);
  }

  /** Asks the API server whether the failure is over: a read, then a write of the replicas just read (a no-op). */
  private async recheck(known: ScaleFailure): Promise<void> {
    if (this.failure !== known) return;
    if (this.inFlight > 0) {
      this.scheduleRecheck(); // that request is the check
      return;
    }
    try {
      const state = await this.target.read();
      await this.target.write(state.replicas, state.resourceVersion);
      if (this.failure === known) this.clearFailure('a re-check of the scale subresource succeeded');
    } catch (error) {
      if (this.failure !== known) return;
      const status = apiStatus(error);
      // A conflict got past authorization and found the object: the failure is over.
      if (status === 409) {
        this.clearFailure('a re-check of the scale subresource succeeded');
        return;
      }
      const code = permanentCode(status);
      if (code !== undefined)
        this.fail(new GatewayError(code, `scale check failed: ${apiMessage(error)}`, { cause: error }));
      if (this.failure === known) this.scheduleRecheck(); // a different failure brought its own schedule
    }
  }
}

function permanentCode(status: number | undefined): ErrorCode | undefined {
  return status === 403 || status === 401
    ? ErrorCode.ScaleForbidden
    : status === 404
      ? ErrorCode.StatefulSetNotFound
      : undefined;
}
