// The chart values and what each must change in the rendering, shared by the rendering test
// (chart-values.test.ts) and the API-server test (cluster/install.test.ts).
import assert from 'node:assert/strict';
import type { V1ConfigMap, V1Role, V1RoleBinding, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import {
  buildkitdContainer,
  deployment,
  expectedRules,
  gatewayContainer,
  gatewayEnv,
  ruleShapes,
  statefulSet,
  gatewayBudgets,
} from './contract.ts';
import { findOne, type Manifest } from './tools.ts';

export type Values = Record<string, unknown>;

export interface ValueCase {
  /** The value under test, distinct from the default. */
  set: unknown;
  /** Values both renderings need for this one to matter (for example persistence.enabled for its size). */
  context?: Values;
  /** Passes on the rendering with `set`, fails on the one without. */
  expect: (docs: Manifest[]) => void;
}

export const RELEASE_NAMESPACE = 'builds';

function podSpec(docs: Manifest[]) {
  const spec = deployment(docs).spec?.template.spec;
  assert.ok(spec);
  return spec;
}
function containerPort(docs: Manifest[], name: string): number | undefined {
  return gatewayContainer(docs).ports?.find((p) => p.name === name)?.containerPort;
}
function gatewayService(docs: Manifest[]): V1Service {
  return findOne<V1Service>(docs, 'Service', deployment(docs).metadata?.name);
}
function servicePort(docs: Manifest[], name: string): number | undefined {
  return gatewayService(docs).spec?.ports?.find((p) => p.name === name)?.port;
}
function metricsService(docs: Manifest[]): V1Service {
  return findOne<V1Service>(docs, 'Service', `${deployment(docs).metadata?.name ?? ''}-metrics`);
}
function stsPodSpec(docs: Manifest[]) {
  const spec = statefulSet(docs).spec?.template.spec;
  assert.ok(spec);
  return spec;
}
function stsSpec(docs: Manifest[]) {
  const spec = statefulSet(docs).spec;
  assert.ok(spec);
  return spec;
}
function budgetSpec(docs: Manifest[]) {
  const spec = gatewayBudgets(docs)[0]?.spec;
  assert.ok(spec);
  return spec;
}
function has(docs: Manifest[], kind: string): boolean {
  return docs.some((d) => d.kind === kind);
}

export const CASES: Record<string, ValueCase> = {
  'image.repository': {
    set: 'example/gateway',
    expect: (d) => assert.equal(gatewayContainer(d).image, 'example/gateway:0.1.0'),
  },
  'image.tag': { set: '9.9.9', expect: (d) => assert.equal(gatewayContainer(d).image, 'buildkitd-autoscaler:9.9.9') },
  'image.pullPolicy': { set: 'Always', expect: (d) => assert.equal(gatewayContainer(d).imagePullPolicy, 'Always') },
  imagePullSecrets: {
    set: [{ name: 'pull-secret' }],
    expect: (d) => {
      assert.deepEqual(podSpec(d).imagePullSecrets, [{ name: 'pull-secret' }]);
      assert.deepEqual(stsSpec(d).template.spec?.imagePullSecrets, [{ name: 'pull-secret' }]);
    },
  },
  nameOverride: {
    set: 'gw',
    expect: (d) => {
      assert.equal(deployment(d).metadata?.name, 'bka-gw');
      assert.equal(deployment(d).spec?.template.metadata?.labels?.['app.kubernetes.io/name'], 'gw');
      assert.equal(
        budgetSpec(d).selector?.matchLabels?.['app.kubernetes.io/name'],
        'gw',
        'the budget follows the pod labels',
      );
      assert.equal(
        podSpec(d).topologySpreadConstraints?.[0]?.labelSelector?.matchLabels?.['app.kubernetes.io/name'],
        'gw',
        'so does the spread',
      );
    },
  },
  fullnameOverride: {
    set: 'edge',
    expect: (d) => {
      assert.equal(deployment(d).metadata?.name, 'edge');
      assert.equal(gatewayService(d).metadata?.name, 'edge');
      assert.equal(findOne<V1Role>(d, 'Role').metadata?.name, 'edge');
      assert.equal(gatewayBudgets(d)[0]?.metadata?.name, 'edge');
    },
  },
  'serviceAccount.create': {
    set: false,
    context: { serviceAccount: { name: 'existing-sa' } },
    expect: (d) => {
      assert.equal(has(d, 'ServiceAccount'), false, 'no ServiceAccount rendered');
      assert.equal(podSpec(d).serviceAccountName, 'existing-sa');
    },
  },
  'serviceAccount.name': {
    set: 'builder',
    expect: (d) => {
      assert.equal(findOne<V1ServiceAccount>(d, 'ServiceAccount').metadata?.name, 'builder');
      assert.equal(podSpec(d).serviceAccountName, 'builder');
      assert.equal(findOne<V1RoleBinding>(d, 'RoleBinding').subjects?.[0]?.name, 'builder');
    },
  },
  'serviceAccount.annotations': {
    set: { 'iam.example.com/role': 'builder' },
    expect: (d) =>
      assert.deepEqual(findOne<V1ServiceAccount>(d, 'ServiceAccount').metadata?.annotations, {
        'iam.example.com/role': 'builder',
      }),
  },
  'rbac.create': {
    set: false,
    expect: (d) => {
      assert.equal(has(d, 'Role'), false, 'no Role');
      assert.equal(has(d, 'RoleBinding'), false, 'no RoleBinding');
    },
  },
  'gateway.port': {
    set: 18080,
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'PROXY_LISTEN_ADDR'), ':18080');
      assert.equal(containerPort(d, 'buildkit'), 18080);
    },
  },
  'gateway.metricsPort': {
    set: 19090,
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'METRICS_LISTEN_ADDR'), ':19090');
      assert.equal(containerPort(d, 'metrics'), 19090);
    },
  },
  'gateway.idleTimeout': {
    set: '7m30s',
    expect: (d) => assert.equal(gatewayEnv(d, 'SCALE_DOWN_IDLE_TIMEOUT'), '7m30s'),
  },
  'gateway.readyWaitTimeout': {
    set: '11m0s',
    expect: (d) => assert.equal(gatewayEnv(d, 'READY_WAIT_TIMEOUT'), '11m0s'),
  },
  'gateway.wakeOn': { set: 'connect', expect: (d) => assert.equal(gatewayEnv(d, 'WAKE_ON'), 'connect') },
  'gateway.firstByteTimeout': { set: '45s', expect: (d) => assert.equal(gatewayEnv(d, 'FIRST_BYTE_TIMEOUT'), '45s') },
  'gateway.shutdownGracePeriod': {
    set: '1m',
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'SHUTDOWN_GRACE_PERIOD'), '1m');
      assert.equal(podSpec(d).terminationGracePeriodSeconds, 75, 'the pod outlives delay and drain by 10s');
    },
  },
  'gateway.shutdownDelay': {
    set: '20s',
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'SHUTDOWN_DELAY'), '20s');
      assert.equal(podSpec(d).terminationGracePeriodSeconds, 3630, 'delay + drain (1h) + 10s');
    },
  },
  'gateway.logLevel': { set: 'debug', expect: (d) => assert.equal(gatewayEnv(d, 'LOG_LEVEL'), 'debug') },
  'gateway.maxConnections': { set: 123, expect: (d) => assert.equal(gatewayEnv(d, 'PROXY_MAX_CONNECTIONS'), '123') },
  'gateway.maxPending': { set: 45, expect: (d) => assert.equal(gatewayEnv(d, 'PROXY_MAX_PENDING'), '45') },
  'gateway.maxPendingBytes': {
    set: '1Gi',
    expect: (d) => assert.equal(gatewayEnv(d, 'PROXY_MAX_PENDING_BYTES'), '1Gi'),
  },
  'gateway.backendDiscovery': {
    set: 'dns',
    expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_BACKEND_DISCOVERY'), 'dns'),
  },
  'gateway.clusterDomain': {
    set: 'corp.example',
    expect: (d) => assert.equal(gatewayEnv(d, 'CLUSTER_DOMAIN'), 'corp.example'),
  },
  'gateway.extraEnv': {
    set: [
      { name: 'LOG_LEVEL', value: 'trace' },
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=96' },
    ],
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'NODE_OPTIONS'), '--max-old-space-size=96');
      assert.equal(gatewayEnv(d, 'LOG_LEVEL'), 'trace', 'extraEnv comes last, so it wins');
    },
  },
  'buildkitd.enabled': {
    set: false,
    expect: (d) => {
      assert.equal(has(d, 'StatefulSet'), false, 'no StatefulSet');
      assert.deepEqual(
        d.filter((x) => x.kind === 'Service').map((x) => x.metadata.name),
        ['bka-buildkitd-autoscaler', 'bka-buildkitd-autoscaler-metrics'],
      );
      assert.equal(
        gatewayEnv(d, 'BUILDKITD_STATEFULSET_NAME'),
        'buildkitd',
        'the gateway still scales the named StatefulSet',
      );
    },
  },
  'buildkitd.statefulSetName': {
    set: 'bk',
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'BUILDKITD_STATEFULSET_NAME'), 'bk');
      assert.equal(statefulSet(d).metadata?.name, 'bk');
      assert.deepEqual(ruleShapes(findOne<V1Role>(d, 'Role')), expectedRules('bk', { leaderElection: true }));
      assert.equal(gatewayEnv(d, 'LEADER_ELECTION_LEASE_NAME'), 'bk-autoscaler', 'one Lease group per StatefulSet');
    },
  },
  'buildkitd.namespace': {
    set: 'buildkit-farm',
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'BUILDKITD_STATEFULSET_NAMESPACE'), 'buildkit-farm');
      assert.equal(statefulSet(d).metadata?.namespace, 'buildkit-farm');
      assert.equal(findOne(d, 'Service', 'buildkitd-headless').metadata.namespace, 'buildkit-farm');
      assert.equal(findOne<V1Role>(d, 'Role').metadata?.namespace, 'buildkit-farm');
      const binding = findOne<V1RoleBinding>(d, 'RoleBinding');
      assert.equal(binding.metadata?.namespace, 'buildkit-farm');
      assert.equal(
        binding.subjects?.[0]?.namespace,
        RELEASE_NAMESPACE,
        'the subject is the gateway in the release namespace',
      );
      assert.equal(deployment(d).metadata?.namespace, RELEASE_NAMESPACE);
      assert.equal(
        gatewayBudgets(d)[0]?.metadata?.namespace,
        RELEASE_NAMESPACE,
        'the budget is next to the gateway pods',
      );
    },
  },
  'buildkitd.headlessServiceName': {
    set: 'bk-pods',
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'BUILDKITD_HEADLESS_SERVICE_NAME'), 'bk-pods');
      assert.equal(findOne<V1Service>(d, 'Service', 'bk-pods').spec?.clusterIP, 'None');
      assert.equal(stsSpec(d).serviceName, 'bk-pods');
    },
  },
  'buildkitd.port': {
    set: 1234,
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'BUILDKITD_TARGET_PORT'), '1234');
      assert.deepEqual(buildkitdContainer(d).args, ['--addr', 'tcp://0.0.0.0:1234']);
      assert.equal(buildkitdContainer(d).ports?.[0]?.containerPort, 1234);
      assert.equal(findOne<V1Service>(d, 'Service', 'buildkitd-headless').spec?.ports?.[0]?.port, 1234);
    },
  },
  'buildkitd.initialReplicas': { set: 2, expect: (d) => assert.equal(stsSpec(d).replicas, 2) },
  'buildkitd.image.repository': {
    set: 'example/buildkit',
    expect: (d) => assert.equal(buildkitdContainer(d).image, 'example/buildkit:v0.18.2'),
  },
  'buildkitd.image.tag': {
    set: 'v0.18.2-rootless',
    expect: (d) => assert.equal(buildkitdContainer(d).image, 'moby/buildkit:v0.18.2-rootless'),
  },
  'buildkitd.image.pullPolicy': {
    set: 'Always',
    expect: (d) => assert.equal(buildkitdContainer(d).imagePullPolicy, 'Always'),
  },
  'buildkitd.extraArgs': {
    set: ['--oci-worker-gc-keepstorage=20000'],
    expect: (d) =>
      assert.deepEqual(buildkitdContainer(d).args, [
        '--addr',
        'tcp://0.0.0.0:8273',
        '--oci-worker-gc-keepstorage=20000',
      ]),
  },
  'buildkitd.config': {
    set: '[worker.oci]\n  max-parallelism = 4\n',
    expect: (d) => {
      const config = findOne<V1ConfigMap>(d, 'ConfigMap', 'buildkitd-config');
      assert.equal(config.data?.['buildkitd.toml'], '[worker.oci]\n  max-parallelism = 4\n');
      assert.deepEqual(buildkitdContainer(d).args?.slice(2, 4), ['--config', '/etc/buildkit/buildkitd.toml']);
      assert.ok(
        buildkitdContainer(d).volumeMounts?.some(
          (m) => m.name === 'buildkitd-config' && m.mountPath === '/etc/buildkit',
        ),
      );
      assert.ok(
        stsPodSpec(d).volumes?.some((v) => v.name === 'buildkitd-config' && v.configMap?.name === 'buildkitd-config'),
      );
      assert.match(
        statefulSet(d).spec?.template.metadata?.annotations?.['buildkitd-autoscaler/config-sha256'] ?? '',
        /^[0-9a-f]{64}$/,
        'a new config restarts the builders',
      );
    },
  },
  'buildkitd.tls.secretName': {
    set: 'buildkitd-tls',
    expect: (d) => {
      assert.deepEqual(buildkitdContainer(d).args?.slice(2), [
        '--tlscacert',
        '/certs/ca.pem',
        '--tlscert',
        '/certs/cert.pem',
        '--tlskey',
        '/certs/key.pem',
      ]);
      assert.ok(
        buildkitdContainer(d).volumeMounts?.some((m) => m.name === 'buildkitd-tls' && m.mountPath === '/certs'),
      );
      assert.ok(
        stsPodSpec(d).volumes?.some((v) => v.name === 'buildkitd-tls' && v.secret?.secretName === 'buildkitd-tls'),
      );
    },
  },
  'buildkitd.podAnnotations': {
    set: { 'example.com/team': 'builds' },
    expect: (d) => assert.equal(statefulSet(d).spec?.template.metadata?.annotations?.['example.com/team'], 'builds'),
  },
  'buildkitd.nodeSelector': {
    set: { 'example.com/pool': 'build' },
    expect: (d) => assert.deepEqual(stsPodSpec(d).nodeSelector, { 'example.com/pool': 'build' }),
  },
  'buildkitd.tolerations': {
    set: [{ key: 'example.com/build', operator: 'Exists', effect: 'NoSchedule' }],
    expect: (d) =>
      assert.deepEqual(stsPodSpec(d).tolerations, [
        { key: 'example.com/build', operator: 'Exists', effect: 'NoSchedule' },
      ]),
  },
  'buildkitd.affinity': {
    set: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }] }],
        },
      },
    },
    expect: (d) =>
      assert.equal(
        stsPodSpec(d).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]
          ?.matchExpressions?.[0]?.values?.[0],
        'arm64',
      ),
  },
  'buildkitd.extraVolumes': {
    set: [{ name: 'registry-auth', secret: { secretName: 'registry-auth' } }],
    expect: (d) =>
      assert.ok(
        stsPodSpec(d).volumes?.some((v) => v.name === 'registry-auth' && v.secret?.secretName === 'registry-auth'),
      ),
  },
  'buildkitd.extraVolumeMounts': {
    set: [{ name: 'buildkit-state', mountPath: '/cache-extra', subPath: 'extra' }],
    expect: (d) =>
      assert.ok(
        buildkitdContainer(d).volumeMounts?.some((m) => m.mountPath === '/cache-extra' && m.subPath === 'extra'),
      ),
  },
  'buildkitd.privileged': {
    set: false,
    expect: (d) => assert.equal(buildkitdContainer(d).securityContext?.privileged, false),
  },
  'buildkitd.resources.requests.cpu': {
    set: '3',
    expect: (d) => assert.equal(buildkitdContainer(d).resources?.requests?.cpu, '3'),
  },
  'buildkitd.resources.requests.memory': {
    set: '3Gi',
    expect: (d) => assert.equal(buildkitdContainer(d).resources?.requests?.memory, '3Gi'),
  },
  'buildkitd.resources.limits.memory': {
    set: '16Gi',
    expect: (d) => assert.equal(buildkitdContainer(d).resources?.limits?.memory, '16Gi'),
  },
  'buildkitd.busyPodDisruptionBudget': {
    set: false,
    expect: (d) =>
      assert.equal(
        d.some((x) => x.kind === 'PodDisruptionBudget' && x.metadata.name === 'buildkitd-busy'),
        false,
        'no busy budget',
      ),
  },
  'buildkitd.terminationGracePeriodSeconds': {
    set: 600,
    expect: (d) => assert.equal(stsSpec(d).template.spec?.terminationGracePeriodSeconds, 600),
  },
  'buildkitd.readinessPeriodSeconds': {
    set: 3,
    expect: (d) => assert.equal(buildkitdContainer(d).readinessProbe?.periodSeconds, 3),
  },
  'buildkitd.persistence.enabled': {
    set: false,
    expect: (d) => {
      assert.equal(stsSpec(d).volumeClaimTemplates, undefined, 'no claims');
      assert.equal(stsSpec(d).persistentVolumeClaimRetentionPolicy, undefined);
      assert.deepEqual(
        stsSpec(d).template.spec?.volumes?.filter((volume) => volume.name !== 'podinfo'),
        [{ name: 'buildkit-state', emptyDir: {} }],
      );
    },
  },
  'buildkitd.persistence.size': {
    set: '200Gi',
    expect: (d) => assert.equal(stsSpec(d).volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '200Gi'),
  },
  'buildkitd.persistence.storageClassName': {
    set: 'fast-ssd',
    expect: (d) => assert.equal(stsSpec(d).volumeClaimTemplates?.[0]?.spec?.storageClassName, 'fast-ssd'),
  },
  'service.type': {
    set: 'LoadBalancer',
    expect: (d) => {
      assert.equal(gatewayService(d).spec?.type, 'LoadBalancer');
      assert.deepEqual(
        gatewayService(d).spec?.ports?.map((p) => p.name),
        ['buildkit'],
        'the load balancer never publishes /wake or /metrics',
      );
      assert.equal(metricsService(d).spec?.type, 'ClusterIP');
    },
  },
  'service.port': { set: 1080, expect: (d) => assert.equal(servicePort(d, 'buildkit'), 1080) },
  'service.metricsPort': {
    set: 1090,
    expect: (d) => assert.equal(metricsService(d).spec?.ports?.find((p) => p.name === 'metrics')?.port, 1090),
  },
  'service.annotations': {
    set: { 'lb.example.com/internal': 'true' },
    expect: (d) => assert.deepEqual(gatewayService(d).metadata?.annotations, { 'lb.example.com/internal': 'true' }),
  },
  'resources.requests.cpu': {
    set: '250m',
    expect: (d) => assert.equal(gatewayContainer(d).resources?.requests?.cpu, '250m'),
  },
  'resources.requests.memory': {
    set: '192Mi',
    expect: (d) => assert.equal(gatewayContainer(d).resources?.requests?.memory, '192Mi'),
  },
  'resources.limits.memory': {
    set: '384Mi',
    expect: (d) => assert.equal(gatewayContainer(d).resources?.limits?.memory, '384Mi'),
  },
  'resources.requests.ephemeral-storage': {
    set: '32Mi',
    expect: (d) => assert.equal(gatewayContainer(d).resources?.requests?.['ephemeral-storage'], '32Mi'),
  },
  'resources.limits.ephemeral-storage': {
    set: '1Gi',
    expect: (d) => assert.equal(gatewayContainer(d).resources?.limits?.['ephemeral-storage'], '1Gi'),
  },
  terminationGracePeriodSeconds: {
    set: 7200,
    expect: (d) => assert.equal(podSpec(d).terminationGracePeriodSeconds, 7200),
  },
  'podSecurityContext.runAsNonRoot': {
    set: false,
    expect: (d) => assert.equal(podSpec(d).securityContext?.runAsNonRoot, false),
  },
  'podSecurityContext.runAsUser': {
    set: 1000,
    expect: (d) => assert.equal(podSpec(d).securityContext?.runAsUser, 1000),
  },
  'podSecurityContext.runAsGroup': {
    set: 1001,
    expect: (d) => assert.equal(podSpec(d).securityContext?.runAsGroup, 1001),
  },
  'podSecurityContext.seccompProfile.type': {
    set: 'Unconfined',
    expect: (d) => assert.equal(podSpec(d).securityContext?.seccompProfile?.type, 'Unconfined'),
  },
  'securityContext.allowPrivilegeEscalation': {
    set: true,
    expect: (d) => assert.equal(gatewayContainer(d).securityContext?.allowPrivilegeEscalation, true),
  },
  'securityContext.readOnlyRootFilesystem': {
    set: false,
    expect: (d) => assert.equal(gatewayContainer(d).securityContext?.readOnlyRootFilesystem, false),
  },
  'securityContext.capabilities.drop': {
    set: ['NET_RAW'],
    expect: (d) => assert.deepEqual(gatewayContainer(d).securityContext?.capabilities?.drop, ['NET_RAW']),
  },
  podAnnotations: {
    set: { 'prometheus.io/scrape': 'true' },
    expect: (d) =>
      assert.deepEqual(deployment(d).spec?.template.metadata?.annotations, { 'prometheus.io/scrape': 'true' }),
  },
  podLabels: {
    set: { team: 'ci' },
    expect: (d) => {
      assert.equal(deployment(d).spec?.template.metadata?.labels?.team, 'ci');
      assert.equal(deployment(d).spec?.selector.matchLabels?.team, undefined, 'the selector stays immutable');
    },
  },
  nodeSelector: {
    set: { 'kubernetes.io/arch': 'arm64' },
    expect: (d) => assert.deepEqual(podSpec(d).nodeSelector, { 'kubernetes.io/arch': 'arm64' }),
  },
  tolerations: {
    set: [{ key: 'dedicated', operator: 'Equal', value: 'builds', effect: 'NoSchedule' }],
    expect: (d) =>
      assert.deepEqual(podSpec(d).tolerations, [
        { key: 'dedicated', operator: 'Equal', value: 'builds', effect: 'NoSchedule' },
      ]),
  },
  affinity: {
    set: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['ci'] }] }],
        },
      },
    },
    expect: (d) =>
      assert.deepEqual(
        podSpec(d).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]
          ?.matchExpressions?.[0]?.values,
        ['ci'],
      ),
  },
  priorityClassName: { set: 'builds-high', expect: (d) => assert.equal(podSpec(d).priorityClassName, 'builds-high') },
  replicaCount: { set: 3, expect: (d) => assert.equal(deployment(d).spec?.replicas, 3) },
  'pool.maxReplicas': { set: 5, expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_MAX_REPLICAS'), '5') },
  'pool.minReplicas': { set: 1, expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_MIN_REPLICAS'), '1') },
  'pool.connectionsPerReplica': {
    set: 3,
    expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_CONNECTIONS_PER_REPLICA'), '3'),
  },
  'pool.maxConnectionsPerReplica': {
    set: 4,
    expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_MAX_CONNECTIONS_PER_REPLICA'), '4'),
  },
  'pool.affinity': { set: 'none', expect: (d) => assert.equal(gatewayEnv(d, 'BUILDKITD_AFFINITY'), 'none') },
  'pool.watchNodes': {
    set: false,
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'WATCH_NODES'), 'false');
      assert.equal(
        d.filter((doc) => doc.kind === 'ClusterRole' || doc.kind === 'ClusterRoleBinding').length,
        0,
        'no access to nodes',
      );
    },
  },
  'leaderElection.enabled': {
    set: false,
    // The one shape leader election may be off in: a lone gateway without a budget that would block drains.
    context: { replicaCount: 1, podDisruptionBudget: { enabled: false } },
    expect: (d) => {
      assert.equal(gatewayEnv(d, 'LEADER_ELECTION'), 'false');
      assert.deepEqual(
        ruleShapes(findOne<V1Role>(d, 'Role')),
        expectedRules('buildkitd', { leaderElection: false }),
        'no Lease rights',
      );
    },
  },
  'leaderElection.leaseName': {
    set: 'builds-leader',
    expect: (d) => assert.equal(gatewayEnv(d, 'LEADER_ELECTION_LEASE_NAME'), 'builds-leader'),
  },
  'leaderElection.leaseDuration': {
    set: '30s',
    expect: (d) => assert.equal(gatewayEnv(d, 'LEADER_ELECTION_LEASE_DURATION'), '30s'),
  },
  'leaderElection.renewDeadline': {
    set: '12s',
    expect: (d) => assert.equal(gatewayEnv(d, 'LEADER_ELECTION_RENEW_DEADLINE'), '12s'),
  },
  'leaderElection.retryPeriod': {
    set: '3s',
    expect: (d) => assert.equal(gatewayEnv(d, 'LEADER_ELECTION_RETRY_PERIOD'), '3s'),
  },
  'leaderElection.maxReportStaleness': {
    set: '20m0s',
    expect: (d) => assert.equal(gatewayEnv(d, 'MAX_REPORT_STALENESS'), '20m0s'),
  },
  'podDisruptionBudget.enabled': {
    set: false,
    expect: (d) => assert.equal(gatewayBudgets(d).length, 0, 'no PodDisruptionBudget over the gateway'),
  },
  'podDisruptionBudget.minAvailable': { set: '50%', expect: (d) => assert.equal(budgetSpec(d).minAvailable, '50%') },
  'podDisruptionBudget.maxUnavailable': {
    set: 1,
    expect: (d) => {
      assert.equal(budgetSpec(d).maxUnavailable, 1);
      assert.equal(budgetSpec(d).minAvailable, undefined, 'maxUnavailable replaces minAvailable');
    },
  },
  'metrics.serviceMonitor.enabled': {
    set: true,
    expect: (d) => {
      const spec = monitorSpec(d, 'ServiceMonitor');
      assert.deepEqual(spec.selector, { matchLabels: gatewayService(d).spec?.selector }, 'selects the gateway Service');
      assert.deepEqual(
        spec.endpoints?.map((e) => e.port),
        ['metrics'],
      );
    },
  },
  'metrics.serviceMonitor.interval': {
    set: '15s',
    context: { metrics: { serviceMonitor: { enabled: true } } },
    expect: (d) => assert.equal(monitorSpec(d, 'ServiceMonitor').endpoints?.[0]?.interval, '15s'),
  },
  'metrics.serviceMonitor.labels': {
    set: { release: 'kube-prometheus-stack' },
    context: { metrics: { serviceMonitor: { enabled: true } } },
    expect: (d) => assert.equal(findOne(d, 'ServiceMonitor').metadata.labels?.release, 'kube-prometheus-stack'),
  },
  'metrics.podMonitor.enabled': {
    set: true,
    expect: (d) => {
      const spec = monitorSpec(d, 'PodMonitor');
      assert.deepEqual(
        spec.selector,
        { matchLabels: deployment(d).spec?.selector.matchLabels },
        'selects the gateway pods',
      );
      assert.deepEqual(
        spec.podMetricsEndpoints?.map((e) => e.port),
        ['metrics'],
      );
    },
  },
  'metrics.podMonitor.interval': {
    set: '15s',
    context: { metrics: { podMonitor: { enabled: true } } },
    expect: (d) => assert.equal(monitorSpec(d, 'PodMonitor').podMetricsEndpoints?.[0]?.interval, '15s'),
  },
  'metrics.podMonitor.labels': {
    set: { release: 'kube-prometheus-stack' },
    context: { metrics: { podMonitor: { enabled: true } } },
    expect: (d) => assert.equal(findOne(d, 'PodMonitor').metadata.labels?.release, 'kube-prometheus-stack'),
  },
  'metrics.prometheusRule.enabled': {
    set: true,
    expect: (d) => {
      const alerts = (
        findOne(d, 'PrometheusRule').spec as { groups: { rules: { alert?: string }[] }[] }
      ).groups.flatMap((g) => g.rules.map((r) => r.alert));
      assert.ok(alerts.includes('BuildkitdAutoscalerLeaderCount') && alerts.length >= 10, alerts.join(', '));
    },
  },
  'metrics.prometheusRule.labels': {
    set: { release: 'kube-prometheus-stack' },
    context: { metrics: { prometheusRule: { enabled: true } } },
    expect: (d) => assert.equal(findOne(d, 'PrometheusRule').metadata.labels?.release, 'kube-prometheus-stack'),
  },
  'metrics.grafanaDashboard.enabled': {
    set: true,
    expect: (d) => {
      const map = dashboardConfigMap(d);
      assert.equal(map.metadata.labels?.grafana_dashboard, '1', 'the sidecar label');
      assert.equal(
        (JSON.parse(map.data['buildkitd-autoscaler.json'] ?? '{}') as { uid?: string }).uid,
        'buildkitd-autoscaler',
      );
    },
  },
  'metrics.grafanaDashboard.labels.grafana_dashboard': {
    set: 'buildkit',
    context: { metrics: { grafanaDashboard: { enabled: true } } },
    expect: (d) => assert.equal(dashboardConfigMap(d).metadata.labels?.grafana_dashboard, 'buildkit'),
  },
  'metrics.grafanaDashboard.annotations': {
    set: { grafana_folder: 'Build' },
    context: { metrics: { grafanaDashboard: { enabled: true } } },
    expect: (d) => assert.deepEqual(dashboardConfigMap(d).metadata.annotations, { grafana_folder: 'Build' }),
  },
  'metrics.grafanaDashboard.namespace': {
    set: 'monitoring',
    context: { metrics: { grafanaDashboard: { enabled: true } } },
    expect: (d) => assert.equal(dashboardConfigMap(d).metadata.namespace, 'monitoring'),
  },
};

