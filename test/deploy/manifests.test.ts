// deploy/kubernetes as `kubectl apply -k` would send it: the same promises the chart makes, and the
// same defaults, so users get one product whichever way they install.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  assertBuildkitdContract,
  assertGatewayContract,
  buildkitdContainer,
  deployment,
  GATEWAY_ENV,
  gatewayContainer,
  gatewayEnv,
  ruleShapes,
  statefulSet,
  gatewayBudgets,
} from './contract.ts';
import {
  findOne,
  helmTemplate,
  KUSTOMIZE_BUILDKITD_DIR,
  KUSTOMIZE_BUILDKITD_MTLS_DIR,
  KUSTOMIZE_DIR,
  kustomize,
  type Manifest,
} from './tools.ts';
import type { V1Role } from '@kubernetes/client-node';

describe('deploy/kubernetes (kustomize)', () => {
  let gateway: Manifest[];
  let buildkitd: Manifest[];
  let buildkitdMtls: Manifest[];
  let chart: Manifest[];

  before(async () => {
    [gateway, buildkitd, buildkitdMtls, chart] = await Promise.all([
      kustomize(KUSTOMIZE_DIR),
      kustomize(KUSTOMIZE_BUILDKITD_DIR),
      kustomize(KUSTOMIZE_BUILDKITD_MTLS_DIR),
      // The chart rendered into the manifests' namespace, with the manifests' resource names.
      helmTemplate(undefined, { namespace: 'buildkit', args: ['--set', 'fullnameOverride=buildkitd-autoscaler'] }),
    ]);
  });

  it('renders the numbered manifests in order, namespace first', () => {
    assert.deepEqual(
      gateway.map((d) => `${d.kind}/${d.metadata.name}`),
      [
        'Namespace/buildkit',
        'ServiceAccount/buildkitd-autoscaler',
        'Role/buildkitd-autoscaler',
        'ClusterRole/buildkitd-autoscaler-nodes',
        'RoleBinding/buildkitd-autoscaler',
        'ClusterRoleBinding/buildkitd-autoscaler-nodes',
        'Service/buildkitd-autoscaler',
        'Deployment/buildkitd-autoscaler',
        'PodDisruptionBudget/buildkitd-autoscaler',
      ],
    );
    for (const doc of gateway.filter((d) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(d.kind)))
      assert.equal(doc.metadata.namespace, 'buildkit', `${doc.kind} namespace`);
  });

  it('runs the gateway hardened, probed, drained and with least-privilege RBAC', () => {
    assertGatewayContract(gateway);
  });

  it('runs two gateways with leader election, so a rollout or a drain always leaves one serving', () => {
    assert.equal(deployment(gateway).spec?.replicas, 2);
    assert.equal(gatewayEnv(gateway, 'LEADER_ELECTION'), 'true');
    assert.equal(gatewayBudgets(gateway)[0]?.spec?.minAvailable, 1);
  });

  it('takes the StatefulSet namespace from the pod, so a kustomize namespace change follows', () => {
    assert.equal(gatewayEnv(gateway, 'BUILDKITD_STATEFULSET_NAMESPACE'), '<from:metadata.namespace>');
  });

  it('ships an example buildkitd that matches what the gateway is told', () => {
    assertBuildkitdContract(buildkitd, gateway);
    assert.equal(statefulSet(buildkitd).spec?.podManagementPolicy, 'Parallel', 'a pool wakes several builders at once');
  });

  it('gives each builder its own cache volume, kept across scale-to-zero', () => {
    const spec = statefulSet(buildkitd).spec;
    assert.deepEqual(
      spec?.volumeClaimTemplates?.map((claim) => claim.metadata?.name),
      ['buildkit-state'],
    );
    assert.equal(
      spec?.template.spec?.volumes?.some((volume) => volume.name === 'buildkit-state'),
      false,
      'no emptyDir shadows the claim',
    );
    assert.deepEqual(spec?.persistentVolumeClaimRetentionPolicy, { whenScaled: 'Retain', whenDeleted: 'Retain' });
    assert.ok(
      buildkitdContainer(buildkitd).volumeMounts?.some(
        (mount) => mount.name === 'buildkit-state' && mount.mountPath === '/var/lib/buildkit',
      ),
    );
  });

  it('ships an mTLS variant of the example: the same builder with the TLS flags and the Secret buildkitd-tls mounted', () => {
    assertBuildkitdContract(buildkitdMtls, gateway);
    const container = buildkitdContainer(buildkitdMtls);
    assert.deepEqual(container.args, [
      '--addr',
      'tcp://0.0.0.0:8273',
      '--tlscacert',
      '/certs/ca.pem',
      '--tlscert',
      '/certs/cert.pem',
      '--tlskey',
      '/certs/key.pem',
    ]);
    assert.ok(
      container.volumeMounts?.some(
        (mount) => mount.name === 'buildkitd-tls' && mount.mountPath === '/certs' && mount.readOnly,
      ),
    );
    assert.deepEqual(
      statefulSet(buildkitdMtls).spec?.template.spec?.volumes?.filter((volume) => volume.name !== 'podinfo'),
      [{ name: 'buildkitd-tls', secret: { secretName: 'buildkitd-tls' } }],
    );
    // Everything else is the plain example's.
    const withoutTls = structuredClone(statefulSet(buildkitdMtls));
    const plain = statefulSet(buildkitd);
    const mtlsContainer = withoutTls.spec?.template.spec?.containers[0];
    assert.ok(mtlsContainer && withoutTls.spec?.template.spec);
    mtlsContainer.args = plain.spec?.template.spec?.containers[0]?.args;
    mtlsContainer.volumeMounts = mtlsContainer.volumeMounts?.filter((mount) => mount.name !== 'buildkitd-tls');
    withoutTls.spec.template.spec.volumes = withoutTls.spec.template.spec.volumes?.filter(
      (volume) => volume.name !== 'buildkitd-tls',
    );
    assert.deepEqual(withoutTls, plain);
  });

  it('uses the tagged gateway image', () => {
    assert.equal(gatewayContainer(gateway).image, 'buildkitd-autoscaler:0.1.0');
  });

  it('has the same defaults as the Helm chart', () => {
    for (const name of GATEWAY_ENV) {
      if (name === 'BUILDKITD_STATEFULSET_NAMESPACE') continue; // fieldRef here, the release namespace in the chart
      assert.equal(gatewayEnv(gateway, name), gatewayEnv(chart, name), `${name}`);
    }
    const fromManifests = gatewayContainer(gateway);
    const fromChart = gatewayContainer(chart);
    assert.deepEqual(fromManifests.resources, fromChart.resources);
    assert.deepEqual(fromManifests.securityContext, fromChart.securityContext);
    assert.deepEqual(
      deployment(gateway).spec?.template.spec?.securityContext,
      deployment(chart).spec?.template.spec?.securityContext,
    );
    assert.deepEqual(fromManifests.livenessProbe, fromChart.livenessProbe);
    assert.deepEqual(fromManifests.readinessProbe, fromChart.readinessProbe);
    assert.deepEqual(fromManifests.ports, fromChart.ports);
    assert.equal(
      deployment(gateway).spec?.template.spec?.terminationGracePeriodSeconds,
      deployment(chart).spec?.template.spec?.terminationGracePeriodSeconds,
    );
    assert.deepEqual(ruleShapes(findOne<V1Role>(gateway, 'Role')), ruleShapes(findOne<V1Role>(chart, 'Role')));
    assert.equal(deployment(gateway).spec?.replicas, deployment(chart).spec?.replicas);
    assert.deepEqual(deployment(gateway).spec?.strategy, deployment(chart).spec?.strategy);
    const spreadOf = (docs: Manifest[]) =>
      deployment(docs).spec?.template.spec?.topologySpreadConstraints?.map(({ labelSelector, ...rest }) => ({
        ...rest,
        selectsGateway: labelSelector?.matchLabels?.['app.kubernetes.io/component'] === 'gateway',
      }));
    assert.deepEqual(spreadOf(gateway), spreadOf(chart));
    const budgetOf = (docs: Manifest[]) => {
      const { selector: _selector, ...rest } = gatewayBudgets(docs)[0]?.spec ?? {};
      return rest;
    };
    assert.deepEqual(budgetOf(gateway), budgetOf(chart));

    const chartBuildkitd = buildkitdContainer(chart);
    const exampleBuildkitd = buildkitdContainer(buildkitd);
    assert.deepEqual(exampleBuildkitd.args, chartBuildkitd.args);
    assert.deepEqual(exampleBuildkitd.resources, chartBuildkitd.resources);
    assert.deepEqual(exampleBuildkitd.readinessProbe, chartBuildkitd.readinessProbe);
    assert.deepEqual(exampleBuildkitd.securityContext, chartBuildkitd.securityContext);
    assert.deepEqual(
      statefulSet(buildkitd).spec?.volumeClaimTemplates,
      statefulSet(chart).spec?.volumeClaimTemplates,
      'each builder keeps its own cache claim',
    );
    assert.deepEqual(
      statefulSet(buildkitd).spec?.persistentVolumeClaimRetentionPolicy,
      statefulSet(chart).spec?.persistentVolumeClaimRetentionPolicy,
    );
  });
});
