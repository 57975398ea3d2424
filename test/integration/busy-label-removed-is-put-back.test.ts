// The busy marks are level-triggered: a busy label that someone else's tooling (or a person) removes from a
// builder while its build runs comes back, so the budget refuses the eviction again; once the build ends
// the marks go as usual and nothing of ours is left.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyShippedBusyBudget, budgetCountsBusyBuilder, busyLabel, evict } from './busy-budget.ts';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';
import { leaderAmong, startReplica } from './gateway-replicas.ts';

test('a busy label removed while the build runs is put back by the leader; the eviction is refused again', async (t) => {
  const env = await setup(t);
  await applyShippedBusyBudget(env);
  const replica = await startReplica(env, 'gateway-a');
  await leaderAmong([replica]);
  const labels = async () =>
    (await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace })).metadata?.labels ?? {};

  const build = await openEcho(replica.gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'b');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  await waitFor('buildkitd-0 marked busy', async () => (await labels())[busyLabel] === 'true', 30_000);

  const removed = await env.cluster.kubectl(['-n', env.namespace, 'label', 'pod', 'buildkitd-0', `${busyLabel}-`]);
  assert.equal(removed.code, 0, removed.stderr);
  const removedAt = Date.now();
  await waitFor('the busy label back on buildkitd-0', async () => (await labels())[busyLabel] === 'true', 30_000, 20);
  t.diagnostic(`label back ${Date.now() - removedAt}ms after it was removed (polled every 20ms)`);

  await budgetCountsBusyBuilder(env);
  const refused = await evict(env, 'buildkitd-0');
  assert.equal(refused.status, 429, refused.message);
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0, 'the build keeps flowing');

  build.socket.end();
  await build.closed;
  const cleared = await waitFor(
    'marks removed once idle',
    async () => {
      const p = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
      return p.metadata?.labels?.[busyLabel] === undefined ? p : undefined;
    },
    30_000,
  );
  assert.equal(cleared.metadata?.annotations?.['buildkitd-autoscaler/marks'], undefined, 'no record of ours left');
  const passed = await evict(env, 'buildkitd-0');
  assert.equal(passed.status, 201, `the same eviction passes once idle: ${passed.message}`);
});