interface MonitorSpec {
  selector?: unknown;
  endpoints?: { port?: string; interval?: string }[];
  podMetricsEndpoints?: { port?: string; interval?: string }[];
}
function monitorSpec(docs: Manifest[], kind: 'ServiceMonitor' | 'PodMonitor'): MonitorSpec {
  return findOne(docs, kind).spec as MonitorSpec;
}
function dashboardConfigMap(docs: Manifest[]): Manifest & { data: Record<string, string> } {
  return findOne<Manifest & { data: Record<string, string> }>(docs, 'ConfigMap', 'bka-buildkitd-autoscaler-dashboard');
}

export function isRecord(value: unknown): value is Values {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Dotted paths of the leaves of values.yaml: scalars, lists, empty maps and nulls. */
export function leafPaths(values: Values, prefix = ''): string[] {
  return Object.entries(values).flatMap(([key, value]) =>
    isRecord(value) && Object.keys(value).length > 0 ? leafPaths(value, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

/** Leaf paths whose key line in values.yaml has no comment line directly above it. */
export function undocumentedLeaves(text: string, leaves: ReadonlySet<string>): string[] {
  const stack: { indent: number; key: string }[] = [];
  const missing: string[] = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const match = /^( *)([A-Za-z0-9_.-]+):/.exec(line);
    if (!match?.[2]) return;
    const indent = match[1]?.length ?? 0;
    while (stack.length > 0 && (stack.at(-1)?.indent ?? 0) >= indent) stack.pop();
    stack.push({ indent, key: match[2] });
    const dotted = stack.map((s) => s.key).join('.');
    if (leaves.has(dotted) && !(lines[index - 1] ?? '').trim().startsWith('#')) missing.push(dotted);
  });
  return missing;
}

export function withValue(base: Values | undefined, dotted: string, value: unknown): Values {
  const result = structuredClone(base ?? {});
  const keys = dotted.split('.');
  let node = result;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node[key] = isRecord(next) ? next : {};
    node = node[key] as Values;
  }
  node[keys.at(-1) as string] = value;
  return result;
}
