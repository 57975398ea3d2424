// The CI recipe for buildx: `buildkitd-autoscaler wake --wait` at job start, then `buildx build`. buildkitd
// here takes 25 s to start (simulated image pull), longer than the 20 s buildx's remote driver waits for a
// first answer during bootstrap; after the pre-wake buildx finds it warm and builds at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildx, buildxBuild } from '../support/buildx.ts';
import { setup } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';

const START_DELAY_MS = 25_000;

/** The shipped CLI, as a CI job runs it (the image's entry point with `wake`). */
function wakeCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'wake', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) }));
  });
}

test('buildx after `buildkitd-autoscaler wake --wait`: a builder slower to start than buildx waits is warm when the build begins', async (t) => {
  const env = await setup(t, {
    buildkitd: { kind: 'real', terminationGraceSeconds: 10, startDelayMs: START_DELAY_MS },
  });
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '5s', READY_WAIT_TIMEOUT: '3m' });
  assert.equal((await env.replicas()).spec, 0);

  const wake = await wakeCli([
    '--url',
    `http://127.0.0.1:${gateway.metricsPort}`,
    '--for',
    '2m',
    '--wait',
    '--timeout',
    '3m',
  ]);
  writeFileSync(join(env.artifacts, 'wake.log'), `${wake.stdout}${wake.stderr}`);
  assert.equal(wake.code, 0, `${wake.stdout}${wake.stderr}`);
  assert.equal(await gateway.metric('bka_wakes_total', { source: 'api' }), 1);
  assert.equal((await env.replicas()).spec, 1, 'the pre-wake scaled buildkitd up');

  const context = mkdtempSync(join(tmpdir(), 'bka-prewake-'));
  const payload = randomBytes(256 * 1024);
  writeFileSync(join(context, 'payload.bin'), payload);
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
  const clientEnv = {
    ...env.cluster.env(),
    BUILDX_CONFIG: join(context, 'buildx-config'),
    DOCKER_CONFIG: join(context, 'docker-config'),
  };
  const create = await buildx(
    ['create', '--name', 'bka', '--driver', 'remote', `tcp://127.0.0.1:${gateway.proxyPort}`],
    clientEnv,
  );
  assert.equal(create.code, 0, create.output);
  const build = await buildxBuild('bka', context, join(context, 'out'), clientEnv);
  writeFileSync(join(env.artifacts, 'buildx-build.log'), build.output);
  assert.equal(build.code, 0, build.output.slice(-2000));
  assert.equal(
    Buffer.compare(readFileSync(join(context, 'out', 'out', 'payload.bin')), payload),
    0,
    'build output matches byte for byte',
  );
  assert.equal(
    await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }),
    1,
    'only the pre-wake scaled up',
  );
  assert.equal(
    await gateway.metric('bka_hold_duration_seconds_count'),
    0,
    'no buildx connection was held: the builder was up',
  );

  t.diagnostic(
    `wake --wait returned after ${wake.ms} ms (builder start delay ${START_DELAY_MS} ms): ${wake.stdout.trim().split('\n').at(-1) ?? ''}`,
  );
  t.diagnostic(`buildx build after the pre-wake ${build.ms} ms`);
});
