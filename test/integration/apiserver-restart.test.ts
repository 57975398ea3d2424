// The API server goes away and comes back: open transfers are not affected, watches resume, and no
// scale-down is decided while they are down; it happens after recovery.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoExchange, openEcho, setup, sleep, waitFor } from './harness.ts';

test('kube-apiserver killed and restarted during a transfer and while idle', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '3s' });
  // Both watches (StatefulSet, EndpointSlices) report up; the sum over resources says how many.
  await waitFor('both watches up', async () => (await gateway.metric('bka_watch_up')) === 2);
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'a');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);

  // During a transfer.
  await env.cluster.signalComponent('kube-apiserver', 'SIGKILL');
  for (let i = 0; i < 10; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} with the API server down`);
    await sleep(100);
  }
  await waitFor('gateway notices the outage', async () => (await gateway.readyz()).status === 503, 60_000);
  await waitFor('both watches down in /metrics', async () => (await gateway.metric('bka_watch_up')) === 0, 60_000);
  await env.cluster.startComponent('kube-apiserver');
  await waitFor('watches resume', async () => (await gateway.readyz()).status === 200, 90_000);
  await waitFor('both watches up again in /metrics', async () => (await gateway.metric('bka_watch_up')) === 2, 60_000);
  for (const resource of ['statefulset/buildkitd', 'endpointslices/buildkitd-headless']) {
    assert.ok((await gateway.metric('bka_watch_restarts_total', { resource })) >= 1, `${resource} restart counted`);
  }
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  connection.socket.end();
  await connection.closed;

  // While idle: the idle timer fires with the API server down; no decision until it is back.
  await env.cluster.signalComponent('kube-apiserver', 'SIGKILL');
  await waitFor('scale-down skipped on unsynced watches', () =>
    gateway.events().some((e) => e['event'] === 'scale_skipped' && e['direction'] === 'down'), 60_000);
  await env.cluster.startComponent('kube-apiserver');
  await waitFor('scaled to 0 after recovery', async () => (await env.replicas()).spec === 0, 90_000);
  assert.ok(gateway.events().some((e) => e['event'] === 'watch_failed' && e['code'] === 'BKA_WATCH_FAILED'));

  // And it still wakes afterwards.
  const after = await echoExchange(gateway.proxyPort, 'after recovery');
  assert.equal(after.reply.toString(), 'after recovery');
});
