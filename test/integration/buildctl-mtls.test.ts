// mTLS end to end through the gateway: buildkitd serves TLS with client certificates required (files from a
// Secret), buildctl with a client certificate builds from zero, and a client without one is refused by
// buildkitd itself: the gateway only splices bytes, the handshake is between the client and buildkitd.
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  BUILDKITD_TLS_SERVER_NAME,
  buildctlTlsArgs,
  handshakeWithoutClientCert,
  makeBuildkitTls,
} from '../support/buildkit-tls.ts';
import { buildx, buildxBuild } from '../support/buildx.ts';
import { buildctl, setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

test('buildctl with mTLS builds through the gateway from zero, buildx with the same certificate too; a client without one is refused by buildkitd', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'real', terminationGraceSeconds: 10, tlsSecret: 'buildkitd-tls' } });
  const tls = await makeBuildkitTls(join(env.artifacts, 'tls'), env.namespace);
  const applied = await env.cluster.kubectl(['-n', env.namespace, 'apply', '-f', '-'], {
    input: tls.secretYaml('buildkitd-tls'),
  });
  assert.equal(applied.code, 0, applied.stderr);
  // --wake-on=data (the default): BuildKit clients speak first (TLS ClientHello, HTTP/2 preface), so nothing changes for them.
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '5s', READY_WAIT_TIMEOUT: '3m', WAKE_ON: 'data' });
  assert.equal((await env.replicas()).spec, 0);

  const context = mkdtempSync(join(tmpdir(), 'bka-mtls-'));
  const payload = randomBytes(256 * 1024);
  writeFileSync(join(context, 'payload.bin'), payload);
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
  const out = join(context, 'out');
  const addr = ['--addr', `tcp://127.0.0.1:${gateway.proxyPort}`];
  const build = await buildctl(
    [
      ...addr,
      ...buildctlTlsArgs(tls),
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
  writeFileSync(join(env.artifacts, 'buildctl-mtls.log'), build.output);
  assert.equal(build.code, 0, build.output.slice(-2000));
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

  // docker buildx's remote driver with the same client certificate (driver options), while warm.
  const buildxEnv = {
    ...env.cluster.env(),
    BUILDX_CONFIG: join(context, 'buildx-config'),
    DOCKER_CONFIG: join(context, 'docker-config'),
  };
  const driverOpts = `cacert=${tls.caCert},cert=${tls.clientCert},key=${tls.clientKey},servername=${BUILDKITD_TLS_SERVER_NAME}`;
  const created = await buildx(
    [
      'create',
      '--name',
      'bka-tls',
      '--driver',
      'remote',
      '--driver-opt',
      driverOpts,
      `tcp://127.0.0.1:${gateway.proxyPort}`,
    ],
    buildxEnv,
  );
  assert.equal(created.code, 0, created.output);
  const viaBuildx = await buildxBuild('bka-tls', context, join(context, 'out-buildx'), buildxEnv);
  writeFileSync(join(env.artifacts, 'buildx-mtls.log'), viaBuildx.output);
  assert.equal(viaBuildx.code, 0, viaBuildx.output.slice(-2000));
  assert.equal(
    Buffer.compare(readFileSync(join(context, 'out-buildx', 'out', 'payload.bin')), payload),
    0,
    'buildx output matches byte for byte',
  );

  // Without a client certificate: the server that answers through the gateway is buildkitd (its certificate), and it refuses.
  const logged = (kind: string) => gateway.events().filter((e) => e['event'] === kind).length;
  await waitFor(
    'every build connection closed in the gateway log',
    () => logged('connection_closed') === logged('connection_routed'),
  );
  const closedBefore = gateway.events().filter((e) => e['event'] === 'connection_closed').length;
  const handshake = await handshakeWithoutClientCert('127.0.0.1', gateway.proxyPort, tls.caCert);
  assert.equal(
    handshake.peerFingerprint,
    new X509Certificate(readFileSync(tls.serverCert)).fingerprint256,
    "buildkitd's own certificate came through the gateway",
  );
  assert.match(
    handshake.error ?? '',
    /certificate required|alert number 116/,
    'buildkitd refused the client without a certificate',
  );
  const noCert = await buildctl(
    [
      ...addr,
      '--tlscacert',
      tls.caCert,
      '--tlsservername',
      BUILDKITD_TLS_SERVER_NAME,
      '--timeout',
      '60',
      'debug',
      'workers',
    ],
    env.cluster.env(),
  );
  writeFileSync(join(env.artifacts, 'buildctl-without-cert.log'), noCert.output);
  assert.notEqual(noCert.code, 0, 'buildctl without a client certificate fails');
  assert.match(noCert.output, /certificate required|bad certificate|handshake/, noCert.output.slice(-1000));

  // What the gateway records for the refused connections: it saw bytes both ways and a close, nothing of TLS.
  const refused = await waitFor('the refused connections closed at the gateway', () => {
    const closed = gateway
      .events()
      .filter((e) => e['event'] === 'connection_closed')
      .slice(closedBefore);
    return closed.length >= 2 ? closed : undefined;
  });
  t.diagnostic(
    `gateway outcome for clients without a certificate: ${JSON.stringify(refused.map((e) => ({ outcome: e['outcome'], code: e['code'], up: e['bytesUp'], down: e['bytesDown'] })))}`,
  );
  for (const event of refused)
    assert.ok((event['bytesDown'] as number) > 0, "buildkitd's handshake bytes reached the client");

  await waitFor('scale back to 0 after the build', async () => (await env.replicas()).spec === 0, 60_000);
});
