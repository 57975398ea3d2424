// The docker buildx client (remote driver, run standalone without a Docker daemon) builds through the
// gateway against a real buildkitd woken from zero, then again while warm; the output is checked byte for
// byte. What buildx sees of the cold start is measured and printed (no pass/fail on time).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildx, buildxBuild } from '../support/buildx.ts';
import { setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

test('buildx (remote driver) builds through the gateway from zero, then warm', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'real', terminationGraceSeconds: 10 } });
  // --wake-on=data (the default): BuildKit clients speak first (TLS ClientHello, HTTP/2 preface), so nothing changes for them.
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '5s', READY_WAIT_TIMEOUT: '3m', WAKE_ON: 'data' });
  assert.equal((await env.replicas()).spec, 0);

  const context = mkdtempSync(join(tmpdir(), 'bka-buildx-'));
  const payload = randomBytes(256 * 1024);
  writeFileSync(join(context, 'payload.bin'), payload);
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
  const clientEnv = {
    ...env.cluster.env(),
    BUILDX_CONFIG: join(context, 'buildx-config'),
    DOCKER_CONFIG: join(context, 'docker-config'),
  };
  const log = (name: string, output: string) => writeFileSync(join(env.artifacts, name), output);

  const scaleUps = () => gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' });
  const atZero = async () => {
    const replicas = await env.replicas();
    return replicas.spec === 0 && replicas.ready === 0;
  };
  const connectionIds = () => new Set(gateway.events().flatMap((e) => (typeof e['id'] === 'number' ? [e['id']] : [])));
  /** A finished client's lines: every connection it opened has a line (logged before it exited), then a closing line. */
  const clientLogged = async () => {
    await gateway.logCaughtUp();
    await waitFor('a connection_closed line for every connection logged so far', () => {
      const closed = new Set(gateway.events().flatMap((e) => (e['event'] === 'connection_closed' ? [e['id']] : [])));
      return [...connectionIds()].every((id) => closed.has(id));
    });
  };

  const create = await buildx(
    ['create', '--name', 'bka', '--driver', 'remote', `tcp://127.0.0.1:${gateway.proxyPort}`],
    clientEnv,
  );
  log('buildx-create.log', create.output);
  assert.equal(create.code, 0, create.output);
  await clientLogged();
  const createConnections = connectionIds().size;
  const createWoke = (await scaleUps()) > 0;
  // `buildx create` reads the builder's status: whatever it woke goes back to zero before the cold build.
  await waitFor('buildkitd at 0 before the cold build', atZero, 60_000);

  const upsBeforeCold = await scaleUps();
  const idsBeforeCold = connectionIds();
  const cold = await buildxBuild('bka', context, join(context, 'out-cold'), clientEnv);
  log('buildx-build-cold.log', cold.output);
  assert.equal(cold.code, 0, cold.output.slice(-2000));
  assert.equal(
    Buffer.compare(readFileSync(join(context, 'out-cold', 'out', 'payload.bin')), payload),
    0,
    'cold build output matches byte for byte',
  );
  assert.equal(await scaleUps(), upsBeforeCold + 1, 'the cold build woke buildkitd once');
  const [firstRouted] = await gateway.waitForEvents(
    'connection_routed of the cold build',
    (e) => e['event'] === 'connection_routed' && !idsBeforeCold.has(e['id'] as number),
  );

  const warm = await buildxBuild('bka', context, join(context, 'out-warm'), clientEnv);
  log('buildx-build-warm.log', warm.output);
  assert.equal(warm.code, 0, warm.output.slice(-2000));
  assert.equal(
    Buffer.compare(readFileSync(join(context, 'out-warm', 'out', 'payload.bin')), payload),
    0,
    'warm build output matches byte for byte',
  );
  assert.equal(await scaleUps(), upsBeforeCold + 1, 'the warm build woke nothing');

  // Connect to first answer: `buildx inspect --bootstrap` at zero returns once buildkitd has answered its info request.
  await waitFor('buildkitd at 0 after the builds', atZero, 60_000);
  const inspect = await buildx(['inspect', '--bootstrap', '--builder', 'bka'], clientEnv);
  log('buildx-inspect-bootstrap.log', inspect.output);
  assert.equal(inspect.code, 0, inspect.output.slice(-2000));
  assert.match(inspect.output, /Status:\s+running/);

  t.diagnostic(
    `buildx create opened ${createConnections} connection(s) through the gateway${createWoke ? ' and woke buildkitd' : ', waking nothing'}`,
  );
  t.diagnostic(
    `cold build from zero ${cold.ms} ms (first connection held ${Math.round(Number(firstRouted?.['heldMs'] ?? 0))} ms); warm build ${warm.ms} ms`,
  );
  t.diagnostic(`cold start seen by buildx (inspect --bootstrap at zero, connect to first answer) ${inspect.ms} ms`);
  await waitFor('scale back to 0 at the end', async () => (await env.replicas()).spec === 0, 60_000);
});
