// The E2E's proof that the operators' kit shows something real: after the scenarios, every dashboard
// query and every alert of this run is asked of the Prometheus that scraped the gateway pods, and the key
// series are plotted. The rule for an alert: its expression returning data means it fired in this run (a
// fault scenario caused it); an alert that did not fire passes when every bka_ series it reads returned data,
// so it watches series that exist and would fire on their fault.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { load } from 'js-yaml';
import { createMetrics } from '../../src/metrics.ts';
import { alertRules, dashboardPanels, metricNames, type RuleFile, vectorSelectors } from '../support/monitoring.ts';
import { linePlotSvg, type PlotSeries, svgToPng } from './plot.ts';
import type { Prometheus } from './prometheus.ts';
import { REPO_ROOT } from '../support/repo-root.ts';

const STEP_S = 2;
const RATE_INTERVAL = '10s';

export interface MonitoringCheck {
  kind: 'panel' | 'alert';
  name: string;
  query: string;
  result: 'data' | 'fired' | 'series present' | 'no data' | 'not exported by this build';
  pass: boolean;
}

export interface MonitoringReport {
  checks: MonitoringCheck[];
  /** PNG plots, each with its report-relative path and title. */
  plots: { file: string; title: string; png: Buffer }[];
  /** The expression that scoped every query to this run. */
  scope: string;
}

export interface RunScope {
  namespaces: string[];
  job: string;
  startS: number;
  endS: number;
}

/** A dashboard query with its variables set to this run: the test namespaces, the gateway Service. */
export function expandDashboardQuery(expr: string, scope: Pick<RunScope, 'namespaces' | 'job'>): string {
  return expr
    .replaceAll('namespace="$namespace"', `namespace=~"${scope.namespaces.join('|')}"`)
    .replaceAll('"$job"', `"${scope.job}"`)
    .replaceAll('$__rate_interval', RATE_INTERVAL);
}

async function exportedMetricNames(): Promise<Set<string>> {
  const names = (await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name);
  return new Set(names.flatMap((n) => [n, `${n}_bucket`, `${n}_sum`, `${n}_count`]));
}

