// Busy marks against the real API server and its disruption controller: while a connection is open on a
// builder, the gateway's leader labels and annotates the pod, so the shipped PodDisruptionBudget makes the
// Eviction API refuse it (what kubectl drain, the cluster autoscaler and Karpenter call); once the last
// connection closes the marks go and the same eviction passes. Marks someone else set are kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { applyShippedBusyBudget, budgetCountsBusyBuilder, busyLabel, evict } from './busy-budget.ts';
import { setup, type Env } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { allReporting, leaderAmong, startReplica } from './gateway-replicas.ts';

const doNotDisrupt = 'karpenter.sh/do-not-disrupt';
const safeToEvict = 'cluster-autoscaler.kubernetes.io/safe-to-evict';

async function pod(env: Env, name: string): Promise<V1Pod> {
  return env.core.readNamespacedPod({ name, namespace: env.namespace });
}

function marks(p: V1Pod) {
  return {
    busy: p.metadata?.labels?.[busyLabel],
    doNotDisrupt: p.metadata?.annotations?.[doNotDisrupt],
    safeToEvict: p.metadata?.annotations?.[safeToEvict],
  };
}

test('while a build runs on a builder its eviction is refused (429, the PodDisruptionBudget); after it ends the marks go and the eviction passes', async (t) => {
  const env = await setup(t);
  await applyShippedBusyBudget(env);
  // Someone else's tooling marks the builders too: safe-to-evict "true" and do-not-disrupt "true" of their own.
  const patched = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'patch',
    'statefulset',
    'buildkitd',
    '--type=merge',
    '-p',
    JSON.stringify({
      spec: {
        template: {
          metadata: { labels: { team: 'ci' }, annotations: { [safeToEvict]: 'true', [doNotDisrupt]: 'true' } },
        },
      },
    }),
  ]);
  assert.equal(patched.code, 0, patched.stderr);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  const leader = await leaderAmong(replicas);
  // Through a follower: the leader learns of the connection only from that replica's report.
  const follower = replicas.find((r) => r !== leader)!;

  const build = await openEcho(follower.gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'b');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  const splicedAt = Date.now();
  const marked = await waitFor(
    'buildkitd-0 marked busy',
    async () => {
      const p = await pod(env, 'buildkitd-0');
      return marks(p).busy === 'true' && marks(p).safeToEvict === 'false' ? p : undefined;
    },
    30_000,
    20,
  );
  t.diagnostic(`marks visible ${Date.now() - splicedAt}ms after the first round trip (polled every 20ms)`);
  assert.deepEqual(marks(marked), { busy: 'true', doNotDisrupt: 'true', safeToEvict: 'false' });

  await budgetCountsBusyBuilder(env);
  const refused = await evict(env, 'buildkitd-0');
  assert.equal(refused.status, 429, refused.message);
  assert.match(refused.message, /disruption budget/);
  assert.equal(
    Buffer.compare(await build.roundTrip(chunk), chunk),
    0,
    'the build keeps flowing after the refused eviction',
  );
  assert.equal((await pod(env, 'buildkitd-0')).metadata?.deletionTimestamp, undefined, 'the pod was not evicted');

  // More connections on the same busy builder write nothing more: one write to mark, one to unmark.
  const more = await Promise.all(Array.from({ length: 5 }, () => openEcho(follower.gateway.proxyPort)));
  for (const c of more) assert.equal(Buffer.compare(await c.roundTrip(chunk), chunk), 0);
  for (const c of more) c.socket.end();
  await Promise.all(more.map((c) => c.closed));
  await sleep(3_000);
  assert.equal(await leader.gateway.metric('bka_marks_total', { result: 'written' }), 1);
  assert.equal(await follower.gateway.metric('bka_marks_total', { result: 'written' }), 0, 'only the leader writes');
  assert.equal(await leader.gateway.metric('bka_busy_builders'), 1);

  build.socket.end();
  await build.closed;
  const closedAt = Date.now();
  const cleared = await waitFor(
    'marks removed',
    async () => {
      const p = await pod(env, 'buildkitd-0');
      return marks(p).busy === undefined ? p : undefined;
    },
    30_000,
    20,
  );
  t.diagnostic(`marks removed ${Date.now() - closedAt}ms after the last connection closed (polled every 20ms)`);
  assert.deepEqual(
    marks(cleared),
    { busy: undefined, doNotDisrupt: 'true', safeToEvict: 'true' },
    "the other tooling's annotations are as it left them",
  );
  assert.equal(cleared.metadata?.labels?.['team'], 'ci');
  assert.equal(cleared.metadata?.annotations?.['buildkitd-autoscaler/marks'], undefined, 'no record of ours left');
  assert.equal(await leader.gateway.metric('bka_marks_total', { result: 'removed' }), 1);

  const passed = await evict(env, 'buildkitd-0');
  assert.equal(passed.status, 201, `the same eviction passes once idle: ${passed.message}`);
});
