// Every setting of the gateway: its flag, environment variable, default, parser and help text, in one
// table. Over 300 lines for a reason: the table has one entry per setting and is the single source of
// --help, --print-config, README's configuration table and the chart schema tests; reading it in order is
// reading the configuration. Parsers live in config-values.ts, reading flags and env in config-load.ts.
import { hostname } from 'node:os';
import { formatGoDuration } from './duration.ts';
import { formatListenAddress, type ListenAddress } from './listen-address.ts';
import {
  boolean,
  byteSize,
  dnsLabel,
  dnsSubdomain,
  duration,
  formatByteSize,
  integer,
  ipAddress,
  listenAddress,
  nonEmptyPath,
  oneOf,
  positiveDuration,
} from './config-values.ts';

export const LogLevel = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
  silent: 'silent',
} as const;
export type LogLevel = keyof typeof LogLevel;

export const BackendDiscovery = { endpoints: 'endpoints', dns: 'dns' } as const;
export const AffinityMode = { 'client-ip': 'client-ip', none: 'none' } as const;
export const WakeOn = { data: 'data', connect: 'connect' } as const;
export type WakeOn = keyof typeof WakeOn;
export type BackendDiscovery = keyof typeof BackendDiscovery;

export interface Config {
  listenAddr: ListenAddress;
  stsName: string;
  stsNamespace: string;
  headlessServiceName: string;
  targetPort: number;
  idleTimeoutMs: number;
  kubeconfig: string | undefined;
  readyWaitTimeoutMs: number;
  metricsAddr: ListenAddress;
  logLevel: LogLevel;
  maxConnections: number;
  maxPending: number;
  maxPendingBytes: number;
  backendDiscovery: BackendDiscovery;
  clusterDomain: string;
  shutdownGraceMs: number;
  shutdownDelayMs: number;
  leaderElection: boolean;
  leaderElectionLeaseName: string;
  leaderElectionLeaseDurationMs: number;
  leaderElectionRenewDeadlineMs: number;
  leaderElectionRetryPeriodMs: number;
  identity: string;
  maxReportStalenessMs: number;
  podUid: string | undefined;
  podIp: string | undefined;
  maxReplicas: number;
  minReplicas: number;
  connectionsPerReplica: number;
  maxConnectionsPerReplica: number;
  affinity: keyof typeof AffinityMode;
  wakeOn: WakeOn;
  firstByteTimeoutMs: number;
  watchNodes: boolean;
}

/** Where a setting's value came from (env wins over flag). */
export type Source = 'default' | 'flag' | 'env';

export interface OptionDefinition<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  /** The default as a user would type it; undefined when there is none. */
  defaultText: string | undefined;
  /** A default computed from the other settings (defaultText then only describes it). */
  derivedDefault?: (config: Config) => Config[K];
  description: string;
  parse: (raw: string) => Config[K];
  format: (value: Config[K]) => string | null;
}

function define<K extends keyof Config>(definition: OptionDefinition<K>): OptionDefinition<K> {
  return definition;
}

