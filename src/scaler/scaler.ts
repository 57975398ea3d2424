import type { BackendSet } from '../backends/backend-set.ts';
import type { Clock, Timer } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import type { ScaleState } from '../kube/scale-subresource.ts';
import type { IdleTracker } from './idle.ts';

/** Reads and writes the StatefulSet's replicas (the scale subresource in production, a fake in unit tests). */
export interface ScaleTarget {
  read(): Promise<ScaleState>;
  write(replicas: number, resourceVersion: string | undefined): Promise<void>;
}

/** What the StatefulSet watch says, and whether every watch the decisions depend on is synced. */
export interface ObservedState {
  synced: boolean;
  /** false only when a synced watch lists no such StatefulSet. */
  exists: boolean;
  desiredReplicas: number;
  /** A watch the decisions depend on that RBAC forbids: waking could never be observed, nor undone. */
  forbiddenWatch?: { resource: string; message: string } | undefined;
}

/** The seam for HA: with several gateway replicas only the elected leader may scale down. */
export interface ScaleDownPolicy {
  mayScaleDown(): boolean;
}

export const singleReplicaPolicy: ScaleDownPolicy = { mayScaleDown: () => true };

export interface ScalerOptions {
  target: ScaleTarget;
  observe: () => ObservedState;
  backends: BackendSet;
  idle: IdleTracker;
  clock: Clock;
  emit: EmitEvent;
  policy?: ScaleDownPolicy;
  /** How long after a failed write or check new connections fail at once without asking the API server again. */
  failureHoldMs?: number;
  /**
   * Re-checks of a permanent failure (forbidden, not found) while nothing else asks: the first comes after
   * `initialMs` and confirms the failure for /readyz, then the delay doubles up to `maxMs`.
   */
  failureRecheck?: { initialMs: number; maxMs: number };
  /** Delay before retrying a failed write or a scale-down that had to wait for watches. */
  retryMs?: number;
  /** Is anyone still waiting for a wake-up? Transient write failures are retried only while so. */
  hasDemand: () => boolean;
}

const maxWakeAttempts = 20;

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
 * Turns demand into replicas. Wakes with "at least 1" (idempotent, safe for several gateway replicas);
 * scales to zero only from synced watches, only while still idle, and fences the old pods first so a
 * connection arriving during the write is held for a fresh pod rather than spliced to a dying one.
 */
export class Scaler {
  private wakeInFlight = false;
  private scaleDownInFlight = false;
  private wakeAfterScaleDown = false;
  private failure: ScaleFailure | undefined;
  private failureListeners = new Set<(error: GatewayError) => void>();
  private readonly o: Required<Omit<ScalerOptions, 'policy'>> & { policy: ScaleDownPolicy };

  private wakeWhenFenceLifts = false;

  constructor(options: ScalerOptions) {
    // Re-check at 2 s: a kubelet probing every 5 s with failureThreshold 2 never sees a one-off 403 twice.
    this.o = { failureHoldMs: 5000, retryMs: 5000, failureRecheck: { initialMs: 2000, maxMs: 30_000 }, policy: singleReplicaPolicy, ...options };
    this.o.idle.onIdle = (epoch) => void this.scaleDownIfIdle(epoch);
    this.o.backends.onChange(() => {
      if (this.wakeWhenFenceLifts && this.o.backends.fencedCount === 0) {
        this.wakeWhenFenceLifts = false;
        this.ensureAwake();
      }
    });
  }

  /** A permanent reason why waking cannot work right now: new connections fail at once with it. */
  currentFailure(): GatewayError | undefined {
    const observed = this.observedFailure();
    if (observed) return observed;
    if (this.failure && this.o.clock.now() - this.failure.lastFailedAt < this.o.failureHoldMs) return this.failure.error;
    return undefined;
  }

  /** What /readyz reports: a permanent failure for as long as it lasts, once a second check has seen it. */
  readinessFailure(): GatewayError | undefined {
    const observed = this.o.observe();
    if (observed.synced && !observed.exists) return notFound();
    return this.failure?.confirmed ? this.failure.error : undefined;
  }

  onFailure(listener: (error: GatewayError) => void): void {
    this.failureListeners.add(listener);
  }

