import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorCodesTable } from '../scripts/error-codes-table.ts';
import { ErrorCode } from './errors.ts';

const root = join(import.meta.dirname, '..');

test('docs/troubleshooting.md shows the log code table generated from the code definitions', () => {
  const doc = readFileSync(join(root, 'docs', 'troubleshooting.md'), 'utf8');
  assert.ok(
    doc.includes(errorCodesTable()),
    'docs/troubleshooting.md is stale: paste the output of `node scripts/error-codes-table.ts`',
  );
  for (const code of Object.values(ErrorCode)) assert.ok(errorCodesTable().includes(`\`${code}\``), code);
});

// The harness's own variables (BKA_CLUSTER_NAME, ...) are settings of the test tooling, not log codes.
const toolingVariables = new Set(['BKA_CLUSTER_NAME', 'BKA_KEEP_CLUSTER', 'BKA_CACHE_DIR', 'BKA_BUILD_REVISION']);

test('every BKA_* code the documentation names is one the gateway logs', () => {
  const known = new Set<string>(Object.values(ErrorCode));
  for (const file of [
    'README.md',
    'deploy/README.md',
    'docs/troubleshooting.md',
    'docs/migrating-from-the-go-tool.md',
    'docs/ARCHITECTURE.md',
    'charts/buildkitd-autoscaler/values.yaml',
  ]) {
    const named = readFileSync(join(root, file), 'utf8').match(/\bBKA_[A-Z_]+\b/g) ?? [];
    assert.deepEqual(
      [...new Set(named)].filter((code) => !known.has(code) && !toolingVariables.has(code)),
      [],
      `${file} names codes the gateway never logs`,
    );
  }
});
