// Scale-down of a pool never cuts a build: with the highest ordinal busy last, the StatefulSet steps down
// one replica at a time, each step only after the pod it removes was idle for the idle timeout, and every
// client's bytes come back in full. Also measures the time to add a builder under load.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setup, type Gateway } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

const idleMs = 3000;

/** The pod of the `count`th routed connection, once its line is logged. */
async function routedPod(gateway: Gateway, count: number): Promise<string> {
  const routed = await gateway.waitForEvents('connection_routed', (e) => e['event'] === 'connection_routed', count);
  return String(routed[count - 1]?.['backend']).split(' ')[0] ?? '';
}

test('with the highest ordinal busy last, replicas step down one at a time, each after its pod was idle for the timeout; no client is cut', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
  const history = await env.watchReplicas();
  const gateway = await env.startGateway({
    BUILDKITD_MAX_REPLICAS: '3',
    BUILDKITD_CONNECTIONS_PER_REPLICA: '2',
    SCALE_DOWN_IDLE_TIMEOUT: `${idleMs / 1000}s`,
  });

  // Opened one after the other, so each lands where the balancer puts it with the previous ones counted.
  const clients: Array<{
    name: string;
    pod: string;
    connection: Awaited<ReturnType<typeof openEcho>>;
    sent: Buffer[];
  }> = [];
  const addBuilderMs: number[] = [];
  for (const name of ['A', 'B', 'C', 'D', 'E', 'F']) {
    const started = Date.now();
    const connection = await openEcho(gateway.proxyPort);
    const hello = Buffer.from(`${name} hello`);
    assert.equal(Buffer.compare(await connection.roundTrip(hello), hello), 0);
    const pod = await routedPod(gateway, clients.length + 1);
    // C and E find every builder full: they are held while the next one is added.
    if (name === 'C' || name === 'E') addBuilderMs.push(Date.now() - started);
    clients.push({ name, pod, connection, sent: [hello] });
  }
  assert.deepEqual(
    clients.map((c) => c.pod),
    ['buildkitd-0', 'buildkitd-0', 'buildkitd-1', 'buildkitd-1', 'buildkitd-2', 'buildkitd-2'],
  );
  t.diagnostic(
    `time to add a builder under load (client connect to first echo, held while the builder starts): ${addBuilderMs.join(' ms, ')} ms`,
  );

  const lastCloseOn: Record<string, number> = {};
  const finish = async (client: (typeof clients)[number]) => {
    const payload = randomBytes(256 * 1024);
    assert.equal(
      Buffer.compare(await client.connection.roundTrip(payload), payload),
      0,
      `${client.name} echoed in full`,
    );
    client.connection.socket.end();
    await client.connection.closed;
    lastCloseOn[client.pod] = Date.now();
  };
  for (const client of clients.slice(0, 4)) await finish(client);

  // Demand (2) now needs one builder: buildkitd-2 keeps its two clients, but a new client does not go there.
  const late = await echoExchange(gateway.proxyPort, 'late client');
  assert.equal(late.reply.toString(), 'late client');
  const latePod = await routedPod(gateway, 7);
  lastCloseOn[latePod] = Date.now();
  assert.notEqual(latePod, 'buildkitd-2', 'a builder above what demand needs takes no new connection');

  // Longer than the idle timeout with buildkitd-2 busy: nothing is removed (the StatefulSet cannot skip an ordinal).
  await waitFor('the scaler waiting on buildkitd-2', () =>
    gateway
      .events()
      .some((e) => e['event'] === 'scale_decision' && String(e['waiting']).includes('buildkitd-2 has connections')),
  );
  await sleep(2 * idleMs);
  assert.equal((await env.replicas()).spec, 3, 'no builder removed while the highest ordinal is busy');
  await finish(clients[4]!);
  await sleep(idleMs / 2);
  assert.equal((await env.replicas()).spec, 3, 'buildkitd-2 still has a client');
  await finish(clients[5]!);

  await waitFor(
    'the pool back to zero',
    async () => (await env.replicas()).spec === 0 && (await env.replicas()).ready === 0,
    120_000,
  );
  const specs = history.changes.map((c) => c.spec).filter((spec, i, all) => i === 0 || spec !== all[i - 1]);
  assert.deepEqual(specs.slice(specs.indexOf(3)), [3, 2, 1, 0], 'one builder at a time, never back up');
  for (const from of [3, 2, 1]) {
    const step = history.changes.find(
      (c) => c.spec === from - 1 && c.at > (history.changes.find((x) => x.spec === 3)?.at ?? 0),
    );
    const pod = `buildkitd-${from - 1}`;
    assert.ok(step, `step ${from} -> ${from - 1} observed`);
    assert.ok(
      step.at >= (lastCloseOn[pod] ?? 0) + idleMs,
      `${pod} removed ${step.at - (lastCloseOn[pod] ?? 0)} ms after its last close, not before the idle timeout`,
    );
  }
  // The watch may show the last write before the gateway has logged it.
  const downs = await waitFor('three scale-down writes logged', () => {
    const logged = gateway.events().filter((e) => e['event'] === 'scale' && e['direction'] === 'down');
    return logged.length >= 3 && logged;
  });
  t.diagnostic(
    `drain sequence (last close per pod, scale-down writes): ${JSON.stringify({ lastCloseOn: Object.fromEntries(Object.entries(lastCloseOn).map(([pod, at]) => [pod, new Date(at).toISOString()])), downs: downs.map((e) => ({ time: e['time'], from: e['from'], to: e['to'] })) })}`,
  );
  t.diagnostic(
    `replica history: ${JSON.stringify(history.changes.map((c) => ({ ...c, at: new Date(c.at).toISOString() })))}`,
  );
  assert.deepEqual(
    downs.map((e) => [e['from'], e['to']]),
    [
      [3, 2],
      [2, 1],
      [1, 0],
    ],
  );
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 7, 'every client completed');
  assert.equal(await gateway.metric('bka_connections_total'), 7, 'none refused or cut');
  assert.equal(await gateway.metric('bka_scale_operations_total', { direction: 'down', result: 'success' }), 3);
});
