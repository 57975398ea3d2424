// The prometheus-operator's own CRDs (from its Go module, scripts/build-binaries.sh) on the local API server,
// so ServiceMonitor, PodMonitor and PrometheusRule objects are checked against its schema.
import { readFile } from 'node:fs/promises';
import type { Cluster } from '../../cluster/index.ts';
import { prometheusOperatorCrds } from '../tools.ts';

export async function installPrometheusOperatorCrds(cluster: Cluster): Promise<void> {
  for (const file of await prometheusOperatorCrds()) {
    const manifest = await readFile(file, 'utf8');
    // Two test files may apply at once; a create race answers 409 the first time.
    let result = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: manifest });
    if (result.code !== 0)
      result = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: manifest });
    if (result.code !== 0) throw new Error(`applying ${file}: ${result.stderr}`);
  }
  const wait = await cluster.kubectl(
    [
      'wait',
      '--for=condition=Established',
      '--timeout=120s',
      'crd/servicemonitors.monitoring.coreos.com',
      'crd/podmonitors.monitoring.coreos.com',
      'crd/prometheusrules.monitoring.coreos.com',
    ],
    { timeoutMs: 150_000 },
  );
  if (wait.code !== 0) throw new Error(`the prometheus-operator CRDs did not become Established: ${wait.stderr}`);
}
