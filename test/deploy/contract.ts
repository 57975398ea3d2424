// What every way of installing the gateway must give a user, checked on rendered objects: the kustomize
// manifests and the Helm chart run through the same assertions, so they cannot drift apart.
import assert from 'node:assert/strict';
import type {
  V1Container,
  V1Deployment,
  V1PodDisruptionBudget,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { findOne, type Manifest } from './tools.ts';

/** Every setting the gateway reads from the environment, except KUBECONFIG_PATH (in-cluster in a pod). */
export const GATEWAY_ENV = [
  'PROXY_LISTEN_ADDR',
  'METRICS_LISTEN_ADDR',
  'BUILDKITD_STATEFULSET_NAME',
  'BUILDKITD_STATEFULSET_NAMESPACE',
  'BUILDKITD_HEADLESS_SERVICE_NAME',
  'BUILDKITD_TARGET_PORT',
  'BUILDKITD_BACKEND_DISCOVERY',
  'CLUSTER_DOMAIN',
  'SCALE_DOWN_IDLE_TIMEOUT',
  'READY_WAIT_TIMEOUT',
  'WAKE_ON',
  'FIRST_BYTE_TIMEOUT',
  'PROXY_MAX_CONNECTIONS',
  'PROXY_MAX_PENDING',
  'PROXY_MAX_PENDING_BYTES',
  'SHUTDOWN_DELAY',
  'SHUTDOWN_GRACE_PERIOD',
  'LOG_LEVEL',
  'LEADER_ELECTION',
  'LEADER_ELECTION_LEASE_NAME',
  'LEADER_ELECTION_LEASE_DURATION',
  'LEADER_ELECTION_RENEW_DEADLINE',
  'LEADER_ELECTION_RETRY_PERIOD',
  'MAX_REPORT_STALENESS',
  'BUILDKITD_MAX_REPLICAS',
  'BUILDKITD_MIN_REPLICAS',
  'BUILDKITD_CONNECTIONS_PER_REPLICA',
  'BUILDKITD_MAX_CONNECTIONS_PER_REPLICA',
  'BUILDKITD_AFFINITY',
  'WATCH_NODES',
  'POD_NAME',
  'POD_UID',
  'POD_IP',
] as const;
export type GatewayEnvName = (typeof GATEWAY_ENV)[number];

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

const QUANTITY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** Bytes in a Kubernetes quantity such as "256Mi" or "1G". */
export function quantityBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(k|M|G|Ki|Mi|Gi|Ti)?$/.exec(text);
  assert.ok(match, `not a byte quantity: ${text}`);
  return Number(match[1]) * (QUANTITY_UNITS[match[2] ?? ''] ?? NaN);
}

