// Medians, spreads, per-round ratios and the printed table of the benchmark.
import { peers, references, type Peer } from './peers.ts';

export interface Figure {
  workload: string;
  metric: string;
  unit: string;
  /** Higher is better (throughput, rate) or lower is better (latency, memory, time, CPU). */
  better: 'higher' | 'lower';
  /** Samples per peer, one per round: index r of every peer was measured in the same round. */
  samples: Partial<Record<Peer, number[]>>;
  note?: string;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Half the range relative to the median, in percent: how far the rounds were apart. */
export function spreadPercent(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = median(values);
  return m === 0 ? 0 : ((Math.max(...values) - Math.min(...values)) / 2 / Math.abs(m)) * 100;
}

/**
 * The ratio a/b taken inside each round (a[r] / b[r]), then the median over rounds: machine noise that
 * hits one round hits both paths of it alike, so it cancels in the ratio instead of adding up.
 */
export function perRoundRatios(a: readonly number[] | undefined, b: readonly number[] | undefined): number[] {
  if (!a || !b) return [];
  const rounds = Math.min(a.length, b.length);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const x = a[r];
    const y = b[r];
    // A reference at or below zero (a difference such as "added over direct" lost in noise) has no ratio.
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y > 0) ratios.push(x / y);
  }
  return ratios;
}

export function medianRatio(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  return median(perRoundRatios(a, b));
}

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 10) return value.toFixed(2);
  if (abs >= 0.01 || abs === 0) return value.toFixed(3);
  return value.toPrecision(2);
}

function cell(values: readonly number[] | undefined): string {
  if (!values || values.length === 0) return 'n/a';
  const spread = spreadPercent(values);
  return values.length > 1
    ? `${format(median(values))} ±${spread.toFixed(spread < 10 ? 1 : 0)}%`
    : format(median(values));
}

function ratioCell(figure: Figure, reference: Peer): string {
  const r = medianRatio(figure.samples.gateway, figure.samples[reference]);
  return Number.isNaN(r) ? 'n/a' : r.toFixed(2);
}

export function summary(figure: Figure) {
  const byPeer = Object.fromEntries(
    peers
      .filter((p) => figure.samples[p.id]?.length)
      .map((p) => {
        const s = figure.samples[p.id] ?? [];
        return [p.id, { median: median(s), spreadPercent: spreadPercent(s), samples: s }];
      }),
  );
  const ratios = Object.fromEntries(
    references.map((ref) => {
      const perRound = perRoundRatios(figure.samples.gateway, figure.samples[ref.id]);
      return [ref.id, perRound.length ? { medianOfPerRound: median(perRound), perRound } : null];
    }),
  );
  return {
    workload: figure.workload,
    metric: figure.metric,
    unit: figure.unit,
    better: figure.better,
    rounds: Math.max(0, ...Object.values(figure.samples).map((s) => s.length)),
    peers: byPeer,
    gatewayOver: ratios,
    ...(figure.note ? { note: figure.note } : {}),
  };
}

/** A Markdown table: median ±half-range over rounds per peer, and the medians of the gateway's per-round ratios. */
export function table(figures: readonly Figure[]): string {
  const rows = [['workload', 'metric', 'unit', ...peers.map((p) => p.label), ...references.map((r) => r.column)]];
  for (const f of figures) {
    rows.push([
      f.workload,
      f.metric + (f.better === 'higher' ? ' ↑' : ' ↓'),
      f.unit,
      ...peers.map((p) => cell(f.samples[p.id])),
      ...references.map((r) => ratioCell(f, r.id)),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - [...c].length)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
