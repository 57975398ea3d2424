import type { Registry } from 'prom-client';
import type { Config } from './config.ts';
import type { Coordination } from './coordination.ts';
import type { GatewayError } from './errors.ts';
import type { EmitEvent } from './events.ts';
import { OpsServer } from './http/server.ts';
import type { WakeControl, WakeStatus } from './http/wake-endpoint.ts';
import type { ReadinessCheck } from './readiness-check.ts';
import type { WakeRequests } from './scaler/wake-requests.ts';

export interface OpsInputs {
  config: Pick<Config, 'metricsAddr' | 'maxReplicas' | 'idleTimeoutMs'>;
  registry: Registry;
  readiness: () => ReadinessCheck[];
  /** Writes out batched log lines before answering, so the log is never behind what /metrics counts. */
  flushLog: () => void;
  wakes: WakeRequests;
  /** With leader election: /report answers the partition check, and accepted wakes go into the wake Lease. */
  coordination: Coordination | undefined;
  /** Why a wake cannot work now (a forbidden scale, a missing StatefulSet). */
  wakeFailure: () => GatewayError | undefined;
  wakeStatus: () => WakeStatus;
}

/** The ops port: /healthz, /readyz, /metrics, /wake (pre-wake) and /report (asked by the other replicas). */
export function createOpsServer(inputs: OpsInputs, callbacks: { emit: EmitEvent }): OpsServer {
  const { config, coordination, wakes } = inputs;
  const { emit } = callbacks;
  const wake: WakeControl = {
    maxReplicas: config.maxReplicas,
    defaultForMs: config.idleTimeoutMs,
    failure: inputs.wakeFailure,
    request: (replicas, forMs, client) => {
      const recorded = wakes.request(replicas, forMs);
      // The wake Lease outlives every replica: a window survives all gateway pods being replaced at once.
      void coordination?.wakeLease.record(wakes.current());
      emit({ kind: 'wake_requested', replicas, forMs, until: new Date(recorded.until).toISOString(), client });
      return recorded;
    },
    status: inputs.wakeStatus,
  };
  return new OpsServer(
    { address: config.metricsAddr, registry: inputs.registry, wake },
    {
      emit,
      readiness: inputs.readiness,
      flushLog: inputs.flushLog,
      ...(coordination ? { report: () => coordination.partition.status() } : {}),
    },
  );
}