/** Seconds in a Go duration string such as "1m30s" or "500ms". */
export function goDurationSeconds(text: string): number {
  if (text === '0') return 0;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join('') === text, `not a Go duration: ${text}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * (DURATION_UNITS[unit ?? ''] ?? NaN), 0);
}

export function deployment(docs: readonly Manifest[]): V1Deployment {
  return findOne<V1Deployment>(docs, 'Deployment');
}

export function gatewayContainer(docs: readonly Manifest[]): V1Container {
  const containers = deployment(docs).spec?.template.spec?.containers ?? [];
  assert.equal(containers.length, 1, 'the gateway pod runs one container');
  return containers[0] as V1Container;
}

/** The literal value of a gateway env var; undefined when absent, '<from:...>' when taken from a fieldRef. */
export function gatewayEnv(docs: readonly Manifest[], name: string): string | undefined {
  const matches = (gatewayContainer(docs).env ?? []).filter((e) => e.name === name);
  const last = matches.at(-1); // the kubelet lets the last duplicate win
  if (!last) return undefined;
  if (last.valueFrom?.fieldRef) return `<from:${last.valueFrom.fieldRef.fieldPath}>`;
  return last.value ?? '';
}

export function requiredEnv(docs: readonly Manifest[], name: GatewayEnvName): string {
  const value = gatewayEnv(docs, name);
  assert.ok(value !== undefined, `gateway env ${name} is not set`);
  return value;
}

/** The namespace the gateway looks for the StatefulSet in, resolving the downward API form. */
export function statefulSetNamespace(docs: readonly Manifest[]): string {
  const value = requiredEnv(docs, 'BUILDKITD_STATEFULSET_NAMESPACE');
  if (value === '<from:metadata.namespace>') {
    const namespace = deployment(docs).metadata?.namespace;
    assert.ok(namespace, 'the Deployment has a namespace');
    return namespace;
  }
  return value;
}

export function portOfAddr(addr: string): number {
  const match = /:(\d+)$/.exec(addr);
  assert.ok(match?.[1], `listen address without a port: ${addr}`);
  return Number(match[1]);
}

/** A probe or Service targetPort (number or port name) resolved against a container's ports. */
export function resolvePort(container: V1Container, port: number | string | undefined): number {
  if (typeof port === 'number') return port;
  const named = (container.ports ?? []).find((p) => p.name === port);
  assert.ok(named, `container ${container.name} has no port named ${String(port)}`);
  return named.containerPort;
}

interface RuleShape {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** Role rules as sorted, comparable shapes. */
export function ruleShapes(role: V1Role): RuleShape[] {
  return (role.rules ?? [])
    .map((r) => ({
      apiGroups: [...(r.apiGroups ?? [])].sort(),
      resources: [...(r.resources ?? [])].sort(),
      ...(r.resourceNames ? { resourceNames: [...r.resourceNames].sort() } : {}),
      verbs: [...r.verbs].sort(),
    }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** The least-privilege rules the gateway needs for one StatefulSet; Leases only with leader election. */
export function expectedRules(statefulSetName: string, options: { leaderElection: boolean }): RuleShape[] {
  const rules: RuleShape[] = [
    {
      apiGroups: ['apps'],
      resources: ['statefulsets'],
      resourceNames: [statefulSetName],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: ['apps'],
      resources: ['statefulsets/scale'],
      resourceNames: [statefulSetName],
      verbs: ['get', 'patch', 'update'],
    },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
  ];
  // Report Leases are created, renewed and deleted per replica and watched by label; the leader Lease is updated.
  if (options.leaderElection) {
    rules.push({
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'],
    });
  }
  return rules
    .map((r) => ({ ...r, verbs: [...r.verbs].sort() }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

function isSubset(part: Record<string, string> | undefined, whole: Record<string, string> | undefined): boolean {
  return Object.entries(part ?? {}).every(([k, v]) => whole?.[k] === v);
}

/**
 * The gateway Deployment, its identity, its permissions and its Service, as a user relies on them: with
 * leader election several replicas, a disruption budget and Lease rights; without it exactly one replica.
 */
export function assertGatewayContract(docs: readonly Manifest[]): void {
  const dep = deployment(docs);
  const pod = dep.spec?.template.spec;
  const container = gatewayContainer(docs);
  assert.ok(pod, 'the Deployment has a pod template');

  const replicas = dep.spec?.replicas ?? 1;
  const rollout = dep.spec?.strategy;
  assert.equal(rollout?.type, 'RollingUpdate', 'an upgrade starts the new gateway before the old one drains');
  assert.equal(
    rollout?.rollingUpdate?.maxUnavailable,
    0,
    'a rollout never removes a gateway before its successor is Ready',
  );
  assert.equal(rollout?.rollingUpdate?.maxSurge, 1);
  const spread = pod.topologySpreadConstraints ?? [];
  assert.equal(spread.length, 1, 'one preferred spread of the gateway pods');
  assert.equal(spread[0]?.topologyKey, 'kubernetes.io/hostname', 'spread across nodes');
  assert.equal(
    spread[0]?.whenUnsatisfiable,
    'ScheduleAnyway',
    'a preference: a one-node cluster still schedules every replica',
  );
  assert.ok(
    isSubset(spread[0]?.labelSelector?.matchLabels, dep.spec?.template.metadata?.labels),
    'the spread counts the gateway pods',
  );

  const leaderElection = requiredEnv(docs, 'LEADER_ELECTION');
  assert.ok(leaderElection === 'true' || leaderElection === 'false', `LEADER_ELECTION=${leaderElection}`);
  const budgets = gatewayBudgets(docs);
  if (leaderElection === 'true') {
    assert.ok(
      replicas >= 2,
      `${replicas} gateway replica(s): a rollout or a drain would leave clients without a gateway`,
    );
    assert.equal(requiredEnv(docs, 'POD_NAME'), '<from:metadata.name>', 'each replica reports under its own pod name');
    assert.equal(requiredEnv(docs, 'POD_UID'), '<from:metadata.uid>', 'a report Lease is deleted with its pod');
    assert.equal(
      requiredEnv(docs, 'POD_IP'),
      '<from:status.podIP>',
      'the other replicas can ask it whether it alone is cut off',
    );
    assert.equal(budgets.length, 1, 'a PodDisruptionBudget keeps a gateway up during node drains');
    const budget = budgets[0] as V1PodDisruptionBudget;
    assert.equal(budget.metadata?.namespace, dep.metadata?.namespace);
    assert.ok(
      isSubset(budget.spec?.selector?.matchLabels, dep.spec?.template.metadata?.labels),
      'the budget covers the gateway pods',
    );
    assert.equal(budget.spec?.minAvailable, 1, 'one gateway stays up while another is evicted');
  } else {
    assert.equal(replicas, 1, "without leader election a second gateway would scale down under the first one's builds");
    assert.equal(budgets.length, 0, 'a budget of one replica would block every node drain');
  }

  for (const name of GATEWAY_ENV) requiredEnv(docs, name);
  assert.equal(gatewayEnv(docs, 'KUBECONFIG_PATH'), undefined, 'in a pod the gateway uses its ServiceAccount');
  assert.equal(pod.enableServiceLinks, false, 'no injected BUILDKITD_* service variables');

  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL']);

  const metricsPort = portOfAddr(requiredEnv(docs, 'METRICS_LISTEN_ADDR'));
  const proxyPort = portOfAddr(requiredEnv(docs, 'PROXY_LISTEN_ADDR'));
  assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(
    resolvePort(container, container.livenessProbe?.httpGet?.port),
    metricsPort,
    'liveness probes the metrics port',
  );
  assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
  assert.equal(
    resolvePort(container, container.readinessProbe?.httpGet?.port),
    metricsPort,
    'readiness probes the metrics port',
  );
  assert.equal(
    resolvePort(container, 'buildkit'),
    proxyPort,
    'the buildkit containerPort is the one the gateway listens on',
  );

  const drainSeconds =
    goDurationSeconds(requiredEnv(docs, 'SHUTDOWN_GRACE_PERIOD')) +
    goDurationSeconds(requiredEnv(docs, 'SHUTDOWN_DELAY'));
  const grace = pod.terminationGracePeriodSeconds;
  assert.ok(
    grace !== undefined && grace > drainSeconds,
    `terminationGracePeriodSeconds ${grace} must exceed the ${drainSeconds}s drain`,
  );

  assert.ok(container.resources?.requests?.memory, 'memory request set');
  assert.ok(container.resources?.limits?.memory, 'memory limit set');
  // kube-score's container-ephemeral-storage-request-and-limit; the kubelet counts the log files (10Mi x 5 rotated).
  assert.ok(container.resources?.requests?.['ephemeral-storage'], 'ephemeral-storage request set');
  const ephemeralLimit = container.resources?.limits?.['ephemeral-storage'];
  assert.ok(
    ephemeralLimit && quantityBytes(ephemeralLimit) >= 2 * 50 * 1024 ** 2,
    `ephemeral-storage limit ${ephemeralLimit} well above the kubelet's default log rotation (50Mi)`,
  );

  const accountName = pod.serviceAccountName;
  assert.ok(accountName, 'the gateway runs as its own ServiceAccount');
  findOne<V1ServiceAccount>(docs, 'ServiceAccount', accountName);

  const stsName = requiredEnv(docs, 'BUILDKITD_STATEFULSET_NAME');
  const role = findOne<V1Role>(docs, 'Role');
  assert.equal(role.metadata?.namespace, statefulSetNamespace(docs), 'the Role is where the StatefulSet is');
  assert.deepEqual(ruleShapes(role), expectedRules(stsName, { leaderElection: leaderElection === 'true' }));
  if (leaderElection === 'true') {
    const group = requiredEnv(docs, 'LEADER_ELECTION_LEASE_NAME');
    assert.equal(
      group,
      `${stsName}-autoscaler`,
      "the leader Lease has the gateway's default name for this StatefulSet",
    );
  }
  const binding = findOne<V1RoleBinding>(docs, 'RoleBinding');
  assert.equal(binding.metadata?.namespace, role.metadata?.namespace);
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata?.name });
  assert.deepEqual(binding.subjects, [
    { kind: 'ServiceAccount', name: accountName, namespace: dep.metadata?.namespace },
  ]);

  const service = findOne<V1Service>(docs, 'Service', dep.metadata?.name);
  assert.ok(
    isSubset(service.spec?.selector, dep.spec?.template.metadata?.labels),
    'the Service selects the gateway pod',
  );
  // The ops port may have a Service of its own (the chart's <name>-metrics); together they reach both ports.
  const gatewayServices = docs.filter(
    (d): d is Manifest & V1Service =>
      d.kind === 'Service' && isSubset((d as V1Service).spec?.selector, dep.spec?.template.metadata?.labels),
  );
  const servicePorts = Object.fromEntries(
    gatewayServices
      .flatMap((s) => s.spec?.ports ?? [])
      .map((p): [string, number] => [p.name ?? '', resolvePort(container, p.targetPort)]),
  );
  assert.deepEqual(servicePorts, { buildkit: proxyPort, metrics: metricsPort });
  assert.equal(
    service.spec?.ports?.find((p) => p.name === 'buildkit')?.name,
    'buildkit',
    'clients reach the proxy port through the Service named like the Deployment',
  );
}

