// The values reach the program: the environment each install method renders is handed to the real
// gateway entry point (`--print-config`), which must accept it and report every setting as coming from
// the environment with the value the user asked for. A name typo in a template, or a value the gateway
// would reject at start-up (exit 2, crash-looping pod), fails here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { deployment, GATEWAY_ENV, gatewayContainer } from './contract.ts';
import { CHART_DIR, helmTemplate, KUSTOMIZE_DIR, kustomize, type Manifest, REPO_ROOT } from './tools.ts';

const execFileAsync = promisify(execFile);
const ENTRY = path.join(REPO_ROOT, 'src/main.ts');

interface Setting {
  env: string;
  value: string | null;
  source: 'default' | 'flag' | 'env';
}

const POD_NAME = 'buildkitd-autoscaler-7d9c8b6f5-x2k4q';
const POD_UID = '0b7c6a4e-1f2d-4c3b-9a8e-5d6f7a8b9c0d';
const POD_IP = '10.244.3.17';

/** The container's environment as the kubelet would build it (downward API fields of a pod resolved). */
function podEnv(docs: readonly Manifest[]): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.namespace': deployment(docs).metadata?.namespace ?? '',
    'metadata.name': POD_NAME,
    'metadata.uid': POD_UID,
    'status.podIP': POD_IP,
  };
  const env: Record<string, string> = {};
  for (const e of gatewayContainer(docs).env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (field !== undefined && fields[field] !== undefined) env[e.name] = fields[field];
    else if (e.valueFrom) assert.fail(`env ${e.name} uses a source this test cannot resolve`);
    else env[e.name] = e.value ?? '';
  }
  return env;
}

/** Runs the gateway with only that environment and returns its effective configuration by env name. */
async function effectiveConfig(env: Record<string, string>): Promise<Record<string, Setting>> {
  const { stdout } = await execFileAsync(process.execPath, [ENTRY, '--print-config'], {
    env: { PATH: process.env.PATH ?? '', ...env },
  }).catch((error: unknown) => {
    const failed = error as { stderr?: string };
    throw new Error(`the gateway rejected the rendered configuration: ${failed.stderr ?? String(error)}`, {
      cause: error,
    });
  });
  const described = JSON.parse(stdout) as Record<string, Setting>;
  return Object.fromEntries(Object.values(described).map((s) => [s.env, s]));
}

function assertAllFromEnv(config: Record<string, Setting>): void {
  for (const name of GATEWAY_ENV) {
    assert.ok(config[name], `the gateway has no setting read from ${name}`);
    assert.equal(config[name].source, 'env', `${name} is not taken from the rendered environment`);
  }
}

