// The ServiceMonitor, PodMonitor, PrometheusRule and dashboard ConfigMap of the chart and of the kustomize
// components against the prometheus-operator's own CRDs on a real API server: strict server-side dry runs.
//   npm run test:deploy:cluster
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureCluster, type Cluster } from '../../cluster/index.ts';
import { helmTemplateRaw, KUSTOMIZE_DIR, parseManifests } from '../tools.ts';
import { installPrometheusOperatorCrds } from './prometheus-operator-crds.ts';

let cluster: Cluster;
let workDir: string;
let ns: string;

before(async () => {
  cluster = await ensureCluster({ requireNetns: true });
  workDir = await mkdtemp(path.join(tmpdir(), 'bka-monitoring-cluster-'));
  await installPrometheusOperatorCrds(cluster);
  ns = await cluster.createNamespace('deploy-monitoring');
});

after(async () => {
  await cluster.deleteNamespace(ns).catch(() => undefined);
  await rm(workDir, { recursive: true, force: true });
  await cluster.stop();
});

async function dryRun(manifests: string) {
  return cluster.kubectl(['apply', '--dry-run=server', '--validate=strict', '-n', ns, '-f', '-'], { input: manifests });
}

function kinds(manifests: string): string[] {
  return parseManifests(manifests)
    .map((d) => d.kind)
    .sort();
}

describe('monitoring objects on the prometheus-operator CRDs', () => {
  it('refuses a ServiceMonitor with a field its schema does not have, so the dry runs below mean something', async () => {
    const wrong = `apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: wrong\nspec:\n  selector: {}\n  endpoints:\n    - prot: metrics\n`;
    const result = await dryRun(wrong);
    assert.notEqual(result.code, 0, 'a misspelled field was accepted');
    assert.match(result.stderr, /unknown field "spec\.endpoints\[0\]\.prot"/);
  });

  for (const [name, values] of Object.entries({
    'serviceMonitor, prometheusRule and grafanaDashboard': {
      serviceMonitor: { enabled: true, labels: { release: 'kps' } },
      prometheusRule: { enabled: true },
      grafanaDashboard: { enabled: true },
    },
    podMonitor: { podMonitor: { enabled: true } },
  })) {
    it(`accepts the chart's ${name}`, async () => {
      const file = path.join(workDir, `${name.replace(/\W+/g, '-')}.json`);
      await writeFile(file, JSON.stringify({ metrics: values }));
      const rendered = await helmTemplateRaw(file, { namespace: ns });
      assert.equal(rendered.code, 0, rendered.stderr);
      const monitoring = parseManifests(rendered.stdout).filter(
        (d) => d.apiVersion === 'monitoring.coreos.com/v1' || d.kind === 'ConfigMap',
      );
      assert.ok(monitoring.length > 0);
      const result = await dryRun(rendered.stdout);
      assert.equal(result.code, 0, `the API server refused the rendering: ${result.stderr}`);
      for (const d of monitoring)
        assert.match(
          result.stdout,
          new RegExp(`^${d.kind.toLowerCase()}[^/ ]*/${d.metadata.name} created \\(server dry run\\)$`, 'im'),
        );
    });
  }

  it('accepts the kustomize components in an overlay', async () => {
    const overlay = path.join(workDir, 'overlay');
    await mkdir(overlay);
    const rel = (c: string) => path.relative(overlay, path.join(KUSTOMIZE_DIR, 'components', c));
    await writeFile(
      path.join(overlay, 'kustomization.yaml'),
      `namespace: ${ns}\nresources:\n  - ${path.relative(overlay, KUSTOMIZE_DIR)}\ncomponents:\n  - ${rel('servicemonitor')}\n  - ${rel('podmonitor')}\n  - ${rel('prometheusrule')}\n  - ${rel('grafana-dashboard')}\n`,
    );
    const built = await cluster.kubectl(['kustomize', overlay]);
    assert.equal(built.code, 0, built.stderr);
    const objects = parseManifests(built.stdout).filter((d) => d.kind !== 'Namespace');
    assert.deepEqual(
      kinds(built.stdout).filter((k) => ['ConfigMap', 'PodMonitor', 'PrometheusRule', 'ServiceMonitor'].includes(k)),
      ['ConfigMap', 'PodMonitor', 'PrometheusRule', 'ServiceMonitor'],
    );
    const result = await dryRun(objects.map((o) => JSON.stringify(o)).join('\n---\n'));
    assert.equal(result.code, 0, `the API server refused the components: ${result.stderr}`);
  });
});
