import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import * as z from 'zod/mini';
import { describeBuild } from './build-info.ts';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { ConfigError } from './errors.ts';
import { formatListenAddress, parseListenAddress, type ListenAddress } from './listen-address.ts';

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

type Source = 'default' | 'flag' | 'env';

interface OptionDefinition<K extends keyof Config> {
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

// DNS-1123 rules, as the API server enforces them, so a typo fails at start and not at the first build.
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// zod/mini: the tree-shakable build of zod, so only the checks used here are bundled.
function fromZod<T>(schema: z.ZodMiniType<T>): (raw: string) => T {
  return (raw) => {
    const result = z.safeParse(schema, raw);
    if (!result.success) throw new Error(result.error.issues[0]?.message ?? 'invalid');
    return result.data;
  };
}

const dnsLabel = (what: string, max: number) =>
  fromZod(
    z
      .string()
      .check(
        z.minLength(1, `${what} must not be empty`),
        z.maxLength(max, `${what} must be at most ${max} characters`),
        z.regex(dns1123Label, `${what} must be a DNS-1123 label (lowercase letters, digits, "-")`),
      ),
  );
const dnsSubdomain = (what: string) =>
  fromZod(
    z
      .string()
      .check(
        z.minLength(1, `${what} must not be empty`),
        z.maxLength(253, `${what} must be at most 253 characters`),
        z.regex(dns1123Subdomain, `${what} must be a DNS-1123 subdomain (lowercase letters, digits, "-", ".")`),
      ),
  );
const integer = (min: number, max: number) =>
  fromZod(
    z.pipe(
      z.pipe(z.string().check(z.regex(/^\d+$/, 'must be a whole number')), z.transform(Number)),
      z.number().check(z.gte(min, `must be at least ${min}`), z.lte(max, `must be at most ${max}`)),
    ),
  );
const oneOf = <T extends string>(values: Record<T, T>) => {
  const allowed = Object.keys(values) as T[];
  return (raw: string): T => {
    if ((allowed as string[]).includes(raw)) return raw as T;
    throw new Error(`must be one of ${allowed.join(', ')}`);
  };
};
const duration = (raw: string): number => {
  const ms = parseGoDuration(raw);
  if (ms < 0) throw new Error('must not be negative');
  return ms;
};
const positiveDuration = (raw: string): number => {
  const ms = duration(raw);
  if (ms <= 0) throw new Error('must be greater than 0');
  return ms;
};
const byteUnits: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
// Kubernetes quantity suffixes, so the budget reads like the container's memory limit next to it.
const byteSize =
  (min: number, max: number) =>
  (raw: string): number => {
    const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw);
    if (!match) throw new Error('must be a whole number of bytes, optionally with Ki, Mi or Gi');
    const bytes = Number(match[1]) * (byteUnits[match[2] ?? ''] ?? NaN);
    if (bytes < min) throw new Error(`must be at least ${formatByteSize(min)}`);
    if (bytes > max) throw new Error(`must be at most ${formatByteSize(max)}`);
    return bytes;
  };
