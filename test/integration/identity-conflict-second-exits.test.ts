// Two gateway processes with one identity (a hard-coded POD_NAME, hostNetwork with the hostname default):
// started at the same moment, one exits with BKA_IDENTITY_CONFLICT and exit code 3 and the other serves and
// leads; a third joining later exits the same way. A connection through the survivor is never cut by a
// scale-down that the second process's silence could have caused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  idleTimeoutMs,
  leaderAmong,
  leaseDurationMs,
  logsCaughtUp,
  running,
  scaleDowns,
  startReplica,
  type Replica,
} from './gateway-replicas.ts';

const identity = 'gateway-twin';
const identityConflictExitCode = 3;

function refusedWithConflict(replica: Replica): boolean {
  return replica.gateway.events().some((e) => e['code'] === 'BKA_IDENTITY_CONFLICT' && e['level'] === 'fatal');
}

test('two processes with one identity started at once: one exits with BKA_IDENTITY_CONFLICT, the other serves; a third joining later exits too', async (t) => {
  const env = await setup(t);
  const history = await env.watchReplicas();
  const twins = await Promise.all([0, 1].map(() => startReplica(env, identity, {}, { mayExit: true })));
  // The second waits out one lease duration, sees the first renew, and gives way.
  await waitFor(
    'one of the two processes with one identity exits',
    () => twins.some((r) => !running(r)),
    3 * leaseDurationMs + 10_000,
  ).catch((error: unknown) => {
    throw new Error(`both processes with the identity ${identity} still run after ${3 * leaseDurationMs + 10_000} ms`, {
      cause: error,
    });
  });
  const [exited, survivor] = running(twins[0]!) ? [twins[1]!, twins[0]!] : [twins[0]!, twins[1]!];
  assert.equal(
    await exited.gateway.stop(),
    identityConflictExitCode,
    'the second exits with the identity-conflict code',
  );
  assert.ok(
    refusedWithConflict(exited),
    `its last line names BKA_IDENTITY_CONFLICT:\n${exited.gateway.logs().slice(-2000)}`,
  );
  assert.ok(running(survivor), 'the first keeps running');
  assert.equal(await (await leaderAmong([survivor])).gateway.metric('bka_leader'), 1, 'the survivor leads');
  assert.equal((await survivor.gateway.readyz()).status, 200);

  const connection = await openEcho(survivor.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 't');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
  const openedAt = Date.now();

  // A third process with the same identity joins while the build runs: it waits, sees renewals, exits.
  const late = await startReplica(env, identity, {}, { mayExit: true });
  await waitFor('the late joiner exits', () => !running(late), 3 * leaseDurationMs + 10_000);
  assert.equal(await late.gateway.stop(), identityConflictExitCode);
  assert.ok(
    refusedWithConflict(late),
    `the late joiner names BKA_IDENTITY_CONFLICT:\n${late.gateway.logs().slice(-2000)}`,
  );
  assert.ok(!late.gateway.logs().includes('proxy listening'), 'it never took a client');

  // Well past the idle timeout: the build through the survivor keeps flowing and its builder stays.
  const until = Date.now() + Math.max(4 * idleTimeoutMs, 2 * leaseDurationMs);
  for (let i = 0; Date.now() < until; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i}`);
    await sleep(500);
  }
  assert.ok(running(survivor));
  const underTheConnection = history.changes.filter((c) => c.at >= openedAt);
  assert.ok(
    underTheConnection.every((c) => c.spec >= 1),
    `replicas never dropped under the connection: ${JSON.stringify(history.changes)}`,
  );
  await logsCaughtUp([survivor]);
  assert.deepEqual(scaleDowns(survivor), []);
  connection.socket.end();
  assert.equal(await connection.closed, undefined, 'closed by the client, not cut');
});

test('a process whose report another one with its identity took over while it was frozen gives way: it exits 3 and never leads again', async (t) => {
  const env = await setup(t);
  const first = await startReplica(env, identity);
  await waitFor('the first leads', async () => (await first.gateway.metric('bka_leader')) === 1, 60_000);
  first.gateway.process.kill('SIGSTOP');
  // Nobody renews the first's Leases now: the second waits them out and takes both over.
  const second = await startReplica(env, identity, {}, { mayExit: true });
  assert.ok(
    running(second),
    `the second starts once the frozen one's report is a lease duration old:\n${second.gateway.logs().slice(-2000)}`,
  );
  await waitFor('the second leads', async () => (await second.gateway.metric('bka_leader')) === 1, 4 * leaseDurationMs);
  first.gateway.process.kill('SIGCONT');
  await waitFor('the first gives way and exits', () => !running(first), 60_000);
  assert.equal(await first.gateway.stop(), identityConflictExitCode);
  assert.ok(refusedWithConflict(first), `the first names BKA_IDENTITY_CONFLICT:\n${first.gateway.logs().slice(-2000)}`);
  const resumed = first.gateway.events().filter((e) => e['event'] === 'leader_changed' && e['leading'] === true);
  assert.equal(resumed.length, 1, 'the first led once, before it was frozen, never after');
  assert.equal(await second.gateway.metric('bka_leader'), 1, 'the second still leads');
  const connection = await openEcho(second.gateway.proxyPort);
  const chunk = Buffer.alloc(4 * 1024, 'g');
  assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, 'the second serves');
  connection.socket.end();
  await connection.closed;
});
