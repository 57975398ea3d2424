import type { Clock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import type { ScaleState } from '../kube/scale-subresource.ts';

/** Reads and writes the StatefulSet's replicas (the scale subresource in production, a fake in unit tests). */
export interface ScaleTarget {
  read(): Promise<ScaleState>;
  write(replicas: number, resourceVersion: string | undefined): Promise<void>;
}

export interface ScaleActuatorOptions {
  target: ScaleTarget;
  clock: Clock;
  emit: EmitEvent;
  /** Largest delay between retries of a failed write. */
  retryMs?: number;
}

const maxAttempts = 20;

/**
 * The only code that writes replicas. Up is "at least N" (idempotent: any replica may do it, and it never
 * lowers what another writer asked for); down is "from exactly R to R-1" with the resourceVersion it read,
 * so a scale-up that lands in between makes the scale-down fail instead of undoing it. Permanent failures
 * (forbidden, not found) are kept until a later call succeeds, for fast failure of held clients and /readyz.
 */
export class ScaleActuator {
  private readonly o: Required<ScaleActuatorOptions>;
  private failure: GatewayError | undefined;
  private readonly failureListeners = new Set<(error: GatewayError) => void>();

  constructor(options: ScaleActuatorOptions) {
    this.o = { retryMs: 5000, ...options };
  }

  currentFailure(): GatewayError | undefined {
    return this.failure;
  }

  onFailure(listener: (error: GatewayError) => void): void {
    this.failureListeners.add(listener);
  }

  /**
   * Makes sure at least `replicas` are wanted, retrying transient failures with backoff while `stillWanted`
   * says so. Resolves when done or given up (a give-up is an event with a code; the next call tries again).
   */
  async ensureAtLeast(replicas: number, reason: string, stillWanted: () => boolean): Promise<void> {
    for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
      try {
        const state = await this.o.target.read();
        if (state.replicas >= replicas) {
          this.o.emit({ kind: 'scale_skipped', direction: 'up', reason: `already at ${state.replicas} replicas` });
        } else {
          await this.o.target.write(replicas, state.resourceVersion);
          this.o.emit({ kind: 'scale', direction: 'up', from: state.replicas, to: replicas, reason });
        }
        this.failure = undefined;
        return;
      } catch (error) {
        if (apiStatus(error) === 409) continue; // someone else wrote in between; read again
        const failure = this.classify(error, 'up', replicas);
        if (failure.code !== ErrorCode.ScaleFailed) {
          this.fail(failure);
          return;
        }
        if (!stillWanted()) return;
        await new Promise<void>((resolve) => this.o.clock.setTimer(Math.min(250 * 2 ** (attempt - 1), this.o.retryMs), resolve));
        if (!stillWanted()) return;
      }
    }
    this.o.emit({ kind: 'scale_failed', direction: 'up', to: replicas, code: ErrorCode.ScaleFailed, error: `gave up after ${maxAttempts} attempts; the next demand tries again`, status: undefined });
  }

  /** Lowers replicas from exactly `from` to `to`; false if the scale is not at `from` or the write failed. */
  async scaleDown(from: number, to: number, reason: string): Promise<boolean> {
    try {
      const state = await this.o.target.read();
      if (state.replicas !== from) {
        this.o.emit({ kind: 'scale_skipped', direction: 'down', reason: `the StatefulSet is at ${state.replicas} replicas, not ${from}` });
        return false;
      }
      await this.o.target.write(to, state.resourceVersion);
      this.failure = undefined;
      this.o.emit({ kind: 'scale', direction: 'down', from, to, reason });
      return true;
    } catch (error) {
      if (apiStatus(error) === 409) {
        this.o.emit({ kind: 'scale_skipped', direction: 'down', reason: 'the scale changed while writing (someone scaled up)' });
      } else {
        const failure = this.classify(error, 'down', to);
        if (failure.code !== ErrorCode.ScaleFailed) this.fail(failure);
      }
      return false;
    }
  }

  private classify(error: unknown, direction: 'up' | 'down', to: number): GatewayError {
    const status = apiStatus(error);
    const message = apiMessage(error);
    const code = status === 403 || status === 401 ? ErrorCode.ScaleForbidden : status === 404 ? ErrorCode.StatefulSetNotFound : ErrorCode.ScaleFailed;
    this.o.emit({ kind: 'scale_failed', direction, to, code, error: message, status });
    return new GatewayError(code, `scale ${direction} to ${to} failed: ${message}`, { cause: error });
  }

  private fail(error: GatewayError): void {
    this.failure = error;
    for (const listener of this.failureListeners) listener(error);
  }
}
