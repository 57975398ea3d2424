import type { BackendSet } from '../backends/backend-set.ts';
import type { Clock } from '../clock.ts';
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
  /** How long a permanent failure (forbidden, not found) makes new connections fail without asking again. */
  failureHoldMs?: number;
  /** Delay before retrying a failed write or a scale-down that had to wait for watches. */
  retryMs?: number;
  /** Is anyone still waiting for a wake-up? Transient write failures are retried only while so. */
  hasDemand: () => boolean;
}

const maxWakeAttempts = 20;

/**
 * Turns demand into replicas. Wakes with "at least 1" (idempotent, safe for several gateway replicas);
 * scales to zero only from synced watches, only while still idle, and fences the old pods first so a
 * connection arriving during the write is held for a fresh pod rather than spliced to a dying one.
 */
export class Scaler {
  private wakeInFlight = false;
  private scaleDownInFlight = false;
  private wakeAfterScaleDown = false;
  private failure: { error: GatewayError; at: number } | undefined;
  private failureListeners = new Set<(error: GatewayError) => void>();
  private readonly o: Required<Omit<ScalerOptions, 'policy'>> & { policy: ScaleDownPolicy };

  private wakeWhenFenceLifts = false;

  constructor(options: ScalerOptions) {
    this.o = { failureHoldMs: 5000, retryMs: 5000, policy: singleReplicaPolicy, ...options };
    this.o.idle.onIdle = (epoch) => void this.scaleDownIfIdle(epoch);
    this.o.backends.onChange(() => {
      if (this.wakeWhenFenceLifts && this.o.backends.fencedCount === 0) {
        this.wakeWhenFenceLifts = false;
        this.ensureAwake();
      }
    });
  }

  /** A permanent reason why waking cannot work right now, for fast failure and /readyz. */
  currentFailure(): GatewayError | undefined {
    const observed = this.o.observe();
    if (observed.synced && !observed.exists) {
      return new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist');
    }
    if (this.failure && this.o.clock.now() - this.failure.at < this.o.failureHoldMs) return this.failure.error;
    return undefined;
  }

  onFailure(listener: (error: GatewayError) => void): void {
    this.failureListeners.add(listener);
  }

  /** Called when the StatefulSet watch changes: a running buildkitd with no connections starts the idle timer. */
  observedStateChanged(): void {
    const observed = this.o.observe();
    if (observed.synced && observed.exists && observed.desiredReplicas > 0) this.o.idle.arm();
    if (observed.synced && !observed.exists) this.fail(new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist'));
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
    const observed = this.o.observe();
    if (observed.synced && !observed.exists) {
      this.fail(new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist'));
      return;
    }
    if (observed.synced && observed.desiredReplicas >= 1) return;
    this.wakeInFlight = true;
    void this.wake().finally(() => {
      this.wakeInFlight = false;
    });
  }

  private async wake(): Promise<void> {
    for (let attempt = 1; attempt <= maxWakeAttempts; attempt += 1) {
      try {
        const state = await this.o.target.read();
        if (state.replicas >= 1) {
          this.o.emit({ kind: 'scale_skipped', direction: 'up', reason: `already at ${state.replicas} replicas` });
        } else {
          await this.o.target.write(1, state.resourceVersion);
          this.o.emit({ kind: 'scale', direction: 'up', from: state.replicas, to: 1, reason: 'connection waiting' });
        }
        this.failure = undefined;
        return;
      } catch (error) {
        const status = apiStatus(error);
        if (status === 409) continue; // someone else wrote in between; read again
        const gatewayError = this.classify(error, 'up', 1);
        if (gatewayError.code !== ErrorCode.ScaleFailed) {
          this.fail(gatewayError);
          return;
        }
        if (!this.o.hasDemand()) return;
        await new Promise<void>((resolve) => this.o.clock.setTimer(Math.min(250 * 2 ** (attempt - 1), this.o.retryMs), resolve));
        if (!this.o.hasDemand()) return;
      }
    }
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
    const code =
      status === 403 || status === 401 ? ErrorCode.ScaleForbidden : status === 404 ? ErrorCode.StatefulSetNotFound : ErrorCode.ScaleFailed;
    this.o.emit({ kind: 'scale_failed', direction, to, code, error: message, status });
    return new GatewayError(code, `scale ${direction} to ${to} failed: ${message}`, { cause: error });
  }

  private fail(error: GatewayError): void {
    this.failure = { error, at: this.o.clock.now() };
    for (const listener of this.failureListeners) listener(error);
  }
}
