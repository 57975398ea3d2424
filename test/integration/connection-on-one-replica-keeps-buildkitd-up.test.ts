// Three gateway replicas on one StatefulSet: a connection open on one of them keeps buildkitd up while the
// other two are idle far past the idle timeout; once it closes, the leader (and only the leader) scales down.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  idleTimeoutMs,
  leaderAmong,
  loggedAt,
  logsCaughtUp,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

test('a connection on one replica keeps buildkitd up while the other replicas are idle; the leader scales down after it closes', async (t) => {
  const env = await setup(t);
  const replicas = [
    await startReplica(env, 'gateway-a'),
    await startReplica(env, 'gateway-b'),
    await startReplica(env, 'gateway-c'),
  ];
  await allReporting(replicas, 3);
  const leader = await leaderAmong(replicas);
  // The connection goes through a follower: the leader knows of it only from that replica's report.
  const carrier = replicas.find((r) => r !== leader)!;
  t.diagnostic(`leader ${leader.identity}; connection on ${carrier.identity}`);

  const connection = await openEcho(carrier.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'k');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  assert.equal((await env.replicas()).spec, 1, 'woken to 1 replica');

  // Five idle timeouts with one slow trickle of bytes, idle on the two other replicas the whole time.
  const until = Date.now() + 5 * idleTimeoutMs;
  for (let i = 0; Date.now() < until; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i}`);
    assert.equal((await env.replicas()).spec, 1, `still 1 replica at round trip ${i}`);
    await sleep(1_000);
  }
  await logsCaughtUp(replicas);
  for (const replica of replicas) assert.deepEqual(scaleDowns(replica), [], `${replica.identity} scaled nothing down`);

  connection.socket.end();
  await connection.closed;
  const closedAt = Date.now();
  await waitFor('scaled to 0 after the last close', async () => (await env.replicas()).spec === 0, 60_000);
  // The log line follows the write: wait for it rather than race it.
  await waitFor('the scale-down logged', () => replicas.some((replica) => scaleDowns(replica).length > 0));
  await logsCaughtUp(replicas);
  const downs = replicas.flatMap((replica) => scaleDowns(replica).map((event) => ({ replica, event })));
  assert.equal(downs.length, 1, 'exactly one replica logged the scale-down');
  assert.equal(downs[0]?.replica, leader, 'the leader scaled down');
  assert.equal(await leader.gateway.metric('bka_scale_operations_total', { direction: 'down', result: 'success' }), 1);
  t.diagnostic(
    `scale-down delay after the last close (3 replicas, idle timeout ${idleTimeoutMs}ms): ${loggedAt(downs[0].event) - closedAt}ms`,
  );
});
