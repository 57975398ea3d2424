// A builder of a pool dies mid-transfer: only its clients are closed (BKA_BACKEND_LOST), the other
// builder's client keeps echoing, the next client is served, and the StatefulSet brings the pool back.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ErrorCode } from '../../src/errors.ts';
import { ConnectionOutcome } from '../../src/events.ts';
import { setup, type Gateway } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

/** The pod of the `count`th routed connection, once its line is logged. */
const routedPod = async (gateway: Gateway, count: number) =>
  String(
    (await gateway.waitForEvents('connection_routed', (e) => e['event'] === 'connection_routed', count))[count - 1]?.[
      'backend'
    ],
  ).split(' ')[0];

test('a builder deleted mid-transfer closes only its clients with BKA_BACKEND_LOST; the next client is served and the pool heals', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
  const gateway = await env.startGateway({
    BUILDKITD_MAX_REPLICAS: '2',
    BUILDKITD_CONNECTIONS_PER_REPLICA: '1',
    SCALE_DOWN_IDLE_TIMEOUT: '30s',
  });
  const chunk = () => randomBytes(64 * 1024);
  const survivor = await openEcho(gateway.proxyPort);
  let data = chunk();
  assert.equal(Buffer.compare(await survivor.roundTrip(data), data), 0);
  assert.equal(await routedPod(gateway, 1), 'buildkitd-0');
  const victim = await openEcho(gateway.proxyPort);
  data = chunk();
  assert.equal(Buffer.compare(await victim.roundTrip(data), data), 0);
  assert.equal(await routedPod(gateway, 2), 'buildkitd-1', 'the second client got the second builder');

  const lostPod = await env.core.readNamespacedPod({ name: 'buildkitd-1', namespace: env.namespace });
  // As a dying node does: the pod's network goes first, so no FIN reaches the gateway (see pod-deleted.test.ts).
  await promisify(execFile)('ip', ['link', 'set', `bkav${lostPod.status?.podIP?.split('.')[3]}`, 'down']);
  // Mid-transfer: bytes are on their way when the pod goes.
  victim.socket.write(chunk());
  const deleted = await env.cluster.kubectl(['-n', env.namespace, 'delete', 'pod', 'buildkitd-1', '--wait=false']);
  assert.equal(deleted.code, 0, deleted.stderr);
  await victim.closed;
  await waitFor('the lost client counted', async () => (await gateway.metric('bka_connections_open')) === 1);

  // The survivor echoes below, so no other closing line can follow this one.
  const closed = await gateway.waitForEvents(
    "connection_closed of the lost builder's client",
    (e) => e['event'] === 'connection_closed',
  );
  assert.deepEqual(
    closed.map((e) => [e['outcome'], e['code']]),
    [[ConnectionOutcome.backendError, ErrorCode.BackendLost]],
    "only the lost builder's client was closed",
  );
  assert.equal(await gateway.metric('bka_errors_total', { code: ErrorCode.BackendLost }), 1);
  data = chunk();
  assert.equal(Buffer.compare(await survivor.roundTrip(data), data), 0, "the other builder's client still echoes");

  const next = await openEcho(gateway.proxyPort);
  data = chunk();
  assert.equal(Buffer.compare(await next.roundTrip(data), data), 0, 'the next client is served');
  await waitFor('two Ready builders again', async () => (await env.replicas()).ready === 2);
  const healed = await env.core.readNamespacedPod({ name: 'buildkitd-1', namespace: env.namespace });
  assert.notEqual(healed.metadata?.uid, lostPod.metadata?.uid, 'buildkitd-1 is a new pod');
  t.diagnostic(`the next client went to ${await routedPod(gateway, 3)}`);
  assert.deepEqual(
    await Promise.all([0, 1].map((i) => gateway.metric('bka_pod_connections', { pod: `buildkitd-${i}` }))),
    [1, 1],
    'one client on each builder',
  );
  survivor.socket.end();
  next.socket.end();
  await waitFor('both closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: ConnectionOutcome.completed }), 2);
});
