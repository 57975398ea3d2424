// The seed's E2E guide: StatefulSet at 0, connect, replicas become 1, bytes echo back, disconnect,
// replicas return to 0 after the idle timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

test('scale from zero on connect, echo, and back to zero after the idle timeout', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '3s' });
  assert.deepEqual(await env.replicas(), { spec: 0, ready: 0 });
  await waitFor('gateway ready', async () => (await gateway.readyz()).status === 200);

  const payload = Buffer.from('hello from the seed scenario\n'.repeat(1000));
  const result = await echoExchange(gateway.proxyPort, payload);
  assert.equal(result.error, undefined);
  assert.equal(Buffer.compare(result.reply, payload), 0, 'echoed bytes come back unchanged');
  assert.equal((await env.replicas()).spec, 1, 'woken to 1 replica');

  await waitFor('scale back to 0', async () => (await env.replicas()).spec === 0, 30_000);
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }), 1);
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'down', result: 'success' }), 1);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 1);
  assert.equal(await gateway.metric('bka_bytes_total', { direction: 'upstream' }), payload.length);
  assert.equal(await gateway.metric('bka_bytes_total', { direction: 'downstream' }), payload.length);
  assert.equal(await gateway.metric('bka_hold_duration_seconds_count'), 1);
  assert.equal(await gateway.metric('bka_connections_open'), 0);
  // `kubectl describe statefulset` tells who scaled it and why.
  const events = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'get',
    'events',
    '--field-selector',
    'involvedObject.kind=StatefulSet,involvedObject.name=buildkitd',
    '-o',
    'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
  ]);
  assert.deepEqual(
    events.stdout
      .split('\n')
      .filter((r) => r.startsWith('Scaled'))
      .sort(),
    ['ScaledDown', 'ScaledUp'],
  );
  // ...and which gateway replica decided.
  const messages = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'get',
    'events',
    '--field-selector',
    'involvedObject.kind=StatefulSet,involvedObject.name=buildkitd',
    '-o',
    'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
  ]);
  const scaled = messages.stdout.split('\n').filter((m) => m.startsWith('Scaled'));
  assert.equal(scaled.length, 2);
  for (const message of scaled) assert.match(message, /\(decided by gateway-0\)$/);
});

test('a gateway that starts while buildkitd runs keeps it up for the idle timeout, then scales it down', async (t) => {
  const env = await setup(t);
  await env.setReplicas(1);
  await waitFor('pod ready', async () => (await env.replicas()).ready === 1);
  const startedAt = Date.now();
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '4s' });
  // It knows nothing of the time before it started: the pod must look idle for a whole timeout from now.
  await waitFor('waiting for the idle timeout', () =>
    gateway.events().some((e) => e['event'] === 'scale_decision' && String(e['waiting']).includes('idle')),
  );
  // Served at once by the running pod: no hold, no scale write.
  const result = await echoExchange(gateway.proxyPort, 'rolling update');
  assert.equal(result.reply.toString(), 'rolling update');
  assert.equal(await gateway.metric('bka_hold_duration_seconds_count'), 0);
  assert.equal((await env.replicas()).spec, 1);
  await waitFor('scale to 0 after idle', async () => (await env.replicas()).spec === 0, 30_000);
  assert.ok(Date.now() - startedAt >= 3000, 'not scaled down at once');
});
