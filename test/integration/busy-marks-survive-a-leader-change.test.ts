// The busy marks have one writer, the leader, and follow the shared reports, not the writer's memory: when
// the leader is SIGKILLed in the middle of a build on another replica, the marks stay on the builder while
// nobody leads and after the new leader takes over, and that new leader removes them when the build ends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { allReporting, leaderAmong, leaseDurationMs, startReplica } from './gateway-replicas.ts';

const busyLabel = 'buildkitd-autoscaler/busy';

test('marks stay on a busy builder through a leader SIGKILLed mid-build, and the new leader removes them when the build ends', async (t) => {
  const env = await setup(t);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  const first = await leaderAmong(replicas);
  const carrier = replicas.find((r) => r !== first)!;
  const busy = async () =>
    (await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace })).metadata?.labels?.[busyLabel];

  const build = await openEcho(carrier.gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'l');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  await waitFor('buildkitd-0 marked busy', async () => (await busy()) === 'true', 30_000);

  await first.gateway.stop('SIGKILL');
  // Two lease durations without a leader and then with a new one: the mark never goes while the build runs.
  const until = Date.now() + 2 * leaseDurationMs;
  while (Date.now() < until) {
    assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
    assert.equal(await busy(), 'true', 'still marked while the build runs');
    await sleep(500);
  }
  const second = await leaderAmong([carrier]);
  assert.equal(second, carrier);
  assert.equal(await busy(), 'true', 'the new leader keeps the mark of a build it carries');

  build.socket.end();
  await build.closed;
  const closedAt = Date.now();
  await waitFor('the new leader removes the marks', async () => (await busy()) === undefined, 30_000, 50);
  t.diagnostic(`marks removed ${Date.now() - closedAt}ms after the build ended, by the new leader`);
  assert.equal(await carrier.gateway.metric('bka_marks_total', { result: 'removed' }), 1);
});