export function statefulSet(docs: readonly Manifest[]): V1StatefulSet {
  return findOne<V1StatefulSet>(docs, 'StatefulSet');
}

export function buildkitdContainer(docs: readonly Manifest[]): V1Container {
  const container = statefulSet(docs).spec?.template.spec?.containers.find((c) => c.name === 'buildkitd');
  assert.ok(container, 'the StatefulSet has a buildkitd container');
  return container;
}

/**
 * The example buildkitd matches what the gateway is told (`gatewayDocs` may be the same rendering or
 * the separately rendered gateway manifests): name, headless Service, port, readiness, 0 replicas.
 */
/** The PodDisruptionBudgets over the gateway pods (the builders' busy budget is another one). */
export function gatewayBudgets(docs: readonly Manifest[]): V1PodDisruptionBudget[] {
  const budgets = docs.filter((d) => d.kind === 'PodDisruptionBudget') as unknown as V1PodDisruptionBudget[];
  return budgets.filter((budget) => budget.spec?.selector?.matchLabels?.['app.kubernetes.io/component'] === 'gateway');
}

export function assertBuildkitdContract(docs: readonly Manifest[], gatewayDocs: readonly Manifest[]): void {
  const sts = statefulSet(docs);
  const container = buildkitdContainer(docs);
  const port = Number(requiredEnv(gatewayDocs, 'BUILDKITD_TARGET_PORT'));
  const serviceName = requiredEnv(gatewayDocs, 'BUILDKITD_HEADLESS_SERVICE_NAME');

  assert.equal(sts.metadata?.name, requiredEnv(gatewayDocs, 'BUILDKITD_STATEFULSET_NAME'));
  assert.equal(sts.metadata?.namespace, statefulSetNamespace(gatewayDocs));
  assert.equal(sts.spec?.replicas, 0, 'buildkitd is installed asleep');
  assert.equal(sts.spec?.serviceName, serviceName);
  assert.equal(container.image, 'moby/buildkit:v0.18.2');
  assert.deepEqual(container.args?.slice(0, 2), ['--addr', `tcp://0.0.0.0:${port}`]);
  assert.equal(
    resolvePort(container, container.readinessProbe?.tcpSocket?.port),
    port,
    'readiness is a TCP connect to buildkitd',
  );
  assert.ok(
    container.resources?.requests?.cpu && container.resources.requests.memory,
    'buildkitd has resource requests',
  );

  const headless = findOne<V1Service>(docs, 'Service', serviceName);
  assert.equal(headless.spec?.clusterIP, 'None', 'the buildkitd Service is headless');
  assert.equal(headless.metadata?.namespace, sts.metadata?.namespace);
  assert.ok(
    isSubset(headless.spec?.selector, sts.spec?.template.metadata?.labels),
    'the headless Service selects the buildkitd pods',
  );
  assert.deepEqual(
    (headless.spec?.ports ?? []).map((p) => resolvePort(container, p.targetPort)),
    [port],
    'the headless Service targets the buildkitd port',
  );

  // A busy builder deleted outright waits in preStop while its own labels (a downward-API file) say busy.
  const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
  assert.equal(preStop[0], '/bin/sh');
  const mount = container.volumeMounts?.find((m) => m.name === 'podinfo');
  const labelsFile = sts.spec?.template.spec?.volumes
    ?.find((v) => v.name === 'podinfo')
    ?.downwardAPI?.items?.find((i) => i.fieldRef?.fieldPath === 'metadata.labels');
  assert.ok(mount && labelsFile, 'the pod labels are mounted as a file');
  assert.ok(
    preStop[2]?.includes(`${mount.mountPath}/${labelsFile.path}`) &&
      preStop[2].includes('buildkitd-autoscaler/busy="true"'),
    `preStop waits on the busy label: ${preStop.join(' ')}`,
  );
  const busy = findOne<V1PodDisruptionBudget>(docs, 'PodDisruptionBudget', `${sts.metadata?.name ?? ''}-busy`);
  assert.equal(busy.metadata?.namespace, sts.metadata?.namespace);
  assert.equal(busy.spec?.maxUnavailable, 0, 'a busy builder is never evicted');
  const { 'buildkitd-autoscaler/busy': busyValue, ...podLabels } = busy.spec?.selector?.matchLabels ?? {};
  assert.equal(busyValue, 'true', 'the budget selects the pods the gateway labels busy');
  assert.ok(isSubset(podLabels, sts.spec?.template.metadata?.labels), "and only this StatefulSet's pods");
}
