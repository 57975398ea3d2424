// deploy/kubernetes/examples: opt-in manifests (not in the default kustomization) that must fit the shipped gateway.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  loadAllYaml,
  type V1CronJob,
  type V1Deployment,
  type V1NetworkPolicy,
  type V1Service,
} from '@kubernetes/client-node';
import { KUSTOMIZE_DIR } from './tools.ts';

const read = <T>(file: string): T[] => loadAllYaml(readFileSync(path.join(KUSTOMIZE_DIR, file), 'utf8')) as T[];
const [deployment] = read<V1Deployment>('04-deployment.yaml');
const [service] = read<V1Service>('05-service.yaml');
const gatewayPorts = deployment?.spec?.template.spec?.containers[0]?.ports ?? [];

describe('deploy/kubernetes/examples', () => {
  it('are opt-in: the default kustomization does not list them', () => {
    assert.doesNotMatch(readFileSync(path.join(KUSTOMIZE_DIR, 'kustomization.yaml'), 'utf8'), /examples/);
  });

  it('the working-hours CronJob calls `wake --for 10h` on the Service ops port, without credentials', () => {
    const [cronJob] = read<V1CronJob>('examples/wake-cronjob.yaml');
    assert.equal(cronJob?.kind, 'CronJob');
    assert.equal(cronJob.metadata?.namespace, deployment?.metadata?.namespace);
    const pod = cronJob.spec?.jobTemplate.spec?.template.spec;
    const container = pod?.containers[0];
    assert.equal(
      container?.image,
      deployment?.spec?.template.spec?.containers[0]?.image,
      'the gateway image carries the client',
    );
    const args = container?.args ?? [];
    assert.equal(args[0], 'wake');
    assert.equal(args[args.indexOf('--for') + 1], '10h');
    const opsPort = service?.spec?.ports?.find((port) => port.name === 'metrics')?.port;
    assert.equal(args[args.indexOf('--url') + 1], `http://${service?.metadata?.name}:${opsPort}`);
    assert.equal(pod?.automountServiceAccountToken, false);
    assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
  });

  it('the NetworkPolicy keeps the proxy port open and limits the ops port to the namespace and the scraper', () => {
    const [policy] = read<V1NetworkPolicy>('examples/ops-port-networkpolicy.yaml');
    assert.equal(policy?.kind, 'NetworkPolicy');
    assert.deepEqual(policy.spec?.podSelector?.matchLabels, deployment?.spec?.selector.matchLabels);
    const rules = policy.spec?.ingress ?? [];
    const names = new Set(gatewayPorts.map((port) => port.name));
    for (const rule of rules)
      for (const port of rule.ports ?? [])
        assert.ok(names.has(String(port.port)), `port ${port.port} is a named port of the gateway container`);
    const proxy = rules.find((rule) => rule.ports?.some((port) => port.port === 'buildkit'));
    assert.equal(proxy?._from, undefined, 'BuildKit clients from anywhere');
    const ops = rules.find((rule) => rule.ports?.some((port) => port.port === 'metrics'));
    assert.deepEqual(JSON.parse(JSON.stringify(ops?._from?.[0])), { podSelector: {} }, 'this namespace');
    assert.ok(
      ops?._from?.[1]?.namespaceSelector && ops._from[1].podSelector,
      'the scraper: its namespace and its pods',
    );
    assert.equal(ops?._from?.length, 2);
  });
});
