import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';

test('50 clients connecting at once while at zero are all held and all served; one scale-up', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', startDelayMs: 1500 } });
  const gateway = await env.startGateway();
  const clients = Array.from({ length: 50 }, (_, i) => echoExchange(gateway.proxyPort, `client ${i} `.repeat(100)));
  const results = await Promise.all(clients);
  results.forEach((r, i) => {
    assert.equal(r.error, undefined, `client ${i}`);
    assert.equal(r.reply.toString(), `client ${i} `.repeat(100), `client ${i} served`);
  });
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 50);
  assert.equal(await gateway.metric('bka_connections_total'), 50, 'no other outcome: none refused');
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' }), 1);
  assert.equal(await gateway.metric('bka_hold_duration_seconds_count'), 50);
  assert.equal((await env.replicas()).spec, 1);
});
