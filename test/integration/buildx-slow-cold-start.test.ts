// buildx against a builder that starts slower than buildx's 20 s bootstrap wait, without a pre-wake:
// `buildx create` gives up after 20 s and `buildx build` follows at once, as in README's recipe. The
// builder the first connection woke must keep starting for the idle timeout after that client left, so
// the build's connection is served by it instead of waking a new one from scratch.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildx, buildxBuild } from '../support/buildx.ts';
import { setup } from './harness.ts';

const START_DELAY_MS = 25_000;

test('a client that gave up while held leaves the builder starting: buildx create then build against a 25 s cold start', async (t) => {
  const env = await setup(t, {
    buildkitd: { kind: 'real', terminationGraceSeconds: 10, startDelayMs: START_DELAY_MS },
  });
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '5s', READY_WAIT_TIMEOUT: '3m' });
  const history = await env.watchReplicas();

  const context = mkdtempSync(join(tmpdir(), 'bka-slow-'));
  const payload = randomBytes(64 * 1024);
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
  writeFileSync(join(env.artifacts, 'buildx-create.log'), create.output);
  assert.equal(create.code, 0, create.output);
  const build = await buildxBuild('bka', context, join(context, 'out'), clientEnv);
  writeFileSync(join(env.artifacts, 'buildx-build.log'), build.output);
  t.diagnostic(
    `buildx create ${create.ms} ms, then buildx build ${build.ms} ms; replicas ${history.changes.map((c) => `${c.spec}/${c.ready}`).join(' → ')}`,
  );
  assert.equal(build.code, 0, build.output.slice(-1500));
  assert.equal(
    Buffer.compare(readFileSync(join(context, 'out', 'out', 'payload.bin')), payload),
    0,
    'build output matches byte for byte',
  );
  const gaveUp = await gateway.waitForEvents(
    'connection_closed with outcome client_gone_while_held',
    (e) => e['event'] === 'connection_closed' && e['outcome'] === 'client_gone_while_held',
  );
  assert.ok(gaveUp.length >= 1, 'buildx create gave up while held (the builder starts slower than it waits)');
  assert.equal(
    await gateway.metric('bka_scale_operations_total', { direction: 'down', result: 'success' }),
    0,
    'the starting builder was never scaled down under the waiting clients',
  );
  assert.equal(
    await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }),
    1,
    'one cold start served both',
  );
});
