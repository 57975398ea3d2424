// A connection arriving just as the idle timer fires must never be cut: it either cancels the
// scale-down or is held until a fresh pod serves it. Jittered around the timer, many times.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoExchange, setup, sleep, waitFor } from './harness.ts';

test('connections racing the idle timer are always served in full', async (t) => {
  const env = await setup(t);
  const idleMs = 1000;
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: `${idleMs}ms` });
  const rounds = Number(process.env['BKA_IDLE_RACE_ROUNDS'] ?? 15);
  const payload = Buffer.alloc(64 * 1024, 'r');
  for (let round = 0; round < rounds; round += 1) {
    const first = await echoExchange(gateway.proxyPort, payload);
    assert.equal(Buffer.compare(first.reply, payload), 0, `round ${round}: first connection`);
    // The timer starts when that connection closes; aim just before, at, and just after it fires.
    await sleep(idleMs - 150 + Math.floor(Math.random() * 300));
    const racer = await echoExchange(gateway.proxyPort, payload);
    assert.equal(racer.error, undefined, `round ${round}: racing connection errored`);
    assert.equal(Buffer.compare(racer.reply, payload), 0, `round ${round}: racing connection was cut after ${racer.reply.length} bytes`);
  }
  const downs = await gateway.metric('bka_scale_operations_total', { direction: 'down', result: 'success' });
  t.diagnostic(`${rounds} rounds: ${downs} scale-downs landed, ${await gateway.metric('bka_scale_operations_total', { direction: 'up', result: 'success' })} wake-ups`);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), rounds * 2);
  assert.equal(await gateway.metric('bka_connections_total'), rounds * 2, 'no connection ended any other way');
  await waitFor('final scale-down', async () => (await env.replicas()).spec === 0, 30_000);
});
