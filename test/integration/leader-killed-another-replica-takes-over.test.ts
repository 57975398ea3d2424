// The leader gateway is SIGKILLed (a node dies, an OOM kill): another replica takes the leader Lease about a
// lease duration later and scales down after the idle timeout; connections opened on any replica meanwhile
// are held and served, never refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  eventsOf,
  leaderAmong,
  leaseDurationMs,
  loggedAt,
  logsCaughtUp,
  reportLeaseName,
  reportLeases,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

test('leader SIGKILLed: another replica takes over, connections meanwhile are served, scale-down follows', async (t) => {
  const env = await setup(t);
  // The killed process's report Lease stays: no pod owns it here (in a cluster the garbage collector deletes
  // it with the pod). It blocks scale-down until it is this stale, past its lease duration.
  const settings = { MAX_REPORT_STALENESS: '8s' };
  const replicas = [
    await startReplica(env, 'gateway-a', settings),
    await startReplica(env, 'gateway-b', settings),
    await startReplica(env, 'gateway-c', settings),
  ];
  await allReporting(replicas, 3);
  const leader = await leaderAmong(replicas);
  const followers = replicas.filter((r) => r !== leader);
  t.diagnostic(`leader ${leader.identity}`);

  const killedAt = Date.now();
  leader.gateway.process.kill('SIGKILL');
  // buildkitd is at 0: the first of these is held while a follower wakes it.
  const build = await openEcho(followers[0]!.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 'l');
  const exchanges: Array<Promise<{ reply: Buffer; error: Error | undefined }>> = [];
  const newLeading = () =>
    followers.flatMap((r) =>
      eventsOf(r, 'leader_changed')
        .filter((e) => e['leading'] === true && loggedAt(e) >= killedAt)
        .map((event) => ({ replica: r, event })),
    );
  for (let i = 0; newLeading().length === 0 || i < 10; i += 1) {
    exchanges.push(echoExchange(followers[i % 2]!.gateway.proxyPort, `during takeover ${i}`));
    assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0, `the open connection echoes (${i})`);
    if (Date.now() - killedAt > 10 * leaseDurationMs) assert.fail('no replica took the leader Lease');
    await sleep(300);
  }
  const results = await Promise.all(exchanges);
  results.forEach((result, i) => {
    assert.equal(result.error, undefined, `connection ${i} not refused`);
    assert.equal(result.reply.toString(), `during takeover ${i}`, `connection ${i} served in full`);
  });
  const held =
    (await followers[0]!.gateway.metric('bka_hold_duration_seconds_count')) +
    (await followers[1]!.gateway.metric('bka_hold_duration_seconds_count'));
  assert.ok(held >= 1, 'connections were held while buildkitd woke');
  await logsCaughtUp(followers);
  const [takeover] = newLeading();
  assert.equal(newLeading().length, 1, 'one replica took over');
  const newLeader = takeover!.replica;
  assert.equal(await leaderAmong(followers), newLeader);
  t.diagnostic(
    `takeover: ${newLeader.identity} leads ${loggedAt(takeover!.event) - killedAt}ms after the SIGKILL (lease duration ${leaseDurationMs}ms, retry period 1s); ${exchanges.length} connections served meanwhile`,
  );

  build.socket.end();
  await build.closed;
  // The dead replica's report is stale but its "pod" is still there as far as anyone knows: it blocks, then expires.
  assert.ok((await reportLeases(env)).includes(reportLeaseName(leader.identity)));
  await waitFor(
    'the dead report expired, with its code',
    () =>
      eventsOf(newLeader, 'report_expired').some(
        (e) => e['identity'] === leader.identity && e['code'] === 'BKA_REPORT_EXPIRED',
      ),
    60_000,
  );
  await waitFor('scaled to 0 by the new leader', async () => (await env.replicas()).spec === 0, 60_000);
  await waitFor('the scale-down logged', () => scaleDowns(newLeader).length === 1);
  await logsCaughtUp(followers);
  assert.deepEqual(followers.filter((r) => r !== newLeader).flatMap(scaleDowns), [], 'only the new leader scaled down');
  assert.ok((await newLeader.gateway.metric('bka_errors_total', { code: 'BKA_REPORT_EXPIRED' })) >= 1);
  assert.ok(
    eventsOf(newLeader, 'scale_down_blocked').some((e) => String(e['by']).includes(leader.identity)),
    'the stale report blocked first',
  );
});
