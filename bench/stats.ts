// Medians, spreads and the printed table of the benchmark.

export interface Figure {
  workload: string;
  metric: string;
  unit: string;
  /** Higher is better (throughput, rate) or lower is better (latency, memory, time). */
  better: 'higher' | 'lower';
  /** Samples per target, one per repeated run. */
  direct?: number[];
  haproxy?: number[];
  gateway: number[];
  note?: string;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Half the range relative to the median, in percent: how far the runs were apart. */
export function spreadPercent(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = median(values);
  return m === 0 ? 0 : ((Math.max(...values) - Math.min(...values)) / 2 / Math.abs(m)) * 100;
}

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 10) return value.toFixed(2);
  return value.toFixed(3);
}

function cell(values: readonly number[] | undefined): string {
  if (!values || values.length === 0) return 'n/a';
  const spread = spreadPercent(values);
  return values.length > 1 ? `${format(median(values))} ±${spread.toFixed(spread < 10 ? 1 : 0)}%` : format(median(values));
}

function ratio(gateway: readonly number[], other: readonly number[] | undefined): string {
  if (!other || other.length === 0) return 'n/a';
  const o = median(other);
  return o === 0 ? '-' : (median(gateway) / o).toFixed(2);
}

export function summary(figure: Figure) {
  return {
    workload: figure.workload,
    metric: figure.metric,
    unit: figure.unit,
    better: figure.better,
    runs: figure.gateway.length,
    direct: figure.direct && { median: median(figure.direct), spreadPercent: spreadPercent(figure.direct), samples: figure.direct },
    haproxy: figure.haproxy && { median: median(figure.haproxy), spreadPercent: spreadPercent(figure.haproxy), samples: figure.haproxy },
    gateway: { median: median(figure.gateway), spreadPercent: spreadPercent(figure.gateway), samples: figure.gateway },
    gatewayOverHaproxy: figure.haproxy?.length ? median(figure.gateway) / median(figure.haproxy) : null,
    gatewayOverDirect: figure.direct?.length ? median(figure.gateway) / median(figure.direct) : null,
    ...(figure.note ? { note: figure.note } : {}),
  };
}

/** A Markdown table: median ±half-range of the repeated runs, and the ratios of the medians. */
export function table(figures: readonly Figure[]): string {
  const rows = [['workload', 'metric', 'unit', 'direct', 'HAProxy', 'gateway', 'gw/HAProxy', 'gw/direct']];
  for (const f of figures) {
    rows.push([f.workload, f.metric + (f.better === 'higher' ? ' ↑' : ' ↓'), f.unit, cell(f.direct), cell(f.haproxy), cell(f.gateway), ratio(f.gateway, f.haproxy), ratio(f.gateway, f.direct)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - [...c].length)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
