// Writes the copies of the monitoring sources that the Helm chart and the kustomize components need (helm
// and kustomize read no file outside their own directory): deploy/prometheus/rules.yaml and
// deploy/grafana/buildkitd-autoscaler.json are the sources.
//   node scripts/generate-monitoring.ts           write the copies
//   node scripts/generate-monitoring.ts --check   exit 1 naming each copy that differs (test/deploy/monitoring.test.ts)
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dump, load } from 'js-yaml';

const ROOT = path.resolve(import.meta.dirname, '..');
export const RULES_SOURCE = 'deploy/prometheus/rules.yaml';
export const DASHBOARD_SOURCE = 'deploy/grafana/buildkitd-autoscaler.json';

const generatedHeader = (source: string) =>
  `# Generated from ${source} by scripts/generate-monitoring.ts: edit that file, then run the script.\n`;

/** Each generated file (path from the repository root) and its content. */
export async function generatedFiles(): Promise<Map<string, string>> {
  const rules = await readFile(path.join(ROOT, RULES_SOURCE), 'utf8');
  const dashboard = await readFile(path.join(ROOT, DASHBOARD_SOURCE), 'utf8');
  const prometheusRule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'buildkitd-autoscaler',
      namespace: 'buildkit',
      labels: { 'app.kubernetes.io/name': 'buildkitd-autoscaler', 'app.kubernetes.io/component': 'gateway' },
    },
    spec: load(rules),
  };
  return new Map([
    ['charts/buildkitd-autoscaler/files/prometheus-rules.yaml', generatedHeader(RULES_SOURCE) + rules],
    ['charts/buildkitd-autoscaler/files/grafana-dashboard.json', dashboard],
    [
      'deploy/kubernetes/components/prometheusrule/prometheusrule.yaml',
      generatedHeader(RULES_SOURCE) + dump(prometheusRule, { lineWidth: -1 }),
    ],
    ['deploy/kubernetes/components/grafana-dashboard/buildkitd-autoscaler.json', dashboard],
  ]);
}

/** The generated files whose content on disk differs from what the sources generate. */
export async function driftedFiles(): Promise<string[]> {
  const drifted: string[] = [];
  for (const [file, content] of await generatedFiles()) {
    const onDisk = await readFile(path.join(ROOT, file), 'utf8').catch(() => undefined);
    if (onDisk !== content) drifted.push(file);
  }
  return drifted;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const drifted = await driftedFiles();
    for (const file of drifted)
      process.stderr.write(`${file} differs from its source: run node scripts/generate-monitoring.ts\n`);
    process.exitCode = drifted.length > 0 ? 1 : 0;
  } else {
    for (const [file, content] of await generatedFiles()) await writeFile(path.join(ROOT, file), content);
  }
}
