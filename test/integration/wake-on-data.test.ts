// Health checks, port scanners and `nc -z` open and close TCP connections without a byte. With
// --wake-on=data (the default) they wake no builder; a BuildKit client speaks first and is served as before.
// --wake-on=connect brings back the Go tool's behaviour, where every accepted connection wakes buildkitd.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { buildctl, setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

/** What `nc -z` does: connect, send nothing, close (FIN). */
async function bareConnect(port: number): Promise<void> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.end();
  await once(socket, 'close');
}

test('--wake-on=data: twenty bare connects and a silent one at zero wake nothing, each ends with its own outcome; then buildctl is served', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'real', terminationGraceSeconds: 10 } });
  const history = await env.watchReplicas();
  const gateway = await env.startGateway({ FIRST_BYTE_TIMEOUT: '2s', READY_WAIT_TIMEOUT: '3m' });

  const silent = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
  silent.on('error', () => undefined);
  let silentClosed = false;
  silent.once('close', () => (silentClosed = true));
  await Promise.all(Array.from({ length: 20 }, () => bareConnect(gateway.proxyPort)));
  await waitFor('the 20 bare connects counted', async () => (await gateway.metric('bka_connections_total')) >= 20);
  assert.equal(
    await gateway.metric('bka_connections_total', { outcome: 'closed_before_data' }),
    20,
    'each bare connect has its own outcome',
  );
  assert.equal(
    await gateway.metric('bka_scale_operations_total', { direction: 'up' }),
    0,
    'no scale-up for bare connects',
  );
  await waitFor('the gateway to close the silent connection', () => silentClosed, 30_000);
  await waitFor('all 21 connections counted', async () => (await gateway.metric('bka_connections_total')) === 21);
  assert.equal(
    await gateway.metric('bka_connections_total', { outcome: 'first_byte_timeout' }),
    1,
    'the silent one was closed at the first-byte timeout',
  );
  assert.equal(await gateway.metric('bka_errors_total', { code: 'BKA_FIRST_BYTE_TIMEOUT' }), 1);
  assert.equal(await gateway.metric('bka_errors_total', { code: 'BKA_PENDING_FULL' }), 0);
  // All 21 closing lines read: each connection's held line, had there been one, came before its closing line.
  await gateway.waitForEvents('connection_closed of the 21 connections', (e) => e['event'] === 'connection_closed', 21);
  const silentLine = gateway
    .events()
    .find((e) => e['event'] === 'connection_closed' && e['outcome'] === 'first_byte_timeout');
  assert.equal(silentLine?.['code'], 'BKA_FIRST_BYTE_TIMEOUT', 'the log line names the code');
  assert.ok(
    gateway
      .events()
      .filter((e) => e['outcome'] === 'closed_before_data')
      .every((e) => e['level'] === 'info'),
    'bare connects are logged at info',
  );
  assert.equal(gateway.events().filter((e) => e['event'] === 'connection_held').length, 0, 'none was held');
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up' }), 0, 'no scale-up');
  assert.equal((await env.replicas()).spec, 0);

  const clientStarted = Date.now();
  const result = await buildctl(
    ['--addr', `tcp://127.0.0.1:${gateway.proxyPort}`, 'debug', 'workers'],
    env.cluster.env(),
  );
  assert.equal(result.code, 0, result.output.slice(-2000));
  assert.match(result.output, /^ID\s+PLATFORMS/m, 'buildkitd answered through the gateway');
  t.diagnostic(`replica history: ${JSON.stringify(history.changes)}; buildctl started at ${clientStarted}`);
  const firstWake = history.changes.find((c) => c.spec > 0);
  assert.ok(firstWake && firstWake.at >= clientStarted, 'the StatefulSet left 0 only for the client that spoke');
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }), 1);
  assert.ok(
    (await gateway.metric('bka_connections_held')) === 0 &&
      (await gateway.metric('bka_hold_duration_seconds_count')) >= 1,
    'buildctl was held while buildkitd woke',
  );
});

test('--wake-on=connect: a bare connect at zero wakes buildkitd, as the Go tool did', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock' } });
  const gateway = await env.startGateway({ WAKE_ON: 'connect' });
  await Promise.all(Array.from({ length: 20 }, () => bareConnect(gateway.proxyPort)));
  await waitFor('buildkitd woken by bare connects', async () => (await env.replicas()).spec === 1);
  await waitFor('all 20 connections counted', async () => (await gateway.metric('bka_connections_total')) === 20);
  assert.equal(
    await gateway.metric('bka_connections_total', { outcome: 'closed_before_data' }),
    0,
    'no wake-on-data outcome in connect mode',
  );
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }), 1);
});
