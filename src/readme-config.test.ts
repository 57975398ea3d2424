import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configTable } from '../scripts/config-table.ts';

test('README.md shows the configuration table generated from the option definitions', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  assert.ok(readme.includes(configTable()), 'README is stale: paste the output of `node scripts/config-table.ts`');
});
