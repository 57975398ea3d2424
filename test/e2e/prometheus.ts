// A real Prometheus (scripts/build-binaries.sh builds it) for the E2E on the local backend: it scrapes the
// gateway pods with the scrape config the prometheus-operator would make of the shipped ServiceMonitor
// (deploy/kubernetes/components/servicemonitor), evaluates deploy/prometheus/rules.yaml, and answers the
// report's questions: does every dashboard query and every alert return data for this run.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { dump, load } from 'js-yaml';
import { REPO_ROOT } from '../support/repo-root.ts';

export const SERVICE_MONITOR = 'deploy/kubernetes/components/servicemonitor/servicemonitor.yaml';
export const RULES = 'deploy/prometheus/rules.yaml';

interface ServiceMonitor {
  metadata: { name: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    endpoints: { port: string; path?: string; interval?: string }[];
  };
}

const labelName = (label: string) => label.replaceAll(/[^A-Za-z0-9_]/g, '_');

/**
 * The scrape config of a ServiceMonitor as the prometheus-operator writes it: EndpointSlice discovery in the
 * given namespaces, keep the Service's labels and the named port, and label each target with namespace,
 * service, pod, endpoint and job (the Service's name, which the alerts group by).
 */
export function scrapeConfigFromServiceMonitor(
  monitor: ServiceMonitor,
  namespaces: string[],
  kubeconfig: string,
  interval: string,
): object[] {
  return monitor.spec.endpoints.map((endpoint, i) => ({
    job_name: `serviceMonitor/${monitor.metadata.name}/${i}`,
    scrape_interval: interval,
    metrics_path: endpoint.path ?? '/metrics',
    kubernetes_sd_configs: [{ role: 'endpointslice', kubeconfig_file: kubeconfig, namespaces: { names: namespaces } }],
    relabel_configs: [
      ...Object.entries(monitor.spec.selector.matchLabels).map(([k, v]) => ({
        action: 'keep',
        source_labels: [
          `__meta_kubernetes_service_label_${labelName(k)}`,
          `__meta_kubernetes_service_labelpresent_${labelName(k)}`,
        ],
        regex: `(${v});true`,
      })),
      { action: 'keep', source_labels: ['__meta_kubernetes_endpointslice_port_name'], regex: endpoint.port },
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
      { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      { source_labels: ['__meta_kubernetes_service_name'], target_label: 'job' },
      { target_label: 'endpoint', replacement: endpoint.port },
    ],
  }));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface Sample {
  metric: Record<string, string>;
  values: [number, string][];
}

export interface Prometheus {
  url: string;
  /** A range query over [startS, endS]; the series with at least one number. */
  queryRange(expr: string, startS: number, endS: number, stepS: number): Promise<Sample[]>;
  stop(): Promise<void>;
}

/** Starts the prometheus binary on 127.0.0.1 with the generated config, and waits until it is ready. */
export async function startPrometheus(options: {
  binary: string;
  workDir: string;
  namespaces: string[];
  kubeconfig: string;
  interval: string;
}): Promise<Prometheus> {
  const monitor = load(await readFile(path.join(REPO_ROOT, SERVICE_MONITOR), 'utf8')) as ServiceMonitor;
  const config = {
    global: { scrape_interval: options.interval, evaluation_interval: options.interval },
    rule_files: [path.join(REPO_ROOT, RULES)],
    scrape_configs: scrapeConfigFromServiceMonitor(monitor, options.namespaces, options.kubeconfig, options.interval),
  };
  const configFile = path.join(options.workDir, 'prometheus.yml');
  await writeFile(configFile, dump(config, { lineWidth: -1 }));
  const port = await freePort();
  const child = spawn(
    options.binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(options.workDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`prometheus not ready after 60s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return {
    url,
    async queryRange(expr, startS, endS, stepS) {
      const params = new URLSearchParams({
        query: expr,
        start: String(startS),
        end: String(endS),
        step: String(stepS),
      });
      const response = await fetch(`${url}/api/v1/query_range`, { method: 'POST', body: params });
      const body = (await response.json()) as { status: string; error?: string; data?: { result: Sample[] } };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? response.status}`);
      return (body.data?.result ?? []).filter((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
