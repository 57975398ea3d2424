// The operators' kit: the alerts (deploy/prometheus/rules.yaml) pass `promtool check rules` and their own
// `promtool test rules` cases, every alert has cases that fire it and neighbours that must not, the chart's
// and the kustomize components' copies match their sources, and the Grafana dashboard's panels each have a
// query, a unit and the datasource variable. Needs promtool from scripts/build-binaries.sh.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { load } from 'js-yaml';
import { createMetrics } from '../../src/metrics.ts';
import { DASHBOARD_SOURCE, driftedFiles, RULES_SOURCE } from '../../scripts/generate-monitoring.ts';
import { alertRules, dashboardPanels, metricNames, type RuleFile } from '../support/monitoring.ts';
import { builtBinary, findOne, KUSTOMIZE_DIR, kustomize, type Manifest, REPO_ROOT, runTool } from './tools.ts';

const RULES_TEST = 'deploy/prometheus/rules.test.yaml';
// Dashboard metrics another change adds (the capacity cap's queue); the panel shows them once it lands.
const NOT_YET_EXPORTED = new Set(['bka_connections_queued']);

interface PromtoolTests {
  rule_files: string[];
  tests: {
    input_series: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts: { exp_labels: Record<string, string> }[] }[];
  }[];
}

/** The labels of a promtool input series such as 'm{a="b",c="d"}'. */
function seriesLabels(series: string): Record<string, string> {
  return Object.fromEntries([...series.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

describe('alerts', () => {
  let rules: RuleFile;
  let promtool: string;
  before(async () => {
    rules = load(await readFile(path.join(REPO_ROOT, RULES_SOURCE), 'utf8')) as RuleFile;
    promtool = await builtBinary('promtool');
  });

  it('has one alert per row of deploy/README.md\'s "What to alert on", each with a severity, a summary and a runbook', () => {
    const alerts = alertRules(rules);
    assert.deepEqual(
      alerts.map((a) => a.alert),
      [
        'BuildkitdAutoscalerLeaderCount',
        'BuildkitdAutoscalerStaleReports',
        'BuildkitdAutoscalerScaleDownBlocked',
        'BuildkitdAutoscalerReportExpired',
        'BuildkitdAutoscalerLeaseFailures',
        'BuildkitdAutoscalerIdentityConflict',
        'BuildkitdAutoscalerWatchDown',
        'BuildkitdAutoscalerScaleFailures',
        'BuildkitdAutoscalerWakeGaveUp',
        'BuildkitdAutoscalerReadyTimeouts',
      ],
    );
    for (const a of alerts) {
      assert.match(a.labels?.severity ?? '', /^(info|warning|critical)$/, a.alert);
      assert.ok(a.annotations?.summary && a.annotations.runbook, `${a.alert} has a summary and a runbook`);
      assert.ok(metricNames(a.expr).length > 0, `${a.alert} reads a bka_ metric`);
    }
  });

  it('passes promtool check rules', async () => {
    const result = await runTool(promtool, ['check', 'rules', RULES_SOURCE]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS: 10 rules found/);
  });

  it('passes promtool test rules', async () => {
    const result = await runTool(promtool, ['test', 'rules', RULES_TEST]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS/);
  });

  it('tests every alert firing, beside input series that must not fire it', async () => {
    const tests = load(await readFile(path.join(REPO_ROOT, RULES_TEST), 'utf8')) as PromtoolTests;
    assert.deepEqual(tests.rule_files, ['rules.yaml']);
    for (const { alert } of alertRules(rules)) {
      const firing = tests.tests.filter((t) =>
        t.alert_rule_test?.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
      );
      assert.ok(firing.length > 0, `${alert}: no case where it fires`);
      const quiet = firing.some((t) => {
        const expected = (t.alert_rule_test ?? [])
          .filter((c) => c.alertname === alert)
          .flatMap((c) => c.exp_alerts.map((e) => e.exp_labels));
        // A series whose labels no firing alert carries: its values must not fire the alert.
        return t.input_series.some((s) => {
          const labels = seriesLabels(s.series);
          return expected.every((e) =>
            Object.entries(e).some(([k, v]) => k !== 'severity' && labels[k] !== undefined && labels[k] !== v),
          );
        });
      });
      assert.ok(quiet, `${alert}: no input series beside the firing ones that must stay quiet`);
    }
  });
});

describe('copies of the sources', () => {
  it('the chart and the kustomize components carry what scripts/generate-monitoring.ts makes of the sources', async () => {
    assert.deepEqual(await driftedFiles(), [], 'run node scripts/generate-monitoring.ts');
  });
});

describe('kustomize components', () => {
  let workDir: string;
  before(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'bka-monitoring-'));
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  async function overlay(name: string, components: string[]): Promise<Manifest[]> {
    const dir = path.join(workDir, name);
    await mkdir(dir);
    const rel = (p: string) => path.relative(dir, p);
    await writeFile(
      path.join(dir, 'kustomization.yaml'),
      `namespace: ci-builds\nresources:\n  - ${rel(KUSTOMIZE_DIR)}\ncomponents:\n${components.map((c) => `  - ${rel(path.join(KUSTOMIZE_DIR, 'components', c))}\n`).join('')}`,
    );
    return kustomize(dir);
  }

  it("servicemonitor, prometheusrule and grafana-dashboard land in the overlay's namespace and select the gateway Service", async () => {
    const docs = await overlay('service', ['servicemonitor', 'prometheusrule', 'grafana-dashboard']);
    const service = findOne<Manifest & { spec: { selector: Record<string, string> } }>(
      docs,
      'Service',
      'buildkitd-autoscaler',
    );
    const monitor = findOne<
      Manifest & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } }
    >(docs, 'ServiceMonitor');
    assert.equal(monitor.metadata.namespace, 'ci-builds');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels))
      assert.equal(service.metadata.labels?.[k], v, `the Service carries ${k}=${v}`);
    assert.deepEqual(
      monitor.spec.endpoints.map((e) => e.port),
      ['metrics'],
    );
    const rule = findOne<Manifest & { spec: RuleFile }>(docs, 'PrometheusRule');
    assert.equal(rule.metadata.namespace, 'ci-builds');
    const source = load(await readFile(path.join(REPO_ROOT, RULES_SOURCE), 'utf8')) as RuleFile;
    assert.deepEqual(rule.spec, source, 'the PrometheusRule carries the rule file unchanged');
    const dashboard = findOne<Manifest & { data: Record<string, string> }>(
      docs,
      'ConfigMap',
      'buildkitd-autoscaler-dashboard',
    );
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
    assert.equal(
      dashboard.data['buildkitd-autoscaler.json'],
      await readFile(path.join(REPO_ROOT, DASHBOARD_SOURCE), 'utf8'),
    );
  });

  it('podmonitor selects the gateway pods', async () => {
    const docs = await overlay('pod', ['podmonitor']);
    const deployment = findOne<Manifest & { spec: { template: { metadata: { labels: Record<string, string> } } } }>(
      docs,
      'Deployment',
    );
    const monitor = findOne<
      Manifest & {
        spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string }[] };
      }
    >(docs, 'PodMonitor');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels))
      assert.equal(deployment.spec.template.metadata.labels[k], v, `the pods carry ${k}=${v}`);
    assert.deepEqual(
      monitor.spec.podMetricsEndpoints.map((e) => e.port),
      ['metrics'],
    );
  });
});

