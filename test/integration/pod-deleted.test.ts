// The backend pod dies mid-transfer: that client's connection closes, counts return to 0, and the
// next client is served by a new pod.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoExchange, openEcho, setup, waitFor } from './harness.ts';

test('deleting the buildkitd pod mid-transfer closes that connection; the next client gets a new pod', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '30s' });
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'd');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  const oldPod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  const deleted = await env.cluster.kubectl(['-n', env.namespace, 'delete', 'pod', 'buildkitd-0', '--wait=false']);
  assert.equal(deleted.code, 0, deleted.stderr);
  await connection.closed;
  await waitFor('open connections back to 0', async () => (await gateway.metric('bka_connections_open')) === 0);

  const next = await echoExchange(gateway.proxyPort, 'after the crash');
  assert.equal(next.reply.toString(), 'after the crash');
  const newPod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  assert.notEqual(newPod.metadata?.uid, oldPod.metadata?.uid, 'served by a new pod');
});