  /** Called when the StatefulSet watch changes: a running buildkitd with no connections starts the idle timer. */
  observedStateChanged(): void {
    const observed = this.o.observe();
    if (observed.synced && observed.exists && observed.desiredReplicas > 0) this.o.idle.arm();
    if (observed.synced && observed.exists && this.failure?.error.code === ErrorCode.StatefulSetNotFound) {
      this.clearFailure('the StatefulSet is in the synced watch');
    }
    const failure = this.observedFailure();
    if (failure) this.notify(failure);
  }

  /** Makes sure at least one replica is wanted. Returns at once; failures reach `onFailure` listeners. */
  ensureAwake(): void {
    if (this.scaleDownInFlight) {
      this.wakeAfterScaleDown = true;
      return;
    }
    if (this.wakeInFlight) return;
    if (this.o.backends.fencedCount > 0) {
      // The scaled-down pods still exist: wake once they are gone (see BackendSet).
      this.wakeWhenFenceLifts = true;
      return;
    }
    const failure = this.observedFailure();
    if (failure) {
      this.notify(failure);
      return;
    }
    const observed = this.o.observe();
    if (observed.synced && observed.desiredReplicas >= 1) return;
    this.wakeInFlight = true;
    void this.wake().finally(() => {
      this.wakeInFlight = false;
    });
  }

  private async wake(): Promise<void> {
    let lastError = '';
    for (let attempt = 1; attempt <= maxWakeAttempts; attempt += 1) {
      try {
        const state = await this.o.target.read();
        if (this.failure?.error.code === ErrorCode.StatefulSetNotFound) this.clearFailure('the scale subresource answered');
        if (state.replicas >= 1) {
          this.o.emit({ kind: 'scale_skipped', direction: 'up', reason: `already at ${state.replicas} replicas` });
        } else {
          await this.o.target.write(1, state.resourceVersion);
          this.o.emit({ kind: 'scale', direction: 'up', from: state.replicas, to: 1, reason: 'connection waiting' });
          this.clearFailure('scale up succeeded');
        }
        return;
      } catch (error) {
        const status = apiStatus(error);
        if (status === 409) continue; // someone else wrote in between; read again
        const gatewayError = this.classify(error, 'up', 1);
        if (gatewayError.code !== ErrorCode.ScaleFailed) {
          this.fail(gatewayError);
          return;
        }
        lastError = apiMessage(error);
        if (!this.o.hasDemand()) return;
        await new Promise<void>((resolve) => this.o.clock.setTimer(Math.min(250 * 2 ** (attempt - 1), this.o.retryMs), resolve));
        if (!this.o.hasDemand()) return;
      }
    }
    // Nothing retries after this: the clients held now are told why at once (not at their deadline, with
    // the wrong cause), and the next connection starts a new cycle because wakeInFlight is cleared.
    this.o.emit({ kind: 'wake_gave_up', code: ErrorCode.WakeGaveUp, attempts: maxWakeAttempts, error: lastError });
    this.notify(new GatewayError(ErrorCode.WakeGaveUp, `gave up waking buildkitd after ${maxWakeAttempts} failed attempts: ${lastError}`));
  }

  private async scaleDownIfIdle(epoch: number): Promise<void> {
    const { idle, backends, emit } = this.o;
    if (!idle.isStillIdle(epoch)) return;
    if (!this.o.policy.mayScaleDown()) {
      emit({ kind: 'scale_skipped', direction: 'down', reason: 'not the leader' });
      idle.arm(this.o.retryMs);
      return;
    }
    const observed = this.o.observe();
    if (!observed.synced) {
      // Never decide on a cache that may have missed events (API server down, watch restarting).
      emit({ kind: 'scale_skipped', direction: 'down', reason: 'watches not synced; will retry' });
      idle.arm(this.o.retryMs);
      return;
    }
    if (!observed.exists || observed.desiredReplicas === 0) return;
    this.scaleDownInFlight = true;
    backends.fence();
    let landed = false;
    try {
      const state = await this.o.target.read();
      if (state.replicas === 0) {
        landed = true;
      } else if (idle.isStillIdle(epoch)) {
        await this.o.target.write(0, state.resourceVersion);
        landed = true;
        emit({ kind: 'scale', direction: 'down', from: state.replicas, to: 0, reason: 'idle timeout' });
      }
    } catch (error) {
      if (apiStatus(error) !== 409) this.classify(error, 'down', 0);
    } finally {
      this.scaleDownInFlight = false;
    }
    if (!landed) {
      // Cancelled by a connection that arrived meanwhile, or the write failed: the pods keep serving.
      this.wakeAfterScaleDown = false;
      backends.unfence();
      if (idle.openConnections === 0) idle.arm(this.o.retryMs);
      return;
    }
    if (this.wakeAfterScaleDown || !idle.isStillIdle(epoch)) {
      this.wakeAfterScaleDown = false;
      this.ensureAwake();
    }
  }