describe('the gateway accepts what is installed', () => {
  let workDir: string;
  before(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'bka-gateway-config-'));
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('deploy/kubernetes: every setting from the environment, StatefulSet namespace from the pod', async () => {
    const config = await effectiveConfig(podEnv(await kustomize(KUSTOMIZE_DIR)));
    assertAllFromEnv(config);
    assert.equal(config.BUILDKITD_STATEFULSET_NAMESPACE?.value, 'buildkit');
    assert.equal(config.KUBECONFIG_PATH?.value, null, 'in-cluster credentials');
    assert.equal(config.LEADER_ELECTION?.value, 'true');
    assert.equal(config.LEADER_ELECTION_LEASE_NAME?.value, 'buildkitd-autoscaler');
    assert.equal(config.POD_NAME?.value, POD_NAME, 'each replica is named after its pod in the Leases');
    assert.equal(config.POD_UID?.value, POD_UID, 'its report Lease is owned by its pod');
    assert.equal(config.POD_IP?.value, POD_IP, 'the other replicas can ask it whether it alone is cut off');
    assert.equal(config.BUILDKITD_MAX_REPLICAS?.value, '1', 'one builder unless the pool is raised');
    assert.equal(config.BUILDKITD_AFFINITY?.value, 'client-ip');
  });

  it('chart defaults: every setting from the environment, the release namespace for the StatefulSet', async () => {
    const config = await effectiveConfig(podEnv(await helmTemplate(undefined, { namespace: 'builds' })));
    assertAllFromEnv(config);
    assert.equal(config.BUILDKITD_STATEFULSET_NAMESPACE?.value, 'builds');
    assert.equal(
      config.LEADER_ELECTION_LEASE_NAME?.value,
      'buildkitd-autoscaler',
      "the gateway's own default for this StatefulSet",
    );
  });

  it('chart with a single replica and leader election off: the gateway accepts it', async () => {
    const docs = await helmTemplate(undefined, {
      args: [
        '--set',
        'replicaCount=1',
        '--set',
        'leaderElection.enabled=false',
        '--set',
        'podDisruptionBudget.enabled=false',
      ],
    });
    const config = await effectiveConfig(podEnv(docs));
    assertAllFromEnv(config);
    assert.equal(config.LEADER_ELECTION?.value, 'false');
  });

  it('chart pool values: a pool of builders arrives as the user set it', async () => {
    const file = path.join(workDir, 'pool.json');
    await writeFile(
      file,
      JSON.stringify({
        pool: {
          maxReplicas: 6,
          minReplicas: 2,
          connectionsPerReplica: 3,
          maxConnectionsPerReplica: 4,
          affinity: 'none',
        },
      }),
    );
    const config = await effectiveConfig(podEnv(await helmTemplate(file)));
    assertAllFromEnv(config);
    assert.deepEqual(
      [
        config.BUILDKITD_MAX_REPLICAS?.value,
        config.BUILDKITD_MIN_REPLICAS?.value,
        config.BUILDKITD_CONNECTIONS_PER_REPLICA?.value,
        config.BUILDKITD_AFFINITY?.value,
      ],
      ['6', '2', '3', 'none'],
    );
    assert.equal(config.BUILDKITD_MAX_CONNECTIONS_PER_REPLICA?.value, '4');
  });

  it('chart values: each gateway and buildkitd setting arrives with the value the user set', async () => {
    const values = {
      gateway: {
        port: 18080,
        metricsPort: 19090,
        idleTimeout: '7m30s',
        readyWaitTimeout: '11m',
        wakeOn: 'connect',
        firstByteTimeout: '1m30s',
        shutdownGracePeriod: '45s',
        shutdownDelay: '8s',
        logLevel: 'debug',
        maxConnections: 123,
        maxPending: 45,
        maxPendingBytes: '48Mi',
        backendDiscovery: 'dns',
        clusterDomain: 'corp.example',
      },
      buildkitd: { statefulSetName: 'bk', namespace: 'farm', headlessServiceName: 'bk-pods', port: 1234 },
      leaderElection: {
        leaseName: 'bk-leader',
        leaseDuration: '30s',
        renewDeadline: '20s',
        retryPeriod: '5s',
        maxReportStaleness: '15m',
      },
    };
    const file = path.join(workDir, 'values.json');
    await writeFile(file, JSON.stringify(values));
    const config = await effectiveConfig(podEnv(await helmTemplate(file, { namespace: 'builds' })));
    assertAllFromEnv(config);
    const got = Object.fromEntries(GATEWAY_ENV.map((name) => [name, config[name]?.value]));
    assert.deepEqual(got, {
      PROXY_LISTEN_ADDR: ':18080',
      METRICS_LISTEN_ADDR: ':19090',
      BUILDKITD_STATEFULSET_NAME: 'bk',
      BUILDKITD_STATEFULSET_NAMESPACE: 'farm',
      BUILDKITD_HEADLESS_SERVICE_NAME: 'bk-pods',
      BUILDKITD_TARGET_PORT: '1234',
      BUILDKITD_BACKEND_DISCOVERY: 'dns',
      CLUSTER_DOMAIN: 'corp.example',
      SCALE_DOWN_IDLE_TIMEOUT: '7m30s',
      READY_WAIT_TIMEOUT: '11m0s',
      WAKE_ON: 'connect',
      FIRST_BYTE_TIMEOUT: '1m30s',
      PROXY_MAX_CONNECTIONS: '123',
      PROXY_MAX_PENDING: '45',
      PROXY_MAX_PENDING_BYTES: '48Mi',
      SHUTDOWN_DELAY: '8s',
      SHUTDOWN_GRACE_PERIOD: '45s',
      LOG_LEVEL: 'debug',
      LEADER_ELECTION: 'true',
      LEADER_ELECTION_LEASE_NAME: 'bk-leader',
      LEADER_ELECTION_LEASE_DURATION: '30s',
      LEADER_ELECTION_RENEW_DEADLINE: '20s',
      LEADER_ELECTION_RETRY_PERIOD: '5s',
      MAX_REPORT_STALENESS: '15m0s',
      // dns discovery: one builder (the pool's values have their own test above).
      BUILDKITD_MAX_REPLICAS: '1',
      BUILDKITD_MIN_REPLICAS: '0',
      BUILDKITD_CONNECTIONS_PER_REPLICA: '8',
      BUILDKITD_MAX_CONNECTIONS_PER_REPLICA: '0',
      BUILDKITD_AFFINITY: 'client-ip',
      WATCH_NODES: 'true',
      POD_NAME,
      POD_UID,
      POD_IP,
    });
  });

  it('accepts every log level the chart schema allows', async () => {
    const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as {
      properties: { gateway: { properties: { logLevel: { enum: string[] } } } };
    };
    const levels = schema.properties.gateway.properties.logLevel.enum;
    assert.ok(levels.length > 1);
    await Promise.all(
      levels.map(async (level) => {
        const docs = await helmTemplate(undefined, { args: ['--set', `gateway.logLevel=${level}`] });
        assert.equal((await effectiveConfig(podEnv(docs))).LOG_LEVEL?.value, level);
      }),
    );
  });
});
