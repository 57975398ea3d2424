// A pool of builders: six long-lived clients at zero with 2 connections per replica and a maximum of 3
// get three Ready builders carrying two connections each; none is refused and the StatefulSet is never
// asked for more than its maximum.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

test('six clients at zero with max 3 and 2 per replica: three Ready builders with two connections each, none refused, never above 3', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', startDelayMs: 1000 } });
  const history = await env.watchReplicas();
  const gateway = await env.startGateway({
    BUILDKITD_MAX_REPLICAS: '3',
    BUILDKITD_CONNECTIONS_PER_REPLICA: '2',
    SCALE_DOWN_IDLE_TIMEOUT: '30s',
  });

  const clients = await Promise.all(Array.from({ length: 6 }, () => openEcho(gateway.proxyPort)));
  const echoed = await Promise.all(
    clients.map((client, i) => client.roundTrip(Buffer.from(`client ${i} `.repeat(1000)))),
  );
  echoed.forEach((reply, i) => assert.equal(reply.toString(), `client ${i} `.repeat(1000), `client ${i} echoed`));

  await waitFor('three Ready builders', async () => (await env.replicas()).ready === 3);
  const perPod = await Promise.all(
    [0, 1, 2].map((i) => gateway.metric('bka_pod_connections', { pod: `buildkitd-${i}` })),
  );
  assert.deepEqual(perPod, [2, 2, 2], 'two connections on each builder');
  const routed = (
    await gateway.waitForEvents('connection_routed of the six clients', (e) => e['event'] === 'connection_routed', 6)
  ).map((e) => String(e['backend']).split(' ')[0]);
  assert.deepEqual([...routed].sort(), [
    'buildkitd-0',
    'buildkitd-0',
    'buildkitd-1',
    'buildkitd-1',
    'buildkitd-2',
    'buildkitd-2',
  ]);
  assert.equal(await gateway.metric('bka_connections_open'), 6);
  assert.equal(await gateway.metric('bka_connections_total'), 0, 'no connection ended: none refused or cut');
  // A refusal is logged at accept, before any of these six were routed (a builder started 1 s later): the log has caught up past it.
  assert.equal(gateway.events().filter((e) => e['event'] === 'connection_rejected').length, 0);
  assert.equal(await gateway.metric('bka_desired_replicas'), 3);

  // Every client still echoes after the pool settled.
  for (const [i, client] of clients.entries())
    assert.equal((await client.roundTrip(Buffer.from(`again ${i}`))).toString(), `again ${i}`);
  t.diagnostic(`replica history: ${JSON.stringify(history.changes)}`);
  assert.equal(history.maxSpec(), 3, 'the StatefulSet never went above 3');
  for (const client of clients) client.socket.end();
  await waitFor('every client closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 6);
});
