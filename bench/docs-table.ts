// Keeps docs/performance.md's "Latest measurement" the bench's own output: `npm run bench -- --update-docs`
// replaces what stands between the two markers with the result of a full run.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const performanceDoc = join(import.meta.dirname, '..', 'docs', 'performance.md');
const begin = '<!-- bench:latest:begin -->';
const end = '<!-- bench:latest:end -->';

/** The document with the text between the markers replaced; throws unless each marker is there once, in order. */
export function withLatestMeasurement(doc: string, markdown: string): string {
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from || doc.indexOf(begin, from + 1) >= 0 || doc.indexOf(end, to + 1) >= 0) {
    throw new Error(`docs/performance.md needs one ${begin} and one ${end} after it`);
  }
  return `${doc.slice(0, from + begin.length)}\n${markdown.trim()}\n${doc.slice(to)}`;
}

export function updatePerformanceDoc(markdown: string, file = performanceDoc): void {
  writeFileSync(file, withLatestMeasurement(readFileSync(file, 'utf8'), markdown));
}
