// A gateway replica frozen (SIGSTOP: a stalled node, a partition) while it splices a build: its report goes
// stale, and a stale report whose pod still exists blocks scale-down. After SIGCONT it reports again, the
// build's connection still echoes, and once it closes everything converges to 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  idleTimeoutMs,
  leaderAmong,
  leaseDurationMs,
  loggedAt,
  logsCaughtUp,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

test('a replica frozen with a connection blocks scale-down; after SIGCONT its connection echoes and scale-down follows the close', async (t) => {
  const env = await setup(t);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  const leader = await leaderAmong(replicas);
  const frozen = replicas.find((r) => r !== leader)!;
  const connection = await openEcho(frozen.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'f');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  assert.equal((await env.replicas()).spec, 1);

  frozen.gateway.process.kill('SIGSTOP');
  await waitFor(
    'the leader sees the frozen report as stale',
    async () => (await leader.gateway.metric('bka_gateway_stale_reports')) === 1,
    60_000,
  );
  // Well past the idle timeout and the lease duration: the frozen replica may still be splicing a build.
  const until = Date.now() + Math.max(5 * idleTimeoutMs, 2 * leaseDurationMs);
  while (Date.now() < until) {
    assert.equal((await env.replicas()).spec, 1, 'no scale-down while the replica is frozen');
    await sleep(1_000);
  }
  await logsCaughtUp([leader]);
  assert.deepEqual(scaleDowns(leader), []);
  assert.equal(await leader.gateway.metric('bka_leader'), 1);

  frozen.gateway.process.kill('SIGCONT');
  await waitFor(
    'the frozen replica reports again',
    async () => (await leader.gateway.metric('bka_gateway_stale_reports')) === 0,
    60_000,
  );
  for (let i = 0; i < 5; i += 1)
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} after SIGCONT`);
  assert.equal((await env.replicas()).spec, 1);

  const closedAt = Date.now();
  connection.socket.end();
  assert.equal(await connection.closed, undefined, 'closed by the client, not cut');
  await waitFor('scaled to 0 after the close', async () => (await env.replicas()).spec === 0, 60_000);
  const [down] = await waitFor('the scale-down logged', () => scaleDowns(leader).length > 0 && scaleDowns(leader));
  await logsCaughtUp([frozen]);
  assert.deepEqual(scaleDowns(frozen), [], 'only the leader scaled down');
  const delay = loggedAt(down!) - closedAt;
  t.diagnostic(`scale-down delay after the last close with 2 replicas (idle timeout ${idleTimeoutMs}ms): ${delay}ms`);
  assert.ok(delay >= idleTimeoutMs, `scaled down ${delay}ms after the last close, before the idle timeout`);
});