const formatByteSize = (bytes: number): string => {
  for (const unit of ['Gi', 'Mi', 'Ki'] as const)
    if (bytes % (byteUnits[unit] ?? NaN) === 0) return `${bytes / (byteUnits[unit] ?? NaN)}${unit}`;
  return String(bytes);
};
const listenAddress = (raw: string) => parseListenAddress(raw);
// strconv.ParseBool's spellings, as the Go tool accepted them.
export const boolean = (raw: string): boolean => {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(raw)) return false;
  throw new Error('must be true or false');
};
const ipAddress = (raw: string) => {
  if (isIP(raw) === 0) throw new Error('must be an IPv4 or IPv6 address');
  return raw;
};
const nonEmptyPath = (raw: string) => {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
};

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
      'data: a connection wakes buildkitd and counts as activity only once its first byte arrives (health checks and port scanners wake nothing); connect: at accept, as the Go tool did',
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
      'on SIGTERM, how long open connections (builds) may finish once the listener closed; the gateway exits as soon as the last one closes, so an idle gateway stops after --shutdown-delay',
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
      'connections one builder is given at most, over every gateway replica (0: no cap); with the pool at --max-replicas and every builder full, a new connection waits in arrival order until one closes, or until --ready-wait-timeout (BKA_CAPACITY_TIMEOUT)',
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
      'builders on a cordoned node or one tainted for removal (node.kubernetes.io/unschedulable, karpenter.sh/disrupted, ToBeDeletedByClusterAutoscaler) take no new connections, so a drain is not held up; needs get, list and watch on nodes (without: one BKA_NODES_FORBIDDEN warning, routing as if off)',
    parse: boolean,
    format: String,
  }),
  define({
    key: 'leaderElection',
    flag: 'leader-election',
    env: 'LEADER_ELECTION',
    defaultText: 'true',
    description:
      'share activity through Leases and let only the elected replica scale down; false only for a lone gateway without Lease RBAC (unsafe while Kubernetes runs two gateway pods: eviction, rollout, drain)',
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
      "IP of the gateway's own pod (downward API): published in its report so that a replica cut off from the API server can ask the others whether it alone is cut off (then it steps out of the Service)",
    parse: ipAddress,
    format: (v) => v ?? null,
  }),
] as const;

export interface LoadedConfig {
  config: Config;
  sources: Record<keyof Config, Source>;
  printConfig: boolean;
}

/**
 * Reads flags and environment (env wins over flag, as in the Go tool). An empty env var counts as unset,
 * so `value: ""` in a manifest falls back instead of failing. Throws ConfigError with one line.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LoadedConfig {
  const program = new Command()
    .name('buildkitd-autoscaler')
    .description('Scale-to-zero TCP gateway for a buildkitd StatefulSet')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (text) => process.stdout.write(text) })
    .allowExcessArguments(false)
    .option('--print-config', 'print the effective configuration as JSON, with the source of each value, and exit')
    .version(describeBuild(), '--version', 'print the version and the revision it was built from, and exit')
    .addHelpText(
      'after',
      `\nSubcommand:\n  wake [options]  ask a running gateway's ops port for builders now, optionally wait until they accept\n                  connections (buildkitd-autoscaler wake --help)`,
    );
  for (const definition of optionDefinitions) {
    const defaultNote = definition.defaultText === undefined ? '' : ` (default ${definition.defaultText})`;
    program.addOption(
      new Option(`--${definition.flag} <value>`, `${definition.description}; env ${definition.env}${defaultNote}`),
    );
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') throw error;
      throw new ConfigError(error.message.replace(/^error: /, '').split('\n')[0] ?? error.message);
    }
    throw error;
  }
  const flags = program.opts<Record<string, string | boolean | undefined>>();
  const config = {} as Record<keyof Config, unknown>;
  const sources = {} as Record<keyof Config, Source>;
  for (const definition of optionDefinitions) {
    const envValue = env[definition.env];
    const flagValue = flags[camelCase(definition.flag)];
    let raw: string | undefined;
    let source: Source;
    if (envValue !== undefined && envValue !== '') {
      raw = envValue;
      source = 'env';
    } else if (typeof flagValue === 'string') {
      raw = flagValue;
      source = 'flag';
    } else {
      raw = definition.defaultText;
      source = 'default';
    }
    sources[definition.key] = source;
    if (source === 'default' && definition.derivedDefault) continue; // computed below, from the others
    if (raw === undefined) {
      config[definition.key] = undefined;
      continue;
    }
    try {
      config[definition.key] = definition.parse(raw);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(
        `invalid value ${JSON.stringify(raw)} for --${definition.flag} / ${definition.env} (from ${source}): ${reason}`,
      );
    }
  }
  for (const definition of optionDefinitions) {
    const derive = (definition as { derivedDefault?: (c: Config) => unknown }).derivedDefault;
    if (sources[definition.key] === 'default' && derive) config[definition.key] = derive(config as unknown as Config);
  }
  checkLeaderElectionTimings(config as unknown as Config, sources);
  checkPool(config as unknown as Config, sources);
  return { config: config as unknown as Config, sources, printConfig: flags['printConfig'] === true };
}

/** The effective configuration as printed by --print-config: value as a user would write it, and its source. */
export function describeConfig(
  loaded: LoadedConfig,
): Record<string, { flag: string; env: string; value: string | null; source: Source }> {
  const out: Record<string, { flag: string; env: string; value: string | null; source: Source }> = {};
  for (const definition of optionDefinitions) {
    const format = definition.format as (value: unknown) => string | null;
    out[definition.key] = {
      flag: `--${definition.flag}`,
      env: definition.env,
      value: format(loaded.config[definition.key]),
      source: loaded.sources[definition.key],
    };
  }
  return out;
}

