// Reading /metrics in tests: the Prometheus text exposition format parsed into samples (prom-client only writes it).

export interface Sample {
  name: string;
  labels: Map<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabelValue(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/** Every sample of a text exposition; comment lines (# HELP, # TYPE) and blank lines are skipped. */
export function parsePromText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = SAMPLE_LINE.exec(line.trim());
    if (!match) continue;
    const labels = new Map<string, string>();
    for (const [, key = '', value = ''] of (match[2] ?? '').matchAll(LABEL_PAIR))
      labels.set(key, unescapeLabelValue(value));
    samples.push({ name: match[1] ?? '', labels, value: parseValue(match[3] ?? '') });
  }
  return samples;
}

/** Sum of a metric's samples whose labels include `labels`; undefined when no sample matches. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const sample of parsePromText(text)) {
    if (sample.name !== name || !Object.entries(labels).every(([k, v]) => sample.labels.get(k) === v)) continue;
    sum = (sum ?? 0) + sample.value;
  }
  return sum;
}
