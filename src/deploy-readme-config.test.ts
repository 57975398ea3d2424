import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { optionDefinitions } from './config.ts';

// deploy/README.md lists the gateway's environment variables for whoever writes their own manifests; a
// setting missing there is one an operator never learns about, a name that is not one is silently ignored.
test('deploy/README.md "Configuration" names every environment variable the gateway reads, and only those', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'deploy', 'README.md'), 'utf8');
  const section = /^## Configuration\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'deploy/README.md has a "## Configuration" section');
  const listed = new Set(section.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g));
  const defined = optionDefinitions.map((d) => d.env);
  assert.deepEqual(
    defined.filter((env) => !listed.has(env)),
    [],
    'missing from deploy/README.md',
  );
  assert.deepEqual(
    [...listed].filter((env) => !(defined as readonly string[]).includes(env)),
    [],
    'named in deploy/README.md but not read by the gateway',
  );
});