/** Every setting, in the order README and --help show them; flag and env names match the Go tool. */
export const optionDefinitions = [
  define({
    key: 'listenAddr',
    flag: 'listen-addr',
    env: 'PROXY_LISTEN_ADDR',
    defaultText: ':8080',
    description: 'address the BuildKit clients connect to',
    parse: listenAddress,
    format: formatListenAddress,
  }),
  define({
    key: 'stsName',
    flag: 'sts-name',
    env: 'BUILDKITD_STATEFULSET_NAME',
    defaultText: 'buildkitd',
    description: 'name of the buildkitd StatefulSet to scale',
    parse: dnsSubdomain('StatefulSet name'),
    format: String,
  }),
  define({
    key: 'stsNamespace',
    flag: 'sts-namespace',
    env: 'BUILDKITD_STATEFULSET_NAMESPACE',
    defaultText: 'default',
    description: 'namespace of the StatefulSet and its headless Service',
    parse: dnsLabel('namespace', 63),
    format: String,
  }),
  define({
    key: 'headlessServiceName',
    flag: 'headless-service-name',
    env: 'BUILDKITD_HEADLESS_SERVICE_NAME',
    defaultText: 'buildkitd-headless',
    description: 'headless Service whose EndpointSlices list the buildkitd pods',
    parse: dnsLabel('Service name', 63),
    format: String,
  }),
  define({
    key: 'targetPort',
    flag: 'target-port',
    env: 'BUILDKITD_TARGET_PORT',
    defaultText: '8273',
    description: 'buildkitd TCP port on each pod',
    parse: integer(1, 65535),
    format: String,
  }),
  define({
    key: 'idleTimeoutMs',
    flag: 'idle-timeout',
    env: 'SCALE_DOWN_IDLE_TIMEOUT',
    defaultText: '2m0s',
    description: 'scale to zero after no connection has been open this long (Go duration)',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'kubeconfig',
    flag: 'kubeconfig',
    env: 'KUBECONFIG_PATH',
    defaultText: undefined,
    description: 'kubeconfig file; unset: in-cluster config, then the standard kubeconfig',
    parse: nonEmptyPath,
    format: (v) => v ?? null,
  }),
  define({
    key: 'readyWaitTimeoutMs',
    flag: 'ready-wait-timeout',
    env: 'READY_WAIT_TIMEOUT',
    defaultText: '5m0s',
    description: 'how long a held connection waits for a ready buildkitd before it is closed',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'metricsAddr',
    flag: 'metrics-addr',
    env: 'METRICS_LISTEN_ADDR',
    defaultText: ':9090',
    description: 'address of /healthz, /readyz, /metrics and /wake (never the proxy port)',
    parse: listenAddress,
    format: formatListenAddress,
  }),
  define({
    key: 'logLevel',
    flag: 'log-level',
    env: 'LOG_LEVEL',
    defaultText: 'info',
    description: `log level: ${Object.keys(LogLevel).join(', ')}`,
    parse: oneOf(LogLevel),
    format: String,
  }),
  define({
    key: 'wakeOn',
    flag: 'wake-on',
    env: 'WAKE_ON',
    defaultText: 'data',
    description:
      'data: a connection wakes buildkitd and counts as activity only once its first byte arrives (health checks ' +
      'and port scanners wake nothing); connect: at accept, as the Go tool did',
    parse: oneOf(WakeOn),
    format: String,
  }),
  define({
    key: 'firstByteTimeoutMs',
    flag: 'first-byte-timeout',
    env: 'FIRST_BYTE_TIMEOUT',
    defaultText: '30s',
    description: 'with --wake-on=data, a connection that sends nothing this long is closed (BKA_FIRST_BYTE_TIMEOUT)',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'maxConnections',
    flag: 'max-connections',
    env: 'PROXY_MAX_CONNECTIONS',
    defaultText: '10000',
    description: 'open client connections at most; further ones are refused',
    parse: integer(1, 10_000_000),
    format: String,
  }),
  define({
    key: 'maxPending',
    flag: 'max-pending',
    env: 'PROXY_MAX_PENDING',
    defaultText: '1000',
    description: 'connections held at most while buildkitd wakes up',
    parse: integer(0, 10_000_000),
    format: String,
  }),
  define({
    key: 'maxPendingBytes',
    flag: 'max-pending-bytes',
    env: 'PROXY_MAX_PENDING_BYTES',
    defaultText: '32Mi',
    description:
      'bytes held connections may send in all before buildkitd is ready; a client whose bytes do not fit is refused (BKA_PENDING_BYTES_FULL)',
    parse: byteSize(1024, 1024 ** 4),
    format: formatByteSize,
  }),
  define({
    key: 'backendDiscovery',
    flag: 'backend-discovery',
    env: 'BUILDKITD_BACKEND_DISCOVERY',
    defaultText: 'endpoints',
    description: 'how pods are found: endpoints (EndpointSlices) or dns (<sts>-<ordinal>.<svc>.<ns>.svc.<domain>)',
    parse: oneOf(BackendDiscovery),
    format: String,
  }),
  define({
    key: 'clusterDomain',
    flag: 'cluster-domain',
    env: 'CLUSTER_DOMAIN',
    defaultText: 'cluster.local',
    description: 'cluster DNS domain, used by --backend-discovery=dns',
    parse: dnsSubdomain('cluster domain'),
    format: String,
  }),
  define({
    key: 'shutdownGraceMs',
    flag: 'shutdown-grace',
    env: 'SHUTDOWN_GRACE_PERIOD',
    defaultText: '1h0m0s',
    description:
      'on SIGTERM, how long open connections (builds) may finish once the listener closed; the gateway exits ' +
      'as soon as the last one closes, so an idle gateway stops after --shutdown-delay',
    parse: duration,
    format: formatGoDuration,
  }),
  define({
    key: 'shutdownDelayMs',
    flag: 'shutdown-delay',
    env: 'SHUTDOWN_DELAY',
    defaultText: '5s',
    description:
      'on SIGTERM, keep accepting this long while /readyz says not ready, so the endpoint removal reaches every node before the listener closes',
    parse: duration,
    format: formatGoDuration,
  }),
  define({
    key: 'maxReplicas',
    flag: 'max-replicas',
    env: 'BUILDKITD_MAX_REPLICAS',
    defaultText: '1',
    description: 'builders at most; the StatefulSet grows with demand up to this',
    parse: integer(1, 1000),
    format: String,
  }),
  define({
    key: 'minReplicas',
    flag: 'min-replicas',
    env: 'BUILDKITD_MIN_REPLICAS',
    defaultText: '0',
    description: 'builders kept even without demand (0: scale to zero)',
    parse: integer(0, 1000),
    format: String,
  }),
  define({
    key: 'connectionsPerReplica',
    flag: 'connections-per-replica',
    env: 'BUILDKITD_CONNECTIONS_PER_REPLICA',
    defaultText: '8',
    description: 'connections one builder is meant to carry; demand / this = builders wanted',
    parse: integer(1, 100_000),
    format: String,
  }),
  define({
    key: 'maxConnectionsPerReplica',
    flag: 'max-connections-per-replica',
    env: 'BUILDKITD_MAX_CONNECTIONS_PER_REPLICA',
    defaultText: '0',
    description:
      'connections one builder is given at most, over every gateway replica (0: no cap); with the pool at --max-replicas ' +
      'and every builder full, a new connection waits in arrival order until one closes, or until --ready-wait-timeout ' +
      '(BKA_CAPACITY_TIMEOUT)',
    parse: integer(0, 100_000),
    format: String,
  }),
  define({
    key: 'affinity',
    flag: 'affinity',
    env: 'BUILDKITD_AFFINITY',
    defaultText: 'client-ip',
    description:
      'client-ip: the same client address goes to the same builder (warm cache) within a load bound; none: least connections',
    parse: oneOf(AffinityMode),
    format: String,
  }),
  define({
    key: 'watchNodes',
    flag: 'watch-nodes',
    env: 'WATCH_NODES',
    defaultText: 'true',
    description:
      'builders on a cordoned node or one tainted for removal (node.kubernetes.io/unschedulable, karpenter.sh/disrupted, ' +
      'ToBeDeletedByClusterAutoscaler) take no new connections, so a drain is not held up; needs get, list ' +
      'and watch on nodes (without: one BKA_NODES_FORBIDDEN warning, routing as if off)',
    parse: boolean,
    format: String,
  }),
  define({
    key: 'leaderElection',
    flag: 'leader-election',
    env: 'LEADER_ELECTION',
    defaultText: 'true',
    description:
      'share activity through Leases and let only the elected replica scale down; false only for a lone gateway ' +
      'without Lease RBAC (unsafe while Kubernetes runs two gateway pods: eviction, rollout, drain)',
    parse: boolean,
    format: String,
  }),
  define({
    key: 'leaderElectionLeaseName',
    flag: 'leader-election-lease-name',
    env: 'LEADER_ELECTION_LEASE_NAME',
    defaultText: '<sts-name>-autoscaler',
    derivedDefault: (c) => `${c.stsName}-autoscaler`,
    description: 'name of the leader Lease; each replica reports in the Lease <name>-<identity>',
    parse: dnsSubdomain('Lease name'),
    format: String,
  }),
  define({
    key: 'leaderElectionLeaseDurationMs',
    flag: 'leader-election-lease-duration',
    env: 'LEADER_ELECTION_LEASE_DURATION',
    defaultText: '15s',
    description: 'how long a Lease (leader or report) counts as held after its last renewal',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'leaderElectionRenewDeadlineMs',
    flag: 'leader-election-renew-deadline',
    env: 'LEADER_ELECTION_RENEW_DEADLINE',
    defaultText: '10s',
    description: 'the leader stops leading if it could not renew for this long (less than the lease duration)',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'leaderElectionRetryPeriodMs',
    flag: 'leader-election-retry-period',
    env: 'LEADER_ELECTION_RETRY_PERIOD',
    defaultText: '2s',
    description: 'interval of Lease renewals and of attempts to become leader',
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'identity',
    flag: 'identity',
    env: 'POD_NAME',
    defaultText: 'the hostname',
    derivedDefault: () => hostname().toLowerCase(),
    description: "this replica's name in the Leases; unique per running gateway process",
    parse: dnsSubdomain('identity'),
    format: String,
  }),
  define({
    key: 'maxReportStalenessMs',
    flag: 'max-report-staleness',
    env: 'MAX_REPORT_STALENESS',
    defaultText: '10m0s',
    description:
      "a replica's report that is not renewed blocks scale-down (it may still splice a build) until its pod is gone or this long has passed",
    parse: positiveDuration,
    format: formatGoDuration,
  }),
  define({
    key: 'podUid',
    flag: 'pod-uid',
    env: 'POD_UID',
    defaultText: undefined,
    description:
      "UID of the gateway's own pod (downward API): its report Lease is owned by the pod, so it disappears with the pod",
    parse: nonEmptyPath,
    format: (v) => v ?? null,
  }),
  define({
    key: 'podIp',
    flag: 'pod-ip',
    env: 'POD_IP',
    defaultText: undefined,
    description:
      "IP of the gateway's own pod (downward API): published in its report so that a replica cut off from the " +
      'API server can ask the others whether it alone is cut off (then it steps out of the Service)',
    parse: ipAddress,
    format: (v) => v ?? null,
  }),
] as const;
