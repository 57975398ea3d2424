// The API server goes away and comes back: open transfers are not affected, the gateway stays in the
// Service (its /readyz body names the failing watches), watches resume, and no scale-down is decided
// while they are down; it happens after recovery.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

test('kube-apiserver killed and restarted during a transfer and while idle', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '3s' });
  // Every watch the gateway runs (StatefulSet, EndpointSlices, Leases, busy-marked Pods, Nodes) has its own
  // bka_watch_up series; all of them must report up.
  const watchSeries = async () =>
    (await gateway.metrics()).split('\n').filter((line) => line.startsWith('bka_watch_up{'));
  await waitFor(
    'every watch up',
    async () => (await watchSeries()).length >= 3 && (await watchSeries()).every((line) => line.endsWith(' 1')),
  );
  const watches = (await watchSeries()).length;
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'a');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);

  // During a transfer.
  await env.cluster.signalComponent('kube-apiserver', 'SIGKILL');
  for (let i = 0; i < 10; i += 1) {
    assert.equal(
      Buffer.compare(await connection.roundTrip(chunk), chunk),
      0,
      `round trip ${i} with the API server down`,
    );
    await sleep(100);
  }
  await waitFor(
    'gateway notices the outage',
    async () => (await gateway.readyz()).body.checks.some((c) => c.reason?.startsWith('BKA_WATCH_FAILED')),
    60_000,
  );
  assert.equal(
    (await gateway.readyz()).status,
    200,
    'still ready: it can serve, and every replica sees the same outage',
  );
  await waitFor('every watch down in /metrics', async () => (await gateway.metric('bka_watch_up')) === 0, 60_000);
  await env.cluster.startComponent('kube-apiserver');
  await waitFor(
    'watches resume',
    async () =>
      (await gateway.readyz()).body.checks.every((c) => c.reason === undefined || !c.reason.startsWith('BKA_WATCH')),
    90_000,
  );
  await waitFor(
    'every watch up again in /metrics',
    async () => (await gateway.metric('bka_watch_up')) === watches,
    60_000,
  );
  for (const resource of ['statefulset/buildkitd', 'endpointslices/buildkitd-headless']) {
    assert.ok((await gateway.metric('bka_watch_restarts_total', { resource })) >= 1, `${resource} restart counted`);
  }
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  connection.socket.end();
  await connection.closed;

  // While idle: the idle timeout passes with the API server down; no decision until it is back.
  await env.cluster.signalComponent('kube-apiserver', 'SIGKILL');
  await waitFor(
    'scale-down held back on unsynced watches',
    () =>
      gateway
        .events()
        .some((e) => e['event'] === 'scale_decision' && String(e['waiting']).startsWith('watches not synced')),
    60_000,
  );
  await sleep(4000); // past the idle timeout, still down
  await gateway.logCaughtUp();
  assert.equal(gateway.events().filter((e) => e['event'] === 'scale' && e['direction'] === 'down').length, 0);
  await env.cluster.startComponent('kube-apiserver');
  await waitFor('scaled to 0 after recovery', async () => (await env.replicas()).spec === 0, 90_000);
  assert.ok(
    (
      await gateway.waitForEvents(
        'watch_failed with BKA_WATCH_FAILED',
        (e) => e['event'] === 'watch_failed' && e['code'] === 'BKA_WATCH_FAILED',
      )
    ).length > 0,
  );

  // And it still wakes afterwards. The gateway waits until the removed pod is gone before it wakes again
  // (so the StatefulSet controller cannot keep the fenced pod); after two API server restarts the
  // controller manager's own watches come back with their own backoff, which took over a minute here.
  await waitFor(
    'the removed pod gone',
    async () => (await env.core.listNamespacedPod({ namespace: env.namespace })).items.length === 0,
    180_000,
  );
  const after = await echoExchange(gateway.proxyPort, 'after recovery');
  assert.equal(after.reply.toString(), 'after recovery');
});
