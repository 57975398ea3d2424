// Multi-architecture pools: two releases of the chart in one namespace, one per architecture
// (deploy/multi-arch/values-*.yaml). Installed together they must not share an object, a Lease or a
// selector: each gateway scales only its own StatefulSet, on nodes of its own architecture.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import type { V1Deployment, V1Role, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { findOne, helmTemplate, REPO_ROOT, type Manifest } from './tools.ts';

const namespace = 'buildkit';
const pools = [
  { arch: 'amd64', release: 'bka-amd64' },
  { arch: 'arm64', release: 'bka-arm64' },
] as const;

interface Rendered {
  arch: string;
  docs: Manifest[];
  env: Record<string, string | undefined>;
  statefulSet: V1StatefulSet;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.entries(selector).every(([key, value]) => labels?.[key] === value);

describe('multi-architecture pools: two chart releases side by side', () => {
  let rendered: Rendered[] = [];

  before(async () => {
    rendered = await Promise.all(
      pools.map(async ({ arch, release }) => {
        const docs = await helmTemplate(path.join(REPO_ROOT, 'deploy', 'multi-arch', `values-${arch}.yaml`), {
          release,
          namespace,
        });
        const gateway = findOne<V1Deployment>(docs, 'Deployment').spec?.template.spec?.containers[0];
        const env = Object.fromEntries((gateway?.env ?? []).map((e) => [e.name, e.value]));
        return { arch, docs, env, statefulSet: findOne<V1StatefulSet>(docs, 'StatefulSet') };
      }),
    );
  });

  it('no two objects share kind, namespace and name', () => {
    const seen = new Map<string, string>();
    for (const { arch, docs } of rendered) {
      for (const doc of docs) {
        const key = `${doc.kind}/${doc.metadata.namespace ?? namespace}/${doc.metadata.name}`;
        assert.equal(
          seen.get(key),
          undefined,
          `${key} is rendered by both the ${seen.get(key)} and the ${arch} release`,
        );
        seen.set(key, arch);
      }
    }
    assert.ok(seen.size >= 2 * 8, `both releases render their objects (${seen.size})`);
  });

  it('the Leases differ: each gateway coordinates only with its own replicas', () => {
    const [amd64, arm64] = rendered.map((r) => r.env['LEADER_ELECTION_LEASE_NAME']);
    assert.ok(amd64 && arm64, 'both gateways name their leader Lease');
    assert.notEqual(amd64, arm64);
    // Report Leases are <leader Lease>-<pod name>: neither group's name may prefix the other's.
    assert.ok(!amd64.startsWith(`${arm64}-`) && !arm64.startsWith(`${amd64}-`));
  });

  it('each gateway scales its own StatefulSet through its own headless Service, and its Role names only that one', () => {
    for (const { arch, docs, env, statefulSet } of rendered) {
      assert.equal(env['BUILDKITD_STATEFULSET_NAME'], statefulSet.metadata?.name, arch);
      assert.equal(env['BUILDKITD_HEADLESS_SERVICE_NAME'], statefulSet.spec?.serviceName, arch);
      assert.ok(
        docs.some((d) => d.kind === 'Service' && d.metadata.name === statefulSet.spec?.serviceName),
        `${arch}: its headless Service is rendered`,
      );
      const names = new Set(findOne<V1Role>(docs, 'Role').rules?.flatMap((rule) => rule.resourceNames ?? []));
      assert.deepEqual([...names], [statefulSet.metadata?.name], `${arch}: the Role reaches its own StatefulSet only`);
    }
  });

  it('each pool runs on nodes of its architecture; arm64 tolerates the arm64 taint', () => {
    for (const { arch, statefulSet } of rendered)
      assert.deepEqual(statefulSet.spec?.template.spec?.nodeSelector, { 'kubernetes.io/arch': arch });
    const arm64 = rendered.find((r) => r.arch === 'arm64')?.statefulSet;
    assert.ok(
      arm64?.spec?.template.spec?.tolerations?.some(
        (t) => t.key === 'kubernetes.io/arch' && t.value === 'arm64' && t.effect === 'NoSchedule',
      ),
    );
  });

  it('no selector of one release matches the pods of the other', () => {
    const podLabels = rendered.flatMap(({ arch, docs, statefulSet }) => [
      { arch, labels: statefulSet.spec?.template.metadata?.labels },
      { arch, labels: findOne<V1Deployment>(docs, 'Deployment').spec?.template.metadata?.labels },
    ]);
    for (const { arch, docs } of rendered) {
      const selectors = [
        ...docs.filter((d) => d.kind === 'Service').map((d) => (d as unknown as V1Service).spec?.selector),
        findOne<V1StatefulSet>(docs, 'StatefulSet').spec?.selector.matchLabels,
        findOne<V1Deployment>(docs, 'Deployment').spec?.selector.matchLabels,
      ];
      for (const selector of selectors) {
        const selected = podLabels.filter((pod) => matches(selector, pod.labels));
        assert.ok(selected.length > 0, `${arch}: ${JSON.stringify(selector)} selects its own pods`);
        assert.deepEqual(
          new Set(selected.map((pod) => pod.arch)),
          new Set([arch]),
          `${arch}: ${JSON.stringify(selector)} selects only its own release's pods`,
        );
      }
    }
  });
});