describe('Grafana dashboard', () => {
  interface Dashboard {
    templating: { list: { name: string; type: string; query: unknown }[] };
  }
  let dashboard: Dashboard;
  before(async () => {
    dashboard = JSON.parse(await readFile(path.join(REPO_ROOT, DASHBOARD_SOURCE), 'utf8')) as Dashboard;
  });

  it('has a Prometheus datasource variable', () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual(variable && { type: variable.type, query: variable.query }, {
      type: 'datasource',
      query: 'prometheus',
    });
  });

  it('gives every panel a query, a unit and the datasource variable, on the panel and on each query', () => {
    const panels = dashboardPanels(dashboard);
    assert.ok(panels.length >= 7, `${panels.length} panels`);
    for (const panel of panels) {
      assert.ok(panel.targets.length > 0, `${panel.title}: no query`);
      assert.ok(panel.unit, `${panel.title}: no unit`);
      assert.equal(panel.datasourceUid, '${datasource}', `${panel.title}: panel datasource`);
      for (const target of panel.targets) {
        assert.ok(target.expr.trim(), `${panel.title}/${target.refId}: empty query`);
        assert.equal(target.datasourceUid, '${datasource}', `${panel.title}/${target.refId}: query datasource`);
      }
    }
  });

  it('covers builders, connections, cold start, scale events, leader and reports, errors and bytes, with metrics the gateway exports', async () => {
    const exported = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    // A histogram is exported under its base name; its queries read the _bucket series.
    const queried = new Set(
      dashboardPanels(dashboard).flatMap((p) =>
        p.targets.flatMap((t) => metricNames(t.expr).map((n) => n.replace(/_bucket$/, ''))),
      ),
    );
    for (const name of [
      'bka_desired_replicas',
      'bka_statefulset_replicas',
      'bka_connections_open',
      'bka_connections_held',
      'bka_connections_queued',
      'bka_hold_duration_seconds',
      'bka_scale_operations_total',
      'bka_leader',
      'bka_gateway_stale_reports',
      'bka_errors_total',
      'bka_bytes_total',
    ]) {
      assert.ok(queried.has(name), `the dashboard shows ${name}`);
    }
    for (const name of queried)
      assert.ok(exported.has(name) || NOT_YET_EXPORTED.has(name), `${name} is not a metric of the gateway`);
  });
});
