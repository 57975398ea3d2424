// kube-apiserver is down for 30 s under two gateway replicas: open connections keep flowing on both, both
// stay in the Service (/readyz 200, the body names the failing watch), and neither scales down on what it
// last saw, even once idle past the timeout. After the restart they converge and scale down when idle.
// Neither steps back for its unwritten report: no replica can confirm to another that it still writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  eventsOf,
  idleTimeoutMs,
  leaderAmong,
  loggedAt,
  logsCaughtUp,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

const outageMs = 30_000;

test('API server down for 30 s with two replicas: connections flow, both stay ready, no scale-down until it is back', async (t) => {
  const env = await setup(t);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  await leaderAmong(replicas);
  const connections = await Promise.all(replicas.map((r) => openEcho(r.gateway.proxyPort)));
  const chunk = Buffer.alloc(16 * 1024, 'o');
  for (const connection of connections) assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  assert.equal((await env.replicas()).spec, 1);

  await env.cluster.signalComponent('kube-apiserver', 'SIGKILL');
  const downAt = Date.now();
  // Bytes flow on both for two thirds of the outage; the rest of it both are idle, longer than the idle timeout.
  const closeAt = downAt + outageMs - 3 * idleTimeoutMs;
  let namedFailingWatch = false;
  for (let i = 0; Date.now() < downAt + outageMs; i += 1) {
    if (Date.now() < closeAt) {
      for (const [n, connection] of connections.entries())
        assert.equal(
          Buffer.compare(await connection.roundTrip(chunk), chunk),
          0,
          `round trip ${i} on ${replicas[n]!.identity}`,
        );
    } else if (connections.some((c) => !c.socket.destroyed)) {
      for (const connection of connections) connection.socket.end();
      await Promise.all(connections.map((c) => c.closed));
    }
    for (const { identity, gateway } of replicas) {
      const readyz = await gateway.readyz();
      assert.equal(readyz.status, 200, `${identity} stays ready at ${i}: ${JSON.stringify(readyz.body)}`);
      if (readyz.body.checks.some((c) => c.name.startsWith('watch') && c.reason !== undefined))
        namedFailingWatch = true;
    }
    await sleep(1_000);
  }
  for (const replica of replicas) {
    const body = (await replica.gateway.readyz()).body;
    const failing = body.checks.filter((c) => c.name.startsWith('watch') && c.reason !== undefined);
    assert.ok(failing.length > 0, `${replica.identity}'s /readyz names the failing watches: ${JSON.stringify(body)}`);
    assert.equal(
      await replica.gateway.metric('bka_watch_up'),
      0,
      `${replica.identity} shows its watches down in /metrics`,
    );
    // Neither can write its report, so neither can confirm to the other that it does: both stay in the Service.
    const report = body.checks.find((c) => c.name === 'report');
    assert.equal(report?.ok, true, `${replica.identity} did not step back: ${JSON.stringify(body)}`);
    assert.match(
      report?.reason ?? '',
      /report Lease not written for .*staying in the Service/,
      `${replica.identity}'s /readyz says why it stays`,
    );
    assert.equal(await replica.gateway.metric('bka_stepped_back'), 0);
  }
  assert.ok(namedFailingWatch);
  await logsCaughtUp(replicas);
  for (const replica of replicas) {
    assert.deepEqual(scaleDowns(replica), [], `${replica.identity} scaled nothing down during the outage`);
    assert.deepEqual(
      eventsOf(replica, 'scale_down_proposed'),
      [],
      `${replica.identity} proposed nothing during the outage`,
    );
  }

  await env.cluster.startComponent('kube-apiserver');
  const upAt = Date.now();
  for (const { identity, gateway } of replicas) {
    await waitFor(
      `${identity}'s watches up again`,
      async () =>
        (await gateway.readyz()).body.checks.every((c) => !c.name.startsWith('watch') || c.reason === undefined),
      120_000,
    );
  }
  await allReporting(replicas, 2, 120_000);
  const leader = await leaderAmong(replicas, 120_000);
  await waitFor('scaled to 0 after recovery', async () => (await env.replicas()).spec === 0, 120_000);
  await waitFor('the scale-down logged', () => replicas.some((r) => scaleDowns(r).length > 0));
  await logsCaughtUp(replicas);
  const downs = replicas.flatMap((r) => scaleDowns(r).map((event) => ({ replica: r, event })));
  assert.equal(downs.length, 1, 'exactly one scale-down');
  assert.equal(downs[0]!.replica, leader, 'by the leader');
  assert.ok(loggedAt(downs[0]!.event) >= upAt, 'only after the API server was back');
  t.diagnostic(
    `scale-down ${loggedAt(downs[0]!.event) - upAt}ms after the API server restarted (idle since ${upAt - closeAt}ms before it)`,
  );
});
