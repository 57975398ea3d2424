// Waking cannot work: the StatefulSet is missing, or the ServiceAccount may not scale it. Held clients
// fail at once with a stable code (not at the 5-minute deadline), and /readyz says why.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

async function expectFastFailure(
  gateway: Awaited<ReturnType<Awaited<ReturnType<typeof setup>>['startGateway']>>,
  code: string,
) {
  // The ready-wait timeout is 5m: a close long before it can only be the fast failure.
  const result = await echoExchange(gateway.proxyPort, 'build please');
  assert.equal(result.reply.length, 0);
  assert.ok(result.ms < 60_000, `closed after ${result.ms}ms`);
  await waitFor(
    `a log line with ${code}`,
    () => gateway.events().some((e) => e['code'] === code && (e['level'] === 'warn' || e['level'] === 'error')),
    10_000,
  );
  assert.ok((await gateway.metric('bka_errors_total', { code })) >= 1);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'scale_failed' }), 1);
  // A single failure is confirmed by a re-check before /readyz turns red (no flapping on a one-off 403).
  await waitFor(
    `/readyz 503 naming ${code}`,
    async () => {
      const readyz = await gateway.readyz();
      return readyz.status === 503 && readyz.body.checks.some((c) => !c.ok && c.reason?.startsWith(code));
    },
    30_000,
  );
}

/** /readyz keeps naming `code` well past the old 5 s hold: the kubelet (period 5 s, failureThreshold 2) must see it. */
async function expectStillUnready(
  gateway: Awaited<ReturnType<Awaited<ReturnType<typeof setup>>['startGateway']>>,
  code: string,
) {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const readyz = await gateway.readyz();
    assert.equal(readyz.status, 503, `/readyz turned ready while the failure lasts: ${JSON.stringify(readyz.body)}`);
    assert.ok(
      readyz.body.checks.some((c) => !c.ok && c.reason?.startsWith(code)),
      JSON.stringify(readyz.body),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

test('StatefulSet missing: BKA_STS_NOT_FOUND at once', async (t) => {
  const env = await setup(t, { buildkitd: false });
  const gateway = await env.startGateway({ READY_WAIT_TIMEOUT: '5m' });
  await waitFor('watches synced', () => gateway.events().filter((e) => e['event'] === 'watch_synced').length >= 2);
  await expectFastFailure(gateway, 'BKA_STS_NOT_FOUND');
});

test('ServiceAccount without statefulsets/scale: BKA_SCALE_FORBIDDEN at once', async (t) => {
  const env = await setup(t, { rbac: { withoutScale: true } });
  const gateway = await env.startGateway({ READY_WAIT_TIMEOUT: '5m' });
  await waitFor('gateway ready', async () => (await gateway.readyz()).status === 200);
  await expectFastFailure(gateway, 'BKA_SCALE_FORBIDDEN');
  await expectStillUnready(gateway, 'BKA_SCALE_FORBIDDEN');
  assert.equal((await env.replicas()).spec, 0);
});

for (const resource of ['endpointslices', 'statefulsets'] as const) {
  test(`ServiceAccount that may not watch ${resource}: a client is closed at once with BKA_WATCH_FORBIDDEN`, async (t) => {
    const env = await setup(t, { rbac: { withoutWatchOf: resource } });
    const gateway = await env.startGateway({ READY_WAIT_TIMEOUT: '5m' });
    // Connects at once: it is either held when the watch's 403 arrives, or refused because it already did.
    const result = await echoExchange(gateway.proxyPort, 'build please');
    assert.equal(result.reply.length, 0);
    assert.ok(result.ms < 60_000, `closed after ${result.ms}ms (READY_WAIT_TIMEOUT 5m)`);
    await waitFor(
      'the connection closed with BKA_WATCH_FORBIDDEN',
      () => gateway.events().some((e) => e['event'] === 'connection_closed' && e['code'] === 'BKA_WATCH_FORBIDDEN'),
      10_000,
    );
    assert.ok((await gateway.metric('bka_errors_total', { code: 'BKA_WATCH_FORBIDDEN' })) >= 1);
    const readyz = await gateway.readyz();
    assert.equal(readyz.status, 503);
    assert.ok(
      readyz.body.checks.some((c) => !c.ok && c.reason?.startsWith('BKA_WATCH_FORBIDDEN')),
      JSON.stringify(readyz.body),
    );
  });
}
