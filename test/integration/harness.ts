// Shared setup for the integration suite: a namespace per test on the local cluster, buildkitd as a
// StatefulSet at 0, the shipped RBAC, and the gateway as a real process with its ServiceAccount's token.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { AppsV1Api, CoreV1Api, dumpYaml, loadAllYaml, Watch, type V1StatefulSet } from '@kubernetes/client-node';
import { type CombinedResult, run, runCombined } from '../support/command.ts';
import { ensureCluster, ipArgv, type Cluster } from '../cluster/index.ts';
import { BUILDKITD_TLS_DIR, buildkitdTlsArgs } from '../support/buildkit-tls.ts';
import { spawnGateway } from '../support/gateway-process.ts';
import { freePort } from '../support/net.ts';
import { metricSum } from '../support/prom-text.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { waitFor } from '../support/wait.ts';

export const artifactsRoot = join(REPO_ROOT, '.artifacts', 'integration');

let clusterPromise: Promise<Cluster> | undefined;
export function cluster(): Promise<Cluster> {
  clusterPromise ??= ensureCluster({ requireNetns: true });
  return clusterPromise;
}

export interface BuildkitdSpec {
  /** mock: the seed's socat echo; real: the built buildkitd; never-ready: echo whose readiness probe never passes. */
  kind: 'mock' | 'real' | 'never-ready';
  startDelayMs?: number;
  terminationGraceSeconds?: number;
  /** Parallel (default, as shipped): every missing pod starts at once; OrderedReady: one after the other. */
  podManagementPolicy?: 'Parallel' | 'OrderedReady';
  /** real only: buildkitd serves mTLS with the files of this Secret (support/buildkit-tls.ts), mounted at /certs. */
  tlsSecret?: string;
}

function statefulSetYaml(spec: BuildkitdSpec): string {
  const name = 'buildkitd';
  const tls = spec.tlsSecret === undefined ? '' : `, ${buildkitdTlsArgs.map((a) => JSON.stringify(a)).join(', ')}`;
  const container =
    spec.kind === 'real'
      ? `        - name: buildkitd
          image: moby/buildkit:v0.18.2
          args: ["--addr", "tcp://0.0.0.0:8273"${tls}]
          readinessProbe: {tcpSocket: {port: 8273}, periodSeconds: 1}${
            spec.tlsSecret === undefined
              ? ''
              : `
          volumeMounts: [{name: certs, mountPath: ${BUILDKITD_TLS_DIR}, readOnly: true}]
      volumes: [{name: certs, secret: {secretName: ${spec.tlsSecret}}}]`
          }`
      : `        - name: buildkitd
          image: alpine/socat:latest
          command: ["socat", "TCP4-LISTEN:8273,fork,reuseaddr", "EXEC:cat"]
          readinessProbe: ${spec.kind === 'never-ready' ? '{exec: {command: ["false"]}, periodSeconds: 1}' : '{tcpSocket: {port: 8273}, periodSeconds: 1}'}`;
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}-headless}
spec:
  clusterIP: None
  selector: {app: ${name}}
  ports: [{name: buildkit, port: 8273, targetPort: 8273}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ${name}}
spec:
  replicas: 0
  serviceName: ${name}-headless
  podManagementPolicy: ${spec.podManagementPolicy ?? 'Parallel'}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata:
      labels: {app: ${name}}
      annotations: {bka.test/start-delay-ms: "${spec.startDelayMs ?? 0}"}
    spec:
      terminationGracePeriodSeconds: ${spec.terminationGraceSeconds ?? 5}
      containers:
