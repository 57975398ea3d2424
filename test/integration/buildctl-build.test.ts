// A real BuildKit build through the gateway: buildkitd woken from zero, a FROM scratch + COPY
// Dockerfile built offline with the built-in frontend, the output checked byte for byte.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildctl, setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

test('buildctl build through the gateway against a real buildkitd woken from zero', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'real', terminationGraceSeconds: 10 } });
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '5s', READY_WAIT_TIMEOUT: '3m' });
  assert.equal((await env.replicas()).spec, 0);

  const context = mkdtempSync(join(tmpdir(), 'bka-build-'));
  const payload = randomBytes(256 * 1024);
  writeFileSync(join(context, 'payload.bin'), payload);
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
  const out = join(context, 'out');
  const result = await buildctl(
    [
      '--addr',
      `tcp://127.0.0.1:${gateway.proxyPort}`,
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${context}`,
      '--local',
      `dockerfile=${context}`,
      '--output',
      `type=local,dest=${out}`,
    ],
    env.cluster.env(),
  );
  writeFileSync(join(env.artifacts, 'buildctl.log'), result.output);
  assert.equal(result.code, 0, result.output.slice(-2000));
  assert.equal(
    Buffer.compare(readFileSync(join(out, 'out', 'payload.bin')), payload),
    0,
    'build output matches byte for byte',
  );
  assert.ok(
    (await gateway.metric('bka_hold_duration_seconds_count')) >= 1,
    'the first connection was held while buildkitd woke',
  );
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }), 1);
  await waitFor('scale back to 0 after the build', async () => (await env.replicas()).spec === 0, 60_000);
});
