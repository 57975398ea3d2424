// A rollout, eviction or kubectl delete of a gateway pod SIGTERMs it. With the default --shutdown-grace (1h)
// a build spliced through it keeps flowing past the old 30 s grace, the gateway leaves the Service at once
// (/readyz 503), keeps the builder marked busy, and exits a few seconds after the build's connection closes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

const busyLabel = 'buildkitd-autoscaler/busy';

test('a build runs on for longer than the old 30 s grace through a SIGTERMed gateway, which exits soon after it ends', async (t) => {
  const env = await setup(t);
  // SHUTDOWN_GRACE_PERIOD empty: the default, as shipped.
  const gateway = await env.startGateway({ SHUTDOWN_GRACE_PERIOD: '', SHUTDOWN_DELAY: '1s' });
  const busy = async () =>
    (await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace })).metadata?.labels?.[busyLabel];
  const build = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'd');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  await waitFor('buildkitd-0 marked busy', async () => (await busy()) === 'true', 30_000);

  const termAt = Date.now();
  gateway.process.kill('SIGTERM');
  const [started] = await gateway.waitForEvents('shutdown_started', (e) => e['event'] === 'shutdown_started');
  assert.equal(started?.['graceMs'], 3_600_000, 'the default grace is 1h');
  await waitFor('out of the Service', async () => (await gateway.readyz()).status === 503);
  while (Date.now() - termAt < 35_000) {
    assert.equal(
      Buffer.compare(await build.roundTrip(chunk), chunk),
      0,
      `round trip ${Math.round((Date.now() - termAt) / 1000)}s after SIGTERM`,
    );
    await sleep(1_000);
  }
  assert.equal(gateway.process.exitCode, null, 'still draining');
  assert.equal(await busy(), 'true', 'the draining gateway keeps its builder marked');

  build.socket.end();
  await build.closed;
  const closedAt = Date.now();
  const code = await gateway.stop();
  t.diagnostic(
    `exited ${Date.now() - closedAt}ms after the build's connection closed (${Date.now() - termAt}ms after SIGTERM)`,
  );
  assert.equal(code, 0);
  assert.ok(Date.now() - closedAt < 15_000, 'exits within seconds of the last close');
  const finished = gateway.events().find((e) => e['event'] === 'shutdown_finished');
  assert.equal(finished?.['closedByForce'], 0, 'no connection was cut');
  assert.equal(await busy(), undefined, 'a lone gateway takes its marks off before it exits');
});
