// SIGTERM during a transfer: not ready at once, still accepting for the shutdown delay (Services take a
// moment to stop sending clients), then new connections are refused; the transfer completes; exit 0.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

test('SIGTERM: not ready, still serving new clients for the shutdown delay, then refusing them; the open transfer finishes; exit 0', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SHUTDOWN_GRACE_PERIOD: '20s', SHUTDOWN_DELAY: '3s' });
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(32 * 1024, 's');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);

  gateway.process.kill('SIGTERM');
  await waitFor('not ready', async () => (await gateway.readyz()).status === 503);
  const late = await echoExchange(gateway.proxyPort, 'sent while the endpoint removal propagates');
  assert.equal(
    late.reply.toString(),
    'sent while the endpoint removal propagates',
    'a client arriving within the delay is served',
  );
  await waitFor('listener closed', () => gateway.events().some((e) => e['event'] === 'listener_closed'));
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
  // stop() returns once stdout is closed: every line written before the exit has been read.
  assert.ok(gateway.events().some((e) => e['event'] === 'shutdown_finished' && e['closedByForce'] === 0));
});
