// The overlap Kubernetes creates on every eviction, `kubectl delete pod` or rollout: the old gateway drains
// after SIGTERM with a build's connection open while a fresh one starts next to it. The fresh one must not
// scale buildkitd down under that connection (it used to, one idle timeout after it started).
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
  reportLeaseName,
  reportLeases,
  running,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

test('a replica draining after SIGTERM keeps its connection while a fresh replica starts; scale-down waits until it closes', async (t) => {
  const env = await setup(t);
  const old = await startReplica(env, 'gateway-old', { SHUTDOWN_GRACE_PERIOD: '300s' });
  await leaderAmong([old]);
  const connection = await openEcho(old.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'd');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  assert.equal((await env.replicas()).spec, 1);

  old.gateway.process.kill('SIGTERM');
  await waitFor('old replica not ready (draining)', async () => (await old.gateway.readyz()).status === 503);
  const fresh = await startReplica(env, 'gateway-new');
  await allReporting([fresh], 2);

  // Well past the idle timeout and the lease duration, from the fresh replica's start: the build goes on.
  const until = Date.now() + Math.max(5 * idleTimeoutMs, 2 * leaseDurationMs);
  for (let i = 0; Date.now() < until; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} while draining`);
    assert.equal((await env.replicas()).spec, 1, `still 1 replica at round trip ${i}`);
    await sleep(1_000);
  }
  await logsCaughtUp([fresh]);
  assert.deepEqual(scaleDowns(fresh), [], 'the fresh replica scaled nothing down');
  assert.ok(running(old), 'the old replica still drains');
  assert.ok(
    (await reportLeases(env)).includes(reportLeaseName(old.identity)),
    'the draining replica still publishes its report',
  );

  const closedAt = Date.now();
  connection.socket.end();
  assert.equal(await connection.closed, undefined, 'closed by the client, not cut');
  await waitFor('old replica exits after its last connection', () => !running(old), 30_000);
  assert.equal(old.gateway.process.exitCode, 0);
  await logsCaughtUp([old]);
  assert.ok(old.gateway.events().some((e) => e['event'] === 'shutdown_finished' && e['closedByForce'] === 0));
  assert.ok(
    !(await reportLeases(env)).includes(reportLeaseName(old.identity)),
    'the drained replica deleted its report Lease',
  );

  await waitFor('scaled to 0 once the connection closed', async () => (await env.replicas()).spec === 0, 60_000);
  // The log line follows the write: wait for it rather than race it.
  await waitFor('the scale-down logged', () => [old, fresh].some((replica) => scaleDowns(replica).length > 0));
  await logsCaughtUp([old, fresh]);
  const downs = [old, fresh].flatMap((replica) => scaleDowns(replica));
  assert.equal(downs.length, 1, 'exactly one scale-down');
  assert.equal(scaleDowns(fresh).length, 1, 'by the replica that leads now');
  const delay = loggedAt(downs[0]!) - closedAt;
  t.diagnostic(`scale-down delay after the last close (old replica draining out, fresh one leading): ${delay}ms`);
  // The old replica's report is gone by then, but the pod was busy until the close: a whole idle timeout still applies.
  assert.ok(
    delay >= idleTimeoutMs,
    `scaled down ${delay}ms after the last close, before the ${idleTimeoutMs}ms idle timeout`,
  );
});
