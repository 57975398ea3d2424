// Stable error codes: users grep logs and alert on these, so never rename one.
export const ErrorCode = {
  ConfigInvalid: 'BKA_CONFIG_INVALID',
  ReadyTimeout: 'BKA_READY_TIMEOUT',
  CapacityTimeout: 'BKA_CAPACITY_TIMEOUT',
  PendingFull: 'BKA_PENDING_FULL',
  PendingBytesFull: 'BKA_PENDING_BYTES_FULL',
  MaxConnections: 'BKA_MAX_CONNECTIONS',
  ScaleForbidden: 'BKA_SCALE_FORBIDDEN',
  StatefulSetNotFound: 'BKA_STS_NOT_FOUND',
  ScaleFailed: 'BKA_SCALE_FAILED',
  WatchFailed: 'BKA_WATCH_FAILED',
  WatchForbidden: 'BKA_WATCH_FORBIDDEN',
  NodesForbidden: 'BKA_NODES_FORBIDDEN',
  DialFailed: 'BKA_DIAL_FAILED',
  BackendLost: 'BKA_BACKEND_LOST',
  BackendTlsRefused: 'BKA_BACKEND_TLS_REFUSED',
  ClientError: 'BKA_CLIENT_ERROR',
  ShutdownClosed: 'BKA_SHUTDOWN_CLOSED',
  KubeconfigInvalid: 'BKA_KUBECONFIG_INVALID',
  ListenFailed: 'BKA_LISTEN_FAILED',
  LeaseFailed: 'BKA_LEASE_FAILED',
  IdentityConflict: 'BKA_IDENTITY_CONFLICT',
  ReportExpired: 'BKA_REPORT_EXPIRED',
  Partitioned: 'BKA_PARTITIONED',
  WakeGaveUp: 'BKA_WAKE_GAVE_UP',
  FirstByteTimeout: 'BKA_FIRST_BYTE_TIMEOUT',
  MarkFailed: 'BKA_MARK_FAILED',
  Internal: 'BKA_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error that carries a stable code; the original cause stays visible through `cause`. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** Thrown for a bad flag or env value; main prints its message as one line and exits 2. */
export class ConfigError extends GatewayError {
  constructor(message: string) {
    super(ErrorCode.ConfigInvalid, message);
    this.name = 'ConfigError';
  }
}
