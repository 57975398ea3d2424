// Every value in the chart's values.yaml must change what gets installed. Each documented value is set to
// a distinct value and the rendering must show it where the program (or Kubernetes) reads it; the same
// expectation must fail on the default rendering, so no case can pass by accident. A value added to
// values.yaml without a case in chart-cases.ts, or without a comment, fails the suite.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { load } from 'js-yaml';
import {
  CASES,
  isRecord,
  leafPaths,
  RELEASE_NAMESPACE,
  undocumentedLeaves,
  type Values,
  withValue,
} from './chart-cases.ts';
import { CHART_DIR, helmTemplate, type Manifest } from './tools.ts';

describe('chart values', () => {
  let defaults: Values;
  let valuesText: string;
  let workDir: string;
  let renders = 0;

  async function render(values: Values): Promise<Manifest[]> {
    const file = path.join(workDir, `values-${renders++}.json`);
    await writeFile(file, JSON.stringify(values));
    return helmTemplate(file, { namespace: RELEASE_NAMESPACE });
  }

  before(async () => {
    valuesText = await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8');
    const parsed = load(valuesText);
    assert.ok(isRecord(parsed));
    defaults = parsed;
    workDir = await mkdtemp(path.join(tmpdir(), 'bka-chart-values-'));
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('has a case here for every value in values.yaml, and no case for a value that is gone', () => {
    assert.deepEqual([...leafPaths(defaults)].sort(), Object.keys(CASES).sort());
  });

  it('documents every value with a comment line above it', () => {
    assert.deepEqual(undocumentedLeaves(valuesText, new Set(leafPaths(defaults))), []);
  });

  describe('each value reaches the rendered objects', { concurrency: 4 }, () => {
    for (const [dotted, valueCase] of Object.entries(CASES)) {
      it(dotted, async () => {
        const [without, withIt] = await Promise.all([
          render(valueCase.context ?? {}),
          render(withValue(valueCase.context, dotted, valueCase.set)),
        ]);
        assert.notDeepEqual(withIt, without, `setting ${dotted} changed nothing that gets installed`);
        valueCase.expect(withIt);
        assert.throws(() => valueCase.expect(without), `the expectation for ${dotted} also holds without the value`);
      });
    }
  });
});