const maxLeaseDurationSeconds = 2 ** 31 - 1;

/** client-go's rule: lease duration > renew deadline > 1.2 x retry period, or a healthy leader could lose its Lease. */
function checkLeaderElectionTimings(config: Config, sources: Record<keyof Config, Source>): void {
  const fail = (
    key: 'leaderElectionLeaseDurationMs' | 'leaderElectionRenewDeadlineMs' | 'leaderElectionRetryPeriodMs',
    reason: string,
  ) => {
    const definition = optionDefinitions.find((d) => d.key === key);
    if (!definition) return;
    throw new ConfigError(
      `invalid value ${JSON.stringify(formatGoDuration(config[key]))} for --${definition.flag} / ${definition.env} (from ${sources[key]}): ${reason}`,
    );
  };
  // A Lease holds its duration as whole seconds in an int32: the API server refuses more.
  if (Math.round(config.leaderElectionLeaseDurationMs / 1000) > maxLeaseDurationSeconds) {
    fail(
      'leaderElectionLeaseDurationMs',
      `must be at most ${formatGoDuration(maxLeaseDurationSeconds * 1000)} (a Lease's leaseDurationSeconds is an int32)`,
    );
  }
  if (config.leaderElectionRenewDeadlineMs >= config.leaderElectionLeaseDurationMs) {
    fail(
      'leaderElectionRenewDeadlineMs',
      `must be less than the lease duration (${formatGoDuration(config.leaderElectionLeaseDurationMs)})`,
    );
  }
  if (config.leaderElectionRenewDeadlineMs <= 1.2 * config.leaderElectionRetryPeriodMs) {
    fail(
      'leaderElectionRetryPeriodMs',
      `1.2 x the retry period must be less than the renew deadline (${formatGoDuration(config.leaderElectionRenewDeadlineMs)})`,
    );
  }
}

function checkPool(config: Config, sources: Record<keyof Config, Source>): void {
  const named = (key: keyof Config) => {
    const definition = optionDefinitions.find((d) => d.key === key);
    return `--${definition?.flag ?? key} / ${definition?.env ?? key}`;
  };
  if (config.minReplicas > config.maxReplicas) {
    throw new ConfigError(
      `invalid value "${config.minReplicas}" for ${named('minReplicas')} (from ${sources.minReplicas}): must not exceed --max-replicas (${config.maxReplicas})`,
    );
  }
  if (config.backendDiscovery === 'dns' && config.maxReplicas > 1) {
    // DNS names cannot say which ordinals are ready (Parallel pods become ready in any order) nor when one is gone.
    throw new ConfigError(
      `invalid value "dns" for ${named('backendDiscovery')} (from ${sources.backendDiscovery}): supports one builder only; use endpoints with --max-replicas ${config.maxReplicas}`,
    );
  }
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}