  private classify(error: unknown, direction: 'up' | 'down', to: number): GatewayError {
    const status = apiStatus(error);
    const message = apiMessage(error);
    const code = permanentCode(status) ?? ErrorCode.ScaleFailed;
    this.o.emit({ kind: 'scale_failed', direction, to, code, error: message, status });
    return new GatewayError(code, `scale ${direction} to ${to} failed: ${message}`, { cause: error });
  }

  /** Failures the watches show (StatefulSet missing, a watch forbidden): they last as long as the watch says. */
  private observedFailure(): GatewayError | undefined {
    const observed = this.o.observe();
    if (observed.synced && !observed.exists) return notFound();
    if (observed.forbiddenWatch) {
      const { resource, message } = observed.forbiddenWatch;
      return new GatewayError(ErrorCode.WatchForbidden, `the watch of ${resource} is forbidden, so a wake-up could not be seen: ${message}`);
    }
    return undefined;
  }

  /** Records a permanent failure from the API server, tells held connections, and starts the re-checks. */
  private fail(error: GatewayError): void {
    const now = this.o.clock.now();
    const known = this.failure;
    if (known && known.error.code === error.code) {
      known.error = error;
      known.lastFailedAt = now;
      if (now - known.since >= this.o.failureRecheck.initialMs) known.confirmed = true;
    } else {
      known?.recheck?.cancel();
      this.failure = { error, since: now, lastFailedAt: now, confirmed: false, recheckMs: this.o.failureRecheck.initialMs, recheck: undefined };
      this.scheduleRecheck();
    }
    this.notify(error);
  }

  private notify(error: GatewayError): void {
    for (const listener of this.failureListeners) listener(error);
  }

  private clearFailure(reason: string): void {
    const known = this.failure;
    if (!known) return;
    known.recheck?.cancel();
    this.failure = undefined;
    this.o.emit({ kind: 'scale_recovered', code: known.error.code, reason });
  }

  private scheduleRecheck(): void {
    const known = this.failure;
    if (!known) return;
    known.recheck = this.o.clock.setTimer(known.recheckMs, () => void this.recheck(known));
    known.recheckMs = Math.min(known.recheckMs * 2, this.o.failureRecheck.maxMs);
  }

  /** Asks the API server whether the failure is over: a read, then a write of the replicas just read (a no-op). */
  private async recheck(known: ScaleFailure): Promise<void> {
    if (this.failure !== known) return;
    if (this.wakeInFlight || this.scaleDownInFlight) {
      this.scheduleRecheck(); // that request is the check
      return;
    }
    try {
      const state = await this.o.target.read();
      await this.o.target.write(state.replicas, state.resourceVersion);
      if (this.failure === known) this.clearFailure('a re-check of the scale subresource succeeded');
      return;
    } catch (error) {
      if (this.failure !== known) return;
      const status = apiStatus(error);
      // A conflict got past authorization and found the object: the failure is over.
      if (status === 409) {
        this.clearFailure('a re-check of the scale subresource succeeded');
        return;
      }
      const code = permanentCode(status);
      if (code !== undefined) this.fail(new GatewayError(code, `scale check failed: ${apiMessage(error)}`, { cause: error }));
      if (this.failure === known) this.scheduleRecheck(); // a different failure brought its own schedule
    }
  }
}

const notFound = () => new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist');

function permanentCode(status: number | undefined): ErrorCode | undefined {
  return status === 403 || status === 401 ? ErrorCode.ScaleForbidden : status === 404 ? ErrorCode.StatefulSetNotFound : undefined;
}