export async function checkMonitoring(prometheus: Prometheus, scope: RunScope): Promise<MonitoringReport> {
  const range = (expr: string) => prometheus.queryRange(expr, scope.startS, scope.endS, STEP_S);
  const exported = await exportedMetricNames();
  const checks: MonitoringCheck[] = [];

  const dashboard = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'deploy/grafana/buildkitd-autoscaler.json'), 'utf8'),
  ) as unknown;
  for (const panel of dashboardPanels(dashboard)) {
    for (const target of panel.targets) {
      const query = expandDashboardQuery(target.expr, scope);
      const name = `${panel.title} / ${target.legendFormat ?? target.refId}`;
      if (metricNames(target.expr).some((m) => !exported.has(m))) {
        checks.push({ kind: 'panel', name, query, result: 'not exported by this build', pass: true });
        continue;
      }
      const data = await range(query);
      checks.push({ kind: 'panel', name, query, result: data.length > 0 ? 'data' : 'no data', pass: data.length > 0 });
    }
  }

  const rules = load(await readFile(path.join(REPO_ROOT, 'deploy/prometheus/rules.yaml'), 'utf8')) as RuleFile;
  // The gateway under test only, as the dashboard's $job: other releases in the namespaces (the multi-arch
  // pools) neither fire an alert for it nor stand in for its series.
  const matcher = `namespace=~"${scope.namespaces.join('|')}",job="${scope.job}"`;
  const scoped = (selector: string) =>
    selector.includes('{') ? selector.replace('{', `{${matcher},`) : `${selector}{${matcher}}`;
  for (const rule of alertRules(rules)) {
    const fired = await range(`ALERTS{alertname="${rule.alert}",${matcher}}`);
    if (fired.length > 0) {
      const states = [...new Set(fired.map((f) => f.metric.alertstate ?? '?'))].sort().join(' and ');
      checks.push({
        kind: 'alert',
        name: rule.alert,
        query: `${rule.expr} (ALERTS: ${states})`,
        result: 'fired',
        pass: true,
      });
      continue;
    }
    const missing: string[] = [];
    for (const selector of vectorSelectors(rule.expr))
      if ((await range(scoped(selector))).length === 0) missing.push(selector);
    checks.push({
      kind: 'alert',
      name: rule.alert,
      query: missing.length > 0 ? `no data: ${missing.join(', ')}` : vectorSelectors(rule.expr).join(', '),
      result: missing.length > 0 ? 'no data' : 'series present',
      pass: missing.length === 0,
    });
  }

  const plots: MonitoringReport['plots'] = [];
  const plot = async (file: string, title: string, unit: string, queries: [string, string][]) => {
    const series: PlotSeries[] = [];
    for (const [legend, expr] of queries) {
      for (const sample of await range(expandDashboardQuery(expr, scope))) {
        const label = legend.replaceAll(/\{\{(\w+)\}\}/g, (_m, key: string) => sample.metric[key] ?? '');
        series.push({
          name: label,
          points: sample.values
            .filter(([, v]) => Number.isFinite(Number(v)))
            .map(([t, v]) => [t - scope.startS, Number(v)]),
        });
      }
    }
    plots.push({ file, title, png: svgToPng(linePlotSvg(title, unit, series)) });
  };
  const sel = 'namespace="$namespace", job="$job"';
  await plot('plots/builders.png', 'Builders: desired and StatefulSet replicas', '', [
    ['desired', `max(bka_desired_replicas{${sel}})`],
    ['statefulset {{kind}}', `max by (kind) (bka_statefulset_replicas{${sel}})`],
  ]);
  await plot('plots/connections.png', 'Connections: open and held (all gateway replicas)', '', [
    ['open', `sum(bka_connections_open{${sel}})`],
    ['held', `sum(bka_connections_held{${sel}})`],
  ]);
  await plot('plots/cold-start.png', 'Cold start: hold time p50 / p99', 's', [
    ['p50', `histogram_quantile(0.5, sum by (le) (rate(bka_hold_duration_seconds_bucket{${sel}}[$__rate_interval])))`],
    ['p99', `histogram_quantile(0.99, sum by (le) (rate(bka_hold_duration_seconds_bucket{${sel}}[$__rate_interval])))`],
  ]);
  return {
    checks,
    plots,
    scope: `namespace=~"${scope.namespaces.join('|')}", job="${scope.job}", ${STEP_S}s steps, $__rate_interval=${RATE_INTERVAL}`,
  };
}

/** The REPORT.md section: the plots, then one row per panel query and per alert. */
export function renderMonitoring(report: MonitoringReport | undefined, error: string | undefined): string[] {
  const lines = ['## Metrics: dashboard and alerts against a real Prometheus', ''];
  if (!report)
    return [
      ...lines,
      error ? `Not checked: ${error}` : 'Not checked on this backend (the local backend runs the built prometheus).',
      '',
    ];
  lines.push(
    `Prometheus scraped the gateway pods through the scrape config generated from \`deploy/kubernetes/components/servicemonitor\` and evaluated \`deploy/prometheus/rules.yaml\`; queries over the whole run (${report.scope}).`,
    'An alert passes when it fired in this run, or when every `bka_` series its expression reads returned data (it watches real series).',
    `Each check as JSON: [monitoring.json](monitoring.json).`,
    '',
    ...report.plots.map((p) => `![${p.title}](${p.file})`),
    '',
    '| | what | result | query |',
    '| --- | --- | --- | --- |',
    ...report.checks.map(
      (c) =>
        `| ${c.pass ? '✅' : '❌'} | ${c.kind}: ${c.name.replaceAll('|', '\\|')} | ${c.result} | \`${c.query.replaceAll('|', '\\|')}\` |`,
    ),
    '',
  );
  return lines;
}
