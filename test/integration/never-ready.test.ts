// buildkitd never becomes ready: every held client is closed at its own deadline, with the
// documented error code in the log and the metric naming the cause.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';

test('held clients are closed at the ready-wait deadline with BKA_READY_TIMEOUT', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'never-ready' } });
  const gateway = await env.startGateway({ READY_WAIT_TIMEOUT: '3s' });
  const results = await Promise.all([0, 1, 2].map(() => echoExchange(gateway.proxyPort, 'anyone?')));
  for (const result of results) {
    assert.equal(result.reply.length, 0, 'nothing was served');
    assert.ok(result.ms >= 2500, `closed after ${result.ms}ms, at the deadline and not before`);
  }
  assert.equal((await env.replicas()).spec, 1, 'the pod was asked for');
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'ready_timeout' }), 3);
  assert.equal(await gateway.metric('bka_errors_total', { code: 'BKA_READY_TIMEOUT' }), 3);
  const lines = await gateway.waitForEvents(
    'BKA_READY_TIMEOUT, one per client',
    (e) => e['code'] === 'BKA_READY_TIMEOUT',
    3,
  );
  assert.equal(lines.length, 3);
  assert.ok(lines.every((l) => l['level'] === 'warn'));
});
