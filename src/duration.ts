// Go's time.Duration text form, because users copy values from the Go tool's manifests.
const unitMs = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
} as const satisfies Record<string, number>;

// µ and μ escaped: a non-ASCII character in the bundle makes V8 keep its whole source as UTF-16 (2x memory).
const segment = /(\d*\.?\d*)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** Go's largest time.Duration (2^63-1 ns, 2562047h47m16.854775807s); the Go tool refused anything longer. */
export const maxGoDurationMs = (2 ** 63 - 1) / 1e6;
const maxGoDurationText = '2562047h47m16.854775807s';

/** Parses a Go duration ("2m0s", "1h2m3.5s", "500ms", "0") into milliseconds; throws on anything else. */
export function parseGoDuration(text: string): number {
  const input = text.trim();
  if (input === '0') return 0;
  if (input === '') throw new Error('empty duration');
  let rest = input;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '') throw new Error(`not a Go duration: ${JSON.stringify(text)}`);
  let total = 0;
  segment.lastIndex = 0;
  while (segment.lastIndex < rest.length) {
    const start = segment.lastIndex;
    const match = segment.exec(rest);
    if (!match || match.index !== start) {
      throw new Error(`not a Go duration: ${JSON.stringify(text)} (examples: 2m0s, 90s, 1h2m3.5s, 500ms)`);
    }
    const [, number = '', unit = ''] = match;
    if (number === '' || number === '.') {
      throw new Error(`not a Go duration: ${JSON.stringify(text)} (missing number before "${unit}")`);
    }
    total += Number(number) * unitMs[unit as keyof typeof unitMs];
  }
  // Every timer chains past Node's 24.8-day limit (clock.ts), so up to Go's limit every value works.
  if (!(total <= maxGoDurationMs))
    throw new Error(`out of range: at most ${maxGoDurationText} (Go's largest duration)`);
  return sign * total;
}

/** Formats milliseconds the way Go's Duration.String() does ("2m0s", "1.5s", "500ms"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const negative = ms < 0;
  let rest = Math.abs(ms);
  let out: string;
  if (rest < 1000) {
    out = `${trimNumber(rest)}ms`;
  } else {
    const hours = Math.floor(rest / 3_600_000);
    rest -= hours * 3_600_000;
    const minutes = Math.floor(rest / 60_000);
    rest -= minutes * 60_000;
    const seconds = `${trimNumber(rest / 1000)}s`;
    if (hours > 0) out = `${hours}h${minutes}m${seconds}`;
    else if (minutes > 0) out = `${minutes}m${seconds}`;
    else out = seconds;
  }
  return negative ? `-${out}` : out;
}

function trimNumber(value: number): string {
  return String(Number(value.toFixed(6)));
}
