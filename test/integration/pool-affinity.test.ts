// Cache-affine routing in a pool: with client-ip affinity the same client address reaches the same
// builder every time, and many addresses spread over the builders with none above the load bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup, type Gateway } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

/** The pods of the routed connections, once `count` routing lines are logged. */
const routedPods = async (gateway: Gateway, count: number) =>
  (await gateway.waitForEvents('connection_routed', (e) => e['event'] === 'connection_routed', count)).map(
    (e) => String(e['backend']).split(' ')[0],
  );

test('client-ip affinity: ten connections from one address land on one builder; twelve addresses spread within ceil(1.25 x average)', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock' } });
  const addresses = await env.clientAddresses(12);
  const gateway = await env.startGateway(
    { BUILDKITD_MIN_REPLICAS: '3', BUILDKITD_MAX_REPLICAS: '3', SCALE_DOWN_IDLE_TIMEOUT: '30s' },
    { listenOnAll: true },
  );
  await waitFor('three Ready builders (min replicas)', async () => (await env.replicas()).ready === 3);
  await waitFor('the gateway routes to all three', async () => (await gateway.metric('bka_ready_backends')) === 3);

  for (let i = 0; i < 10; i++) {
    const result = await echoExchange(gateway.proxyPort, `one client, connection ${i}`, addresses[0]);
    assert.equal(result.reply.toString(), `one client, connection ${i}`);
  }
  const sequential = await routedPods(gateway, 10);
  assert.equal(sequential.length, 10);
  assert.equal(
    new Set(sequential).size,
    1,
    `ten connections from ${addresses[0]} on one builder: ${sequential.join(', ')}`,
  );
  assert.equal(await gateway.metric('bka_affinity_total', { result: 'hit' }), 10);

  // Twelve long-lived clients, one per address, opened one after the other.
  const open = [];
  for (const address of addresses) {
    const connection = await openEcho(gateway.proxyPort, address);
    assert.equal((await connection.roundTrip(Buffer.from(address))).toString(), address);
    open.push(connection);
  }
  const loads = await Promise.all(
    [0, 1, 2].map((i) => gateway.metric('bka_pod_connections', { pod: `buildkitd-${i}` })),
  );
  const bound = Math.ceil((1.25 * 12) / 3);
  t.diagnostic(
    `loads over the builders: ${loads.join(', ')} (bound ${bound}); routed: ${(await routedPods(gateway, 22)).slice(10).join(', ')}`,
  );
  assert.equal(
    loads.reduce((a, b) => a + b, 0),
    12,
  );
  for (const [i, load] of loads.entries())
    assert.ok(load <= bound, `buildkitd-${i} carries ${load}, above ceil(1.25 x average) = ${bound}`);

  const hits = await gateway.metric('bka_affinity_total', { result: 'hit' });
  const misses = await gateway.metric('bka_affinity_total', { result: 'miss' });
  t.diagnostic(
    `affinity: ${hits} hits, ${misses} misses over ${hits + misses} connections; for the twelve addresses ${hits - 10} of ${hits + misses - 10} (${Math.round((100 * (hits - 10)) / (hits + misses - 10))} %)`,
  );
  assert.equal(hits + misses, 22);

  // Each address comes back to the builder it got (its own first choice, or the next one while that was full).
  const firstPods = (await routedPods(gateway, 22)).slice(10);
  for (const connection of open) connection.socket.end();
  await waitFor('the twelve closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  for (const [i, address] of addresses.entries()) {
    assert.equal((await echoExchange(gateway.proxyPort, 'again', address)).reply.toString(), 'again');
    const pod = (await routedPods(gateway, 23 + i))[22 + i];
    if (i === 0) assert.equal(pod, sequential[0], 'the first address still on its builder');
    t.diagnostic(`${address}: ${firstPods[i]} then ${pod}`);
  }

  // Nine at once from one address: its builder takes its share, the rest go to the next choices.
  const before = {
    hits: await gateway.metric('bka_affinity_total', { result: 'hit' }),
    misses: await gateway.metric('bka_affinity_total', { result: 'miss' }),
  };
  const crowd = [];
  for (let i = 0; i < 9; i++) {
    const connection = await openEcho(gateway.proxyPort, addresses[0]);
    assert.equal((await connection.roundTrip(Buffer.from(`crowd ${i}`))).toString(), `crowd ${i}`);
    crowd.push(connection);
  }
  const crowdLoads = await Promise.all(
    [0, 1, 2].map((i) => gateway.metric('bka_pod_connections', { pod: `buildkitd-${i}` })),
  );
  const crowdHits = (await gateway.metric('bka_affinity_total', { result: 'hit' })) - before.hits;
  const crowdMisses = (await gateway.metric('bka_affinity_total', { result: 'miss' })) - before.misses;
  t.diagnostic(`nine from ${addresses[0]}: loads ${crowdLoads.join(', ')}; ${crowdHits} hits, ${crowdMisses} misses`);
  for (const [i, load] of crowdLoads.entries())
    assert.ok(load <= Math.ceil((1.25 * 9) / 3), `buildkitd-${i} carries ${load}`);
  assert.ok(crowdMisses > 0, 'the full first choice passed clients on');
  for (const connection of crowd) connection.socket.end();
});
