// --max-connections-per-replica at --max-replicas: a client that finds every builder at the cap waits in
// arrival order and is served when a connection on the builder closes, or is closed at --ready-wait-timeout
// with BKA_CAPACITY_TIMEOUT; the clients on the builder are never touched. The cap counts every gateway
// replica's connections (their reports), so a second replica queues behind the first one's clients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allReporting, startReplica } from './gateway-replicas.ts';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

test('cap 2, max 1, three long clients: the third waits, is served once one of the first two closes, nothing is cut', async (t) => {
  const env = await setup(t);
  const history = await env.watchReplicas();
  const gateway = await env.startGateway({ BUILDKITD_MAX_CONNECTIONS_PER_REPLICA: '2', READY_WAIT_TIMEOUT: '60s' });

  const [first, second] = await Promise.all([openEcho(gateway.proxyPort), openEcho(gateway.proxyPort)]);
  assert.equal((await first.roundTrip(Buffer.from('first'))).toString(), 'first');
  assert.equal((await second.roundTrip(Buffer.from('second'))).toString(), 'second');
  const third = await openEcho(gateway.proxyPort);
  let thirdEchoed = false;
  const thirdReply = third.roundTrip(Buffer.from('third')).then((reply) => ((thirdEchoed = true), reply));

  await gateway.waitForEvents('the third client queued', (e) => e['event'] === 'connection_queued');
  assert.equal(await gateway.metric('bka_connections_queued'), 1);
  assert.equal(
    await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' }),
    2,
    'the builder carries two, not three',
  );
  // The two on the builder keep working while the third waits.
  assert.equal((await first.roundTrip(Buffer.from('first again'))).toString(), 'first again');
  assert.equal((await second.roundTrip(Buffer.from('second again'))).toString(), 'second again');
  assert.equal(thirdEchoed, false, 'the third reached no builder while it was full');

  first.socket.end();
  await first.closed;
  assert.equal((await thirdReply).toString(), 'third', 'served once the first closed');
  const [routed] = await gateway.waitForEvents(
    'the third routed',
    (e) => e['event'] === 'connection_routed' && typeof e['queuedMs'] === 'number',
  );
  t.diagnostic(`the third waited ${String(routed?.['queuedMs'])} ms for capacity`);
  assert.equal(await gateway.metric('bka_connections_queued'), 0);
  assert.equal(await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' }), 2);
  assert.equal((await second.roundTrip(Buffer.from('second still'))).toString(), 'second still');
  assert.equal((await third.roundTrip(Buffer.from('third still'))).toString(), 'third still');

  second.socket.end();
  third.socket.end();
  await waitFor('every client closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 3);
  assert.equal(
    await gateway.metric('bka_connections_total'),
    3,
    'no connection ended any other way: none cut or refused',
  );
  const closed = await gateway.waitForEvents('three access lines', (e) => e['event'] === 'connection_closed', 3);
  assert.equal(
    closed.filter((e) => typeof e['queuedMs'] === 'number').length,
    1,
    'the access line of the queued client says how long it waited',
  );
  assert.equal(history.maxSpec(), 1, 'never above --max-replicas');
});

test('cap 1 reached at max 1: a waiting client is closed at the ready-wait timeout with BKA_CAPACITY_TIMEOUT; the one on the builder is untouched', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ BUILDKITD_MAX_CONNECTIONS_PER_REPLICA: '1', READY_WAIT_TIMEOUT: '4s' });
  const served = await openEcho(gateway.proxyPort);
  assert.equal((await served.roundTrip(Buffer.from('served'))).toString(), 'served');

  const waiting = await openEcho(gateway.proxyPort);
  const refused = waiting.roundTrip(Buffer.from('waiting')).then(
    () => 'echoed',
    (error: Error) => error.message,
  );
  assert.match(await refused, /connection closed after 0 of 7 bytes/);
  const [closed] = await gateway.waitForEvents(
    'the capacity timeout logged',
    (e) => e['event'] === 'connection_closed' && e['code'] === 'BKA_CAPACITY_TIMEOUT',
  );
  assert.equal(closed?.['outcome'], 'capacity_timeout');
  assert.equal(typeof closed?.['queuedMs'], 'number', 'the access line says how long it waited for capacity');
  assert.equal(await gateway.metric('bka_errors_total', { code: 'BKA_CAPACITY_TIMEOUT' }), 1);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'capacity_timeout' }), 1);
  assert.equal(await gateway.metric('bka_connections_queued'), 0);

  assert.equal((await served.roundTrip(Buffer.from('still served'))).toString(), 'still served');
  assert.equal(
    await gateway.metric('bka_connections_total', { outcome: 'completed' }),
    0,
    'the served client was not closed',
  );
  served.socket.end();
  await waitFor(
    'the served client completed',
    async () => (await gateway.metric('bka_connections_total', { outcome: 'completed' })) === 1,
  );
});

test("the cap counts every gateway replica: a client on a second replica waits while the first replica's client fills the builder", async (t) => {
  const env = await setup(t);
  const settings = { BUILDKITD_MAX_CONNECTIONS_PER_REPLICA: '1', READY_WAIT_TIMEOUT: '60s' };
  const replicas = [await startReplica(env, 'gateway-a', settings), await startReplica(env, 'gateway-b', settings)];
  await allReporting(replicas, 2);
  const a = replicas[0]!.gateway;
  const b = replicas[1]!.gateway;

  const onA = await openEcho(a.proxyPort);
  assert.equal((await onA.roundTrip(Buffer.from('on a'))).toString(), 'on a');
  await waitFor(
    'b to count the connection on a',
    async () => (await b.metric('bka_pod_connections', { pod: 'buildkitd-0' })) === 1,
  );
  const onB = await openEcho(b.proxyPort);
  let bEchoed = false;
  const bReply = onB.roundTrip(Buffer.from('on b')).then((reply) => ((bEchoed = true), reply));
  await b.waitForEvents('the client on b queued', (e) => e['event'] === 'connection_queued');
  assert.equal(await b.metric('bka_connections_queued'), 1);
  assert.equal(bEchoed, false);

  onA.socket.end();
  await onA.closed;
  assert.equal((await bReply).toString(), 'on b', 'served once a reported its connection closed');
  onB.socket.end();
  await waitFor(
    "b's client completed",
    async () => (await b.metric('bka_connections_total', { outcome: 'completed' })) === 1,
  );
  assert.equal(await a.metric('bka_connections_total', { outcome: 'completed' }), 1);
});
