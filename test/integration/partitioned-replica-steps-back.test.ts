// One of two gateway replicas loses its path to the API server (its proxy paused both ways) while it splices a
// build: it cannot write its report, the other one still writes its own, so it steps out of the Service
// (/readyz 503 naming BKA_PARTITIONED, bka_stepped_back 1) while the spliced connection keeps echoing and the
// other replica stays ready. With the path back it is ready again within seconds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startApiServerProxy } from '../support/api-server-proxy.ts';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { allReporting, leaseDurationMs, startReplica } from './gateway-replicas.ts';

test('a replica alone cut off from the API server steps back; its spliced connection keeps flowing; ready again once its writes succeed', async (t) => {
  const env = await setup(t);
  const proxy = await startApiServerProxy(env.cluster, env.namespace, 'buildkitd-autoscaler');
  t.after(() => proxy.close());
  const cut = await startReplica(env, 'gateway-cut', { KUBECONFIG_PATH: proxy.kubeconfig });
  const other = await startReplica(env, 'gateway-other');
  const replicas = [cut, other];
  await allReporting(replicas, 2);
  for (const { identity, gateway } of replicas)
    await waitFor(`${identity} ready`, async () => (await gateway.readyz()).status === 200);

  const connection = await openEcho(cut.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'p');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);

  proxy.pause();
  const cutAt = Date.now();
  // Asserted on every round, not inside waitFor (which would retry past a failed assertion).
  let stepBack: Awaited<ReturnType<typeof cut.gateway.readyz>> | undefined;
  for (let round = 0; !stepBack; round += 1) {
    assert.equal(
      Buffer.compare(await connection.roundTrip(chunk), chunk),
      0,
      `round trip ${round} through the cut-off replica`,
    );
    const readyz = await other.gateway.readyz();
    assert.equal(readyz.status, 200, `the other replica stays ready: ${JSON.stringify(readyz.body)}`);
    const own = await cut.gateway.readyz();
    if (own.status === 503) stepBack = own;
    else
      assert.ok(
        Date.now() - cutAt < 60_000,
        `the cut-off replica still ready 60 s after the cut: ${JSON.stringify(own.body)}`,
      );
    await sleep(500);
  }
  const report = stepBack.body.checks.find((check) => check.name === 'report');
  assert.equal(report?.ok, false, JSON.stringify(stepBack.body));
  assert.match(report?.reason ?? '', /BKA_PARTITIONED: .*gateway-other writes its own/);
  assert.deepEqual(
    stepBack.body.checks.filter((check) => !check.ok).map((check) => check.name),
    ['report'],
    'only the report check fails',
  );
  assert.equal(await cut.gateway.metric('bka_stepped_back'), 1);
  assert.equal(await cut.gateway.metric('bka_errors_total', { code: 'BKA_PARTITIONED' }), 1);
  assert.ok((await cut.gateway.metric('bka_report_write_age_seconds')) * 1000 >= leaseDurationMs);
  t.diagnostic(`stepped back ${Date.now() - cutAt}ms after the cut (lease duration ${leaseDurationMs}ms)`);
  for (let i = 0; i < 5; i += 1)
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} while stepped back`);
  assert.equal((await other.gateway.readyz()).status, 200);

  proxy.resume();
  const resumedAt = Date.now();
  await waitFor('the cut-off replica is ready again', async () => (await cut.gateway.readyz()).status === 200, 60_000);
  t.diagnostic(`ready again ${Date.now() - resumedAt}ms after the path came back`);
  // /readyz judges the write at once; the gauge follows with the next round's partition_recovered line.
  await cut.gateway.waitForEvents('back in the Service', (e) => e['event'] === 'partition_recovered');
  assert.equal(await cut.gateway.metric('bka_stepped_back'), 0);
  for (let i = 0; i < 3; i += 1)
    assert.equal(
      Buffer.compare(await connection.roundTrip(chunk), chunk),
      0,
      `round trip ${i} after the path came back`,
    );
  connection.socket.end();
  assert.equal(await connection.closed, undefined, 'closed by the client, never cut');
});
