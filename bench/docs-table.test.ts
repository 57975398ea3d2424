import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { performanceDoc, withLatestMeasurement } from './docs-table.ts';

test('docs/performance.md has one place for the latest measurement, and only that text is replaced', () => {
  const doc = readFileSync(performanceDoc, 'utf8');
  const updated = withLatestMeasurement(doc, 'Benchmark on 2027-01-01\n\n| workload | metric |\n| --- | --- |\n');
  const before = doc.split('<!-- bench:latest:begin -->');
  const after = updated.split('<!-- bench:latest:begin -->');
  assert.equal(after[0], before[0], 'text before the markers is kept');
  assert.equal(
    after[1]?.split('<!-- bench:latest:end -->')[1],
    before[1]?.split('<!-- bench:latest:end -->')[1],
    'text after the markers is kept',
  );
  assert.match(
    updated,
    /<!-- bench:latest:begin -->\nBenchmark on 2027-01-01\n\n\| workload \| metric \|\n\| --- \| --- \|\n<!-- bench:latest:end -->/,
  );
  assert.equal(
    withLatestMeasurement(updated, 'again'),
    withLatestMeasurement(doc, 'again'),
    'a second update replaces the first',
  );
  assert.throws(() => withLatestMeasurement('no markers', 'x'), /needs one/);
});
