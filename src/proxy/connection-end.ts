import { ErrorCode, GatewayError } from '../errors.ts';
import { ConnectionOutcome } from '../events.ts';
import type { PipeResult } from './pipe.ts';

/** The access line's outcome for a connection the gateway itself ended with this code. */
export const outcomeOfCode: Partial<Record<string, ConnectionOutcome>> = {
  [ErrorCode.ReadyTimeout]: ConnectionOutcome.readyTimeout,
  [ErrorCode.CapacityTimeout]: ConnectionOutcome.capacityTimeout,
  [ErrorCode.PendingFull]: ConnectionOutcome.rejectedMaxPending,
  [ErrorCode.PendingBytesFull]: ConnectionOutcome.rejectedPendingBytes,
  [ErrorCode.ScaleForbidden]: ConnectionOutcome.scaleFailed,
  [ErrorCode.StatefulSetNotFound]: ConnectionOutcome.scaleFailed,
  [ErrorCode.ScaleFailed]: ConnectionOutcome.scaleFailed,
  [ErrorCode.WakeGaveUp]: ConnectionOutcome.scaleFailed,
  [ErrorCode.WatchForbidden]: ConnectionOutcome.scaleFailed,
  [ErrorCode.ShutdownClosed]: ConnectionOutcome.closedByShutdown,
};

/** What a connection that waited in the capacity queue failed with: its ready-wait deadline passed for want of room. */
function capacityTimeout(error: GatewayError): GatewayError {
  return new GatewayError(
    ErrorCode.CapacityTimeout,
    'every buildkitd pod stayed at --max-connections-per-replica with the pool at --max-replicas ' +
      'for the whole ready-wait timeout',
    { cause: error },
  );
}

/**
 * Outcome and code of a connection that ended before it was spliced. `wasQueued`: its deadline passed
 * while it waited in the capacity queue, for want of room rather than for a builder to wake.
 */
export function howRoutingFailed(
  error: unknown,
  wasQueued: boolean,
): { outcome: ConnectionOutcome; error: GatewayError } {
  const failed =
    error instanceof GatewayError ? error : new GatewayError(ErrorCode.DialFailed, String(error), { cause: error });
  const named = wasQueued && failed.code === ErrorCode.ReadyTimeout ? capacityTimeout(failed) : failed;
  return { outcome: outcomeOfCode[named.code] ?? ConnectionOutcome.backendError, error: named };
}

/** Outcome and code of a spliced connection: a TLS refusal by the backend is named as such, whichever side errored after it. */
export function howSpliceEnded(
  result: PipeResult,
  backendRefusedHandshake: boolean,
): { outcome: ConnectionOutcome; code?: ErrorCode; error?: string } {
  const failed = result.error;
  if (backendRefusedHandshake) {
    const why =
      'buildkitd refused the TLS handshake with an alert (for example mTLS and a client without a certificate)';
    return {
      outcome: ConnectionOutcome.backendTlsRefused,
      code: ErrorCode.BackendTlsRefused,
      error: failed ? `${why}; then ${failed.error.message}` : why,
    };
  }
  if (failed === undefined) return { outcome: ConnectionOutcome.completed };
  const closedByGateway = failed.error instanceof GatewayError ? outcomeOfCode[failed.error.code] : undefined;
  if (closedByGateway && failed.error instanceof GatewayError)
    return { outcome: closedByGateway, code: failed.error.code, error: failed.error.message };
  return failed.side === 'backend'
    ? { outcome: ConnectionOutcome.backendError, code: ErrorCode.BackendLost, error: failed.error.message }
    : { outcome: ConnectionOutcome.clientError, code: ErrorCode.ClientError, error: failed.error.message };
}
