// SIGTERM, and the grace period ends with connections still open: each one is closed, and each still gets
// its access line (outcome closed_by_shutdown, code BKA_SHUTDOWN_CLOSED) before shutdown_finished, so
// the log accounts for every connection a user opened, including one held while buildkitd wakes.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setup, type Gateway } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

const shutdownEnv = { SHUTDOWN_GRACE_PERIOD: '1s', SHUTDOWN_DELAY: '0s' };

async function assertClosedByShutdown(gateway: Gateway, id: unknown): Promise<void> {
  // The process has exited; its last lines may still be in the pipe.
  await waitFor('shutdown_finished', () => gateway.events().some((e) => e['event'] === 'shutdown_finished'), 5_000);
  const events = gateway.events();
  const closed = events.filter((e) => e['event'] === 'connection_closed' && e['id'] === id);
  assert.equal(closed.length, 1, `one access line for connection ${String(id)}: ${JSON.stringify(closed)}`);
  assert.equal(closed[0]?.['outcome'], 'closed_by_shutdown');
  assert.equal(closed[0]?.['code'], 'BKA_SHUTDOWN_CLOSED');
  const finished = events.findIndex((e) => e['event'] === 'shutdown_finished');
  assert.ok(finished > events.indexOf(closed[0]), 'the access line comes before shutdown_finished');
  assert.equal(events[finished]?.['closedByForce'], 1);
}

test('a spliced connection still open when the grace period ends is closed and logged as closed_by_shutdown', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway(shutdownEnv);
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.from('still building');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  const routed = await waitFor('connection_routed', () =>
    gateway.events().find((e) => e['event'] === 'connection_routed'),
  );

  assert.equal(await gateway.stop('SIGTERM'), 0);
  await connection.closed;
  await assertClosedByShutdown(gateway, routed['id']);
});

test('a connection held while buildkitd wakes is closed at the end of the grace period and logged as closed_by_shutdown', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'never-ready' } });
  const gateway = await env.startGateway({ ...shutdownEnv, READY_WAIT_TIMEOUT: '5m' });
  const client = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
  const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  client.on('error', () => undefined);
  client.write('waiting for buildkitd');
  const held = await waitFor('connection_held', () => gateway.events().find((e) => e['event'] === 'connection_held'));

  assert.equal(await gateway.stop('SIGTERM'), 0);
  await clientClosed;
  await assertClosedByShutdown(gateway, held['id']);
});
