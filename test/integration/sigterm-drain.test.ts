// SIGTERM during a transfer: the transfer completes, new connections are refused, the process exits 0.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { openEcho, setup, sleep, waitFor } from './harness.ts';

test('SIGTERM lets the open transfer finish, refuses new connections, exits 0', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SHUTDOWN_GRACE_PERIOD: '20s' });
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(32 * 1024, 's');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);

  gateway.process.kill('SIGTERM');
  await waitFor('not ready', async () => (await gateway.readyz()).status === 503);
  const refused = await new Promise<boolean>((resolve) => {
    const late = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
    late.on('error', () => resolve(true));
    late.on('connect', () => resolve(false));
  });
  assert.equal(refused, true, 'new connections refused');
  for (let i = 0; i < 10; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} after SIGTERM`);
    await sleep(100);
  }
  assert.equal(gateway.process.exitCode, null, 'still running while the transfer is open');
  connection.socket.end();
  const code = await gateway.stop('SIGTERM');
  assert.equal(code, 0);
  assert.equal((await env.replicas()).spec, 1, 'shutting down does not scale buildkitd down');
  assert.ok(gateway.events().some((e) => e['event'] === 'shutdown_finished' && e['closedByForce'] === 0));
});
