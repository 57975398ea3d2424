// Reads the monitoring sources (deploy/prometheus/rules.yaml, deploy/grafana/buildkitd-autoscaler.json) for
// the deploy tests and the E2E's "returns data" check.

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleFile {
  groups: { name: string; rules: (AlertRule | { record: string; expr: string })[] }[];
}

export function alertRules(file: RuleFile): AlertRule[] {
  return file.groups.flatMap((g) => g.rules.filter((r): r is AlertRule => 'alert' in r));
}

export interface DashboardTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasourceUid?: string;
}
export interface DashboardPanel {
  title: string;
  unit?: string;
  datasourceUid?: string;
  targets: DashboardTarget[];
}

interface RawPanel {
  type?: string;
  title?: string;
  datasource?: { uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { refId?: string; expr?: string; legendFormat?: string; datasource?: { uid?: string } }[];
  panels?: RawPanel[];
}

/** Every panel that shows data (rows are only containers), with its queries. */
export function dashboardPanels(dashboard: unknown): DashboardPanel[] {
  const flatten = (panels: RawPanel[]): RawPanel[] =>
    panels.flatMap((p) => (p.type === 'row' ? flatten(p.panels ?? []) : [p]));
  return flatten((dashboard as { panels?: RawPanel[] }).panels ?? []).map((p) => ({
    title: p.title ?? '',
    unit: p.fieldConfig?.defaults?.unit,
    datasourceUid: p.datasource?.uid,
    targets: (p.targets ?? []).map((t) => ({
      refId: t.refId ?? '',
      expr: t.expr ?? '',
      legendFormat: t.legendFormat,
      datasourceUid: t.datasource?.uid,
    })),
  }));
}

const SELECTOR = /\b(bka_[A-Za-z0-9_]+)(\{[^}]*\})?/g;

/** The bka_ metric selectors of a PromQL expression, with their label matchers ('bka_errors_total{code="X"}'). */
export function vectorSelectors(expr: string): string[] {
  return [...new Set([...expr.matchAll(SELECTOR)].map((m) => m[0]))];
}

/** The bka_ metric names a PromQL expression reads. */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(SELECTOR)].map((m) => m[1] ?? ''))];
}
