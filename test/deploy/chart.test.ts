// The chart as a user meets it: lint-clean, the same promises as the manifests, and mistakes in values
// refused at install time with a message that names the value, instead of a gateway that misbehaves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Role } from '@kubernetes/client-node';
import {
  assertBuildkitdContract,
  assertGatewayContract,
  deployment,
  expectedRules,
  gatewayEnv,
  ruleShapes,
} from './contract.ts';
import { CHART_DIR, findOne, helm, helmTemplate, helmTemplateRaw, runTool } from './tools.ts';

function setArgs(values: Record<string, string>): string[] {
  return Object.entries(values).flatMap(([key, value]) => ['--set-string', `${key}=${value}`]);
}

async function graceFor(values: Record<string, string>): Promise<number | undefined> {
  const docs = await helmTemplate(undefined, { args: setArgs(values) });
  return deployment(docs).spec?.template.spec?.terminationGracePeriodSeconds;
}

async function renderError(args: string[]): Promise<string> {
  const result = await helmTemplateRaw(undefined, { args });
  assert.notEqual(result.code, 0, `helm template ${args.join(' ')} should have failed`);
  return result.stderr;
}

describe('helm chart', () => {
  it('passes helm lint --strict', async () => {
    const result = await runTool(await helm(), ['lint', CHART_DIR, '--strict']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  it('renders by default the gateway contract and an example buildkitd that matches it', async () => {
    const docs = await helmTemplate(undefined);
    assertGatewayContract(docs);
    assertBuildkitdContract(docs, docs);
  });

  it('keeps the contract with buildkitd in another namespace and a renamed StatefulSet', async () => {
    const docs = await helmTemplate(undefined, {
      args: setArgs({
        'buildkitd.namespace': 'farm',
        'buildkitd.statefulSetName': 'bk',
        'buildkitd.headlessServiceName': 'bk-pods',
      }),
    });
    assertGatewayContract(docs);
    assertBuildkitdContract(docs, docs);
  });

  it('derives the pod grace period from the drain time, rounding sub-seconds up', async () => {
    assert.equal(await graceFor({}), 3615);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '1m30s' }), 105);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '2h' }), 7215);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '1500ms' }), 17);
  });

  it('refuses a grace period that would kill draining builds', async () => {
    const stderr = await renderError(['--set', 'terminationGracePeriodSeconds=30']);
    assert.match(
      stderr,
      /terminationGracePeriodSeconds \(30\) must be longer than gateway\.shutdownDelay \+ gateway\.shutdownGracePeriod \(5s \+ 1h0m0s = 3605s\)/,
    );
  });

  it('refuses a misspelt value instead of ignoring it', async () => {
    assert.match(
      await renderError(['--set', 'gateway.idleTimout=5m']),
      /additional properties 'idleTimout' not allowed/,
    );
    assert.match(await renderError(['--set', 'replicas=3']), /additional properties 'replicas' not allowed/);
    assert.match(
      await renderError(['--set', 'leaderElection.leaseDurtion=30s']),
      /additional properties 'leaseDurtion' not allowed/,
    );
  });

  it('refuses values the gateway would reject at start-up', async () => {
    assert.match(await renderError(['--set', 'gateway.idleTimeout=5 minutes']), /idleTimeout/);
    assert.match(await renderError(['--set', 'gateway.logLevel=verbose']), /logLevel/);
    assert.match(await renderError(['--set', 'gateway.backendDiscovery=consul']), /backendDiscovery/);
    assert.match(await renderError(['--set', 'gateway.port=70000']), /port/);
    assert.match(await renderError(['--set', 'gateway.shutdownGracePeriod=1.5s']), /shutdownGracePeriod/);
    // Both must be positive (exit 2 on 0); any longer value works, so the schema has no upper bound below Go's.
    assert.match(await renderError(['--set-string', 'gateway.idleTimeout=0']), /idleTimeout/);
    assert.match(await renderError(['--set-string', 'gateway.readyWaitTimeout=0']), /readyWaitTimeout/);
  });

  it('runs a single gateway without leader election when asked for all three, with no Lease rights', async () => {
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
    assertGatewayContract(docs);
    assert.equal(gatewayEnv(docs, 'LEADER_ELECTION'), 'false');
  });

  it('keeps leader election on with a single replica (safe during evictions, no budget)', async () => {
    const docs = await helmTemplate(undefined, {
      args: ['--set', 'replicaCount=1', '--set', 'podDisruptionBudget.enabled=false'],
    });
    assert.equal(deployment(docs).spec?.replicas, 1);
    assert.equal(gatewayEnv(docs, 'LEADER_ELECTION'), 'true');
    assert.deepEqual(ruleShapes(findOne<V1Role>(docs, 'Role')), expectedRules('buildkitd', { leaderElection: true }));
  });

  it('refuses several gateways without leader election: they would scale down under each other', async () => {
    assert.match(
      await renderError(['--set', 'leaderElection.enabled=false']),
      /replicaCount 2 needs leaderElection\.enabled/,
    );
  });

  it('refuses a disruption budget that would block every node drain', async () => {
    assert.match(
      await renderError(['--set', 'replicaCount=1']),
      /podDisruptionBudget\.minAvailable 1 with replicaCount 1 blocks every node drain/,
    );
    assert.match(
      await renderError(['--set', 'podDisruptionBudget.maxUnavailable=0']),
      /podDisruptionBudget\.maxUnavailable 0 blocks every node drain/,
    );
    assert.match(await renderError(['--set', 'podDisruptionBudget.minAvailable=one']), /minAvailable/);
  });

  it('refuses leader election timings that are not Go durations and Lease names the reports could not extend', async () => {
    assert.match(await renderError(['--set', 'leaderElection.leaseDuration=15']), /leaseDuration/);
    assert.match(await renderError(['--set', 'leaderElection.leaseName=Leader_Lease']), /leaseName/);
    // <leaseName>-<pod name> (up to 63 characters) must stay a valid object name.
    assert.match(await renderError(['--set', `leaderElection.leaseName=${'a'.repeat(190)}`]), /leaseName/);
  });

  it('refuses a pool the gateway would refuse at start (exit 2, a crash-looping pod)', async () => {
    assert.match(
      await renderError(['--set', 'pool.minReplicas=3', '--set', 'pool.maxReplicas=2']),
      /pool\.minReplicas 3 must not exceed pool\.maxReplicas 2/,
    );
    assert.match(
      await renderError(['--set', 'pool.maxReplicas=2', '--set', 'gateway.backendDiscovery=dns']),
      /dns discovery supports one builder only/,
    );
    assert.match(await renderError(['--set', 'pool.affinity=ip']), /affinity/);
    assert.match(await renderError(['--set', 'pool.connectionsPerReplica=0']), /connectionsPerReplica/);
    assert.match(await renderError(['--set', 'pool.maxConnectionsPerReplica=-1']), /maxConnectionsPerReplica/);
  });

  it('refuses a wake mode or first-byte timeout the gateway would refuse at start', async () => {
    assert.match(await renderError(['--set', 'gateway.wakeOn=byte']), /wakeOn/);
    assert.match(await renderError(['--set', 'gateway.firstByteTimeout=30']), /firstByteTimeout/);
  });

  it('installs on Kubernetes 1.27 and later, and says so on an older cluster', async () => {
    await helmTemplate(undefined, { args: ['--kube-version', '1.27.0'] });
    assert.match(
      await renderError(['--kube-version', '1.26.15']),
      /chart requires kubeVersion: >=1\.27\.0-0 which is incompatible with Kubernetes v1\.26\.15/,
    );
  });

  it('requires a ServiceAccount name when it does not create one', async () => {
    assert.match(await renderError(['--set', 'serviceAccount.create=false']), /serviceAccount\.name is required/);
  });
});
