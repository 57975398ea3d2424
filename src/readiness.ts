import { ErrorCode, type GatewayError } from './errors.ts';
import type { InformerStatus } from './kube/informer.ts';
import type { ReadinessCheck } from './readiness-check.ts';

export interface ReadinessInputs {
  listening: boolean;
  shuttingDown: boolean;
  /** The watches the scaler decides from (StatefulSet, EndpointSlices, Leases; not busy pods or nodes). */
  watches: ReadonlyArray<{ resource: string; state: InformerStatus }>;
  /** What the watches show (ClusterView.failure): only a missing StatefulSet counts here. */
  watchedFailure: GatewayError | undefined;
  /** A scale failure (forbidden, not found) once a second check confirmed it (ScaleActuator.readinessFailure). */
  actuatorFailure: GatewayError | undefined;
  /** With leader election: who leads, and the partition check's verdict. */
  coordination?:
    | { elector: { isLeader: boolean; holder: string | undefined }; partition: { readiness(): ReadinessCheck } }
    | undefined;
}

/** /readyz: listener up and not draining, every watch synced once, no scale failure, not partitioned. */
export function readinessChecks(inputs: ReadinessInputs): ReadinessCheck[] {
  const { shuttingDown, watchedFailure, coordination } = inputs;
  const scaleFailure = watchedFailure?.code === ErrorCode.StatefulSetNotFound ? watchedFailure : inputs.actuatorFailure;
  const checks: ReadinessCheck[] = [
    { name: 'listener', ok: inputs.listening && !shuttingDown, ...(shuttingDown ? { reason: 'shutting down' } : {}) },
  ];
  for (const watch of inputs.watches) {
    const { synced, everSynced, failure } = watch.state;
    // A watch that fails after its first sync is reported here and in metrics but keeps the pod in the
    // Service: every replica sees the same API outage, and open and new builds can still be served.
    checks.push({
      name: `watch ${watch.resource}`,
      ok: everSynced,
      ...(synced ? {} : { reason: failure ? `${failure.code}: ${failure.message}` : 'not synced yet' }),
    });
  }
  checks.push({
    name: 'scale',
    ok: scaleFailure === undefined,
    ...(scaleFailure ? { reason: `${scaleFailure.code}: ${scaleFailure.message}` } : {}),
  });
  if (coordination) {
    const { elector } = coordination;
    checks.push({
      name: 'leader election',
      ok: true,
      reason: elector.isLeader ? 'leading' : `following ${elector.holder ?? 'no leader yet'}`,
    });
    checks.push(coordination.partition.readiness());
  }
  return checks;
}