${container}
`;
}

/** Take one permission away from the shipped Role: the scale subresource, or the list/watch of one resource. */
interface RbacOptions {
  withoutScale?: boolean;
  /** May list but not watch anything. */
  withoutWatch?: boolean;
  withoutWatchOf?: 'statefulsets' | 'endpointslices';
  /** Without the shipped ClusterRole that lets the gateway read Nodes. */
  withoutNodes?: boolean;
  /** Pods may be read and watched but not patched: no busy marks can be written. */
  withoutPodPatch?: boolean;
}

/** The Role, RoleBinding and ServiceAccount exactly as shipped in deploy/kubernetes, moved to `namespace`. */
function shippedRbacYaml(namespace: string, options: RbacOptions = {}): string {
  const files = [
    '01-serviceaccount.yaml',
    '02-role.yaml',
    '03-rolebinding.yaml',
    ...(options.withoutNodes ? [] : ['07-clusterrole-nodes.yaml']),
  ];
  const objects = files.flatMap((f): unknown[] =>
    loadAllYaml(readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', f), 'utf8')),
  ) as Array<{
    kind: string;
    metadata: { name: string; namespace?: string };
    rules?: Array<{ resources?: string[]; resourceNames?: string[]; verbs?: string[] }>;
    subjects?: Array<{ namespace?: string }>;
    roleRef?: { name: string };
  }>;
  for (const object of objects) {
    if (object.kind === 'ClusterRole' || object.kind === 'ClusterRoleBinding') {
      // Cluster-scoped: one per test namespace (deleted with it by setup()).
      object.metadata.name = clusterScopedName(namespace);
      if (object.roleRef) object.roleRef.name = clusterScopedName(namespace);
    } else object.metadata.namespace = namespace;
    for (const subject of object.subjects ?? []) subject.namespace = namespace;
    if (object.kind === 'Role' && options.withoutScale) {
      const before = object.rules?.length ?? 0;
      object.rules = object.rules?.filter((rule) => !rule.resources?.includes('statefulsets/scale'));
      assert.equal(object.rules?.length, before - 1, 'the shipped Role has a statefulsets/scale rule to remove');
    }
    if (object.kind === 'Role' && options.withoutWatch) {
      for (const rule of object.rules ?? []) rule.verbs = rule.verbs?.filter((verb) => verb !== 'watch');
    }
    if (object.kind === 'Role' && options.withoutWatchOf) {
      const before = object.rules?.length ?? 0;
      object.rules = object.rules?.filter((rule) => !rule.resources?.includes(options.withoutWatchOf ?? ''));
      assert.equal(object.rules?.length, before - 1, `the shipped Role has a ${options.withoutWatchOf} rule to remove`);
    }
    if (object.kind === 'Role' && options.withoutPodPatch) {
      const rule = object.rules?.find((r) => r.resources?.includes('pods'));
      assert.ok(rule?.verbs?.includes('patch'), 'the shipped Role lets the gateway patch pods');
      assert.ok(rule);
      rule.verbs = rule.verbs?.filter((verb) => verb !== 'patch');
    }
  }
  return objects.map((object) => dumpYaml(object)).join('---\n');
}

/** The name of a test namespace's copy of the shipped ClusterRole and its binding. */
const clusterScopedName = (namespace: string) => `buildkitd-autoscaler-nodes-${namespace}`;

export interface Gateway {
  proxyPort: number;
  metricsPort: number;
  process: ChildProcess;
  logs(): string;
  events(): Array<Record<string, unknown>>;
  /**
   * The logged lines that match, once at least `count` have been read. Lines are written in batches
   * (src/log.ts): one can reach stdout up to 100 ms after the effect a client sees.
   */
  waitForEvents(
    what: string,
    match: (event: Record<string, unknown>) => boolean,
    count?: number,
    timeoutMs?: number,
  ): Promise<Array<Record<string, unknown>>>;
  /** Returns once every line logged before the call has been read: the basis for asserting that a line is absent. */
  logCaughtUp(): Promise<void>;
  metrics(): Promise<string>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  readyz(): Promise<{
    status: number;
    body: { ready: boolean; checks: Array<{ name: string; ok: boolean; reason?: string }> };
  }>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface Env {
  cluster: Cluster;
  namespace: string;
  apps: AppsV1Api;
  core: CoreV1Api;
  artifacts: string;
  replicas(): Promise<{ spec: number; ready: number }>;
  setReplicas(n: number): Promise<void>;
  /**
   * listenOnAll: the proxy listens on 0.0.0.0 (clients reach it on their own address; see clientAddresses).
   * mayExit: returns also when the process exits before it listens (a start it refuses).
   */
  startGateway(env?: Record<string, string>, options?: { listenOnAll?: boolean; mayExit?: boolean }): Promise<Gateway>;
  /** Watches the buildkitd StatefulSet from now until the test ends: every spec/ready change, with its time. */
  watchReplicas(): Promise<ReplicaHistory>;
  /** `count` extra addresses on lo (10.244.1.x, outside the pod subnet), removed when the test ends. */
  clientAddresses(count: number): Promise<string[]>;
}

export interface ReplicaHistory {
  changes: Array<{ at: number; spec: number; ready: number }>;
  /** The highest spec.replicas seen. */
  maxSpec(): number;
}

let nextClientOctet = 10;

/**
 * A fresh namespace with buildkitd at 0 and the shipped RBAC. On failure the namespace's objects, events
 * and every process log are left under .artifacts/integration/<test>.
 */
export async function setup(
  t: TestContext,
  options: { buildkitd?: BuildkitdSpec | false; rbac?: RbacOptions } = {},
): Promise<Env> {
  const c = await cluster();
  const namespace = await c.createNamespace('it');
  const artifacts = join(artifactsRoot, `${t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}-${namespace}`);
  mkdirSync(artifacts, { recursive: true });
  const kc = c.kubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const apply = async (yaml: string) => {
    const result = await c.kubectl(['-n', namespace, 'apply', '-f', '-'], { input: yaml });
    assert.equal(result.code, 0, result.stderr);
  };
  await apply(shippedRbacYaml(namespace, options.rbac));
  if (options.buildkitd !== false) await apply(statefulSetYaml(options.buildkitd ?? { kind: 'mock' }));
  const saKubeconfig = await c.serviceAccountKubeconfig(namespace, 'buildkitd-autoscaler');
  const gateways: Gateway[] = [];

  t.after(async () => {
    for (const gateway of gateways) await gateway.stop('SIGKILL');
    gateways.forEach((g, i) => writeFileSync(join(artifacts, `gateway-${i}.log`), g.logs()));
    const failed = (t as unknown as { passed?: boolean }).passed === false;
    if (failed || process.env['BKA_KEEP_ARTIFACTS'] === '1') await c.collectArtifacts(namespace, artifacts);
    await c.deleteNamespace(namespace);
    await c.kubectl([
      'delete',
      'clusterrolebinding,clusterrole',
      clusterScopedName(namespace),
      '--ignore-not-found',
      '--wait=false',
    ]);
  });

  const env: Env = {
    cluster: c,
    namespace,
    apps,
    core,
    artifacts,
    async replicas() {
      const sts = await apps.readNamespacedStatefulSet({ name: 'buildkitd', namespace });
      return { spec: sts.spec?.replicas ?? 0, ready: sts.status?.readyReplicas ?? 0 };
    },
    async setReplicas(n) {
      const result = await c.kubectl(['-n', namespace, 'scale', 'statefulset/buildkitd', `--replicas=${n}`]);
      assert.equal(result.code, 0, result.stderr);
    },
    async watchReplicas() {
      const changes: ReplicaHistory['changes'] = [];
      const record = (sts: V1StatefulSet) => {
        const entry = { at: Date.now(), spec: sts.spec?.replicas ?? 0, ready: sts.status?.readyReplicas ?? 0 };
        const last = changes.at(-1);
        if (!last || last.spec !== entry.spec || last.ready !== entry.ready) changes.push(entry);
      };
      let watching = true;
      let request: { abort(): void } | undefined;
      const start = async (): Promise<void> => {
        request = await new Watch(kc).watch(
          `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
          { fieldSelector: 'metadata.name=buildkitd' },
          (_type, object: V1StatefulSet) => record(object),
          // A watch the API server ends is resumed (a missed change would hide a step above the maximum).
          () => void (watching && start()),
        );
      };
      await start();
      t.after(() => {
        watching = false;
        request?.abort();
      });
      return { changes, maxSpec: () => Math.max(0, ...changes.map((c) => c.spec)) };
    },
    async clientAddresses(count) {
      const addresses = Array.from({ length: count }, () => `10.244.1.${nextClientOctet++}`);
      for (const address of addresses) {
        const result = await run(...ipArgv(['addr', 'replace', `${address}/32`, 'dev', 'lo']));
        assert.equal(result.code, 0, result.stderr);
      }
      t.after(async () => {
        for (const address of addresses) await run(...ipArgv(['addr', 'del', `${address}/32`, 'dev', 'lo']));
      });
      return addresses;
    },
    async startGateway(extraEnv = {}, options = {}) {
      const [proxyPort, metricsPort] = [await freePort(), await freePort()];
      // Each process is its own replica, as each gateway pod is (POD_NAME from the downward API).
      const identity = `gateway-${gateways.length}`;
      const child = spawnGateway([], {
        KUBECONFIG_PATH: saKubeconfig,
        BUILDKITD_STATEFULSET_NAMESPACE: namespace,
        PROXY_LISTEN_ADDR: `${options.listenOnAll ? '0.0.0.0' : '127.0.0.1'}:${proxyPort}`,
        METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
        SCALE_DOWN_IDLE_TIMEOUT: '3s',
        READY_WAIT_TIMEOUT: '60s',
        SHUTDOWN_GRACE_PERIOD: '10s',
        LOG_LEVEL: 'debug',
        POD_NAME: identity,
        ...extraEnv,
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      // 'close', not 'exit': the last lines written at exit are read by then.
      const exited = once(child, 'close').then(([code]) => code as number | null);
      const base = `http://127.0.0.1:${metricsPort}`;
      const gateway: Gateway = {
        proxyPort,
        metricsPort,
        process: child,
        logs: () => output,
        events: () =>
          output
            .split('\n')
            .filter((line) => line.startsWith('{'))
            .map((line) => JSON.parse(line) as Record<string, unknown>),
        waitForEvents: (what, match, count = 1, timeoutMs = 10_000) =>
          waitFor(
            `${count} log line(s): ${what}`,
            () => {
              const found = gateway.events().filter(match);
              return found.length >= count && found;
            },
            timeoutMs,
          ),
        async logCaughtUp() {
          // The ops server writes out pending lines before it answers, so they are in the pipe before the answer...
          await (await fetch(`${base}/healthz`)).text();
          // ...and read in the same poll as the answer, which ends before the next check phase.
          await new Promise((r) => setImmediate(r));
        },
        metrics: async () => (await fetch(`${base}/metrics`)).text(),
        async metric(name, labels = {}) {
          return metricSum(await gateway.metrics(), name, labels) ?? 0;
        },
        async readyz() {
          const response = await fetch(`${base}/readyz`);
          return {
            status: response.status,
            body: (await response.json()) as Awaited<ReturnType<Gateway['readyz']>>['body'],
          };
        },
        async stop(signal = 'SIGTERM') {
          if (child.exitCode !== null || child.signalCode !== null) return exited;
          child.kill(signal);
          return exited;
        },
      };
      gateways.push(gateway);
      const exitedEarly = () => options.mayExit === true && (child.exitCode !== null || child.signalCode !== null);
      await waitFor(
        'gateway metrics endpoint',
        async () => exitedEarly() || (await fetch(`${base}/healthz`)).ok,
        20_000,
      );
      await waitFor('gateway proxy listening', () => exitedEarly() || output.includes('proxy listening'), 20_000);
      return gateway;
    },
  };
  return env;
}

/** Runs the real buildctl (on PATH inside the cluster netns) and resolves with its exit code and output. */
export function buildctl(args: string[], env: NodeJS.ProcessEnv): Promise<CombinedResult> {
  return runCombined('buildctl', args, { env });
}
