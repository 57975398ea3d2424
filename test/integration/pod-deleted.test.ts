// The backend pod dies mid-transfer: that client's connection closes with BKA_BACKEND_LOST, counts
// return to 0, and the next client is served by a new pod.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ErrorCode } from '../../src/errors.ts';
import { ConnectionOutcome } from '../../src/events.ts';
import { setup } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Takes the pod's network away, as a node that dies or a partition does: the process kubelet joins each
 * pod to the bridge through a host-side veth named bkav<last octet of the pod IP>. Without this, the
 * dying process's FIN reaches the gateway first and the connection merely ends.
 */
async function silencePodNetwork(podIp: string): Promise<void> {
  await promisify(execFile)('ip', ['link', 'set', `bkav${podIp.split('.')[3]}`, 'down']);
}

test('deleting the buildkitd pod mid-transfer closes that connection with BKA_BACKEND_LOST; the next client gets a new pod', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '30s' });
  const connection = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'd');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  const oldPod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  await silencePodNetwork(oldPod.status?.podIP ?? '');
  const deleted = await env.cluster.kubectl(['-n', env.namespace, 'delete', 'pod', 'buildkitd-0', '--wait=false']);
  assert.equal(deleted.code, 0, deleted.stderr);
  await connection.closed;
  await waitFor('open connections back to 0', async () => (await gateway.metric('bka_connections_open')) === 0);
  // The only connection: no other closing line can follow this one.
  const closed = await gateway.waitForEvents(
    'connection_closed of the cut connection',
    (e) => e['event'] === 'connection_closed',
  );
  assert.deepEqual(
    closed.map((e) => [e['outcome'], e['code']]),
    [[ConnectionOutcome.backendError, ErrorCode.BackendLost]],
  );
  assert.equal(await gateway.metric('bka_errors_total', { code: ErrorCode.BackendLost }), 1);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: ConnectionOutcome.backendError }), 1);

  const next = await echoExchange(gateway.proxyPort, 'after the crash');
  assert.equal(next.reply.toString(), 'after the crash');
  const newPod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  assert.notEqual(newPod.metadata?.uid, oldPod.metadata?.uid, 'served by a new pod');
});
