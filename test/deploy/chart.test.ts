// The chart as a user meets it: lint-clean, the same promises as the manifests, and mistakes in values
// refused at install time with a message that names the value, instead of a gateway that misbehaves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertBuildkitdContract, assertGatewayContract, deployment } from './contract.ts';
import { CHART_DIR, helm, helmTemplate, helmTemplateRaw, runTool } from './tools.ts';

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
      args: setArgs({ 'buildkitd.namespace': 'farm', 'buildkitd.statefulSetName': 'bk', 'buildkitd.headlessServiceName': 'bk-pods' }),
    });
    assertGatewayContract(docs);
    assertBuildkitdContract(docs, docs);
  });

  it('derives the pod grace period from the drain time, rounding sub-seconds up', async () => {
    assert.equal(await graceFor({}), 45);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '1m30s' }), 105);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '2h' }), 7215);
    assert.equal(await graceFor({ 'gateway.shutdownGracePeriod': '1500ms' }), 17);
  });

  it('refuses a grace period that would kill draining builds', async () => {
    const stderr = await renderError(['--set', 'terminationGracePeriodSeconds=30']);
    assert.match(stderr, /terminationGracePeriodSeconds \(30\) must be longer than gateway\.shutdownGracePeriod \(30s = 30s\)/);
  });

  it('refuses a misspelt value instead of ignoring it', async () => {
    assert.match(await renderError(['--set', 'gateway.idleTimout=5m']), /additional properties 'idleTimout' not allowed/);
    assert.match(await renderError(['--set', 'replicaCount=2']), /additional properties 'replicaCount' not allowed/);
  });

  it('refuses values the gateway would reject at start-up', async () => {
    assert.match(await renderError(['--set', 'gateway.idleTimeout=5 minutes']), /idleTimeout/);
    assert.match(await renderError(['--set', 'gateway.logLevel=verbose']), /logLevel/);
    assert.match(await renderError(['--set', 'gateway.backendDiscovery=consul']), /backendDiscovery/);
    assert.match(await renderError(['--set', 'gateway.port=70000']), /port/);
    assert.match(await renderError(['--set', 'gateway.shutdownGracePeriod=1.5s']), /shutdownGracePeriod/);
  });

  it('requires a ServiceAccount name when it does not create one', async () => {
    assert.match(await renderError(['--set', 'serviceAccount.create=false']), /serviceAccount\.name is required/);
  });
});
