// The leader's requests to the API server are held back (a congested path: its watches still deliver) right
// after it proposed removing the only builder. The follower acknowledges, the leader starts its commit, and
// then cannot renew: it steps down at its renew deadline, the follower takes over, withdraws the proposal for
// a client it holds, and routes that client to the builder. When the old leader's requests finally get
// through, its stale scale-down must not land: the connection keeps echoing, replicas never drop under it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Watch, type V1Lease } from '@kubernetes/client-node';
import { startApiServerProxy } from '../support/api-server-proxy.ts';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  eventsOf,
  idleTimeoutMs,
  leaderAmong,
  leaseDurationMs,
  logsCaughtUp,
  scaleDowns,
  startReplica,
  allReporting,
} from './gateway-replicas.ts';

const leaderLease = 'buildkitd-autoscaler';
const proposalAnnotation = 'buildkitd-autoscaler/scale-down';

test('a leader held back from the API server mid-proposal never cuts the connection a follower opened on the pod being proposed', async (t) => {
  const env = await setup(t);
  const history = await env.watchReplicas();
  // The leader's own kubeconfig: the same ServiceAccount, through the proxy (the serving cert names 127.0.0.1).
  const proxy = await startApiServerProxy(
    env.cluster,
    env.namespace,
    'buildkitd-autoscaler',
    join(env.artifacts, 'leader-kubeconfig.yaml'),
  );
  t.after(() => proxy.close());
  const { kubeconfig } = proxy;

  const leader = await startReplica(env, 'gateway-a', { KUBECONFIG_PATH: kubeconfig });
  await leaderAmong([leader]);
  const follower = await startReplica(env, 'gateway-b');
  await allReporting([leader, follower], 2);
  assert.equal(await leader.gateway.metric('bka_leader'), 1);

  // Hold the leader's requests back the moment its proposal shows in the API.
  let proposalId: string | undefined;
  const watch = await new Watch(env.cluster.kubeConfig()).watch(
    `/apis/coordination.k8s.io/v1/namespaces/${env.namespace}/leases`,
    { fieldSelector: `metadata.name=${leaderLease}` },
    (_type, lease: V1Lease) => {
      const proposal = lease.metadata?.annotations?.[proposalAnnotation];
      if (proposal && !proxy.holding && proposalId === undefined) {
        proxy.holdBack();
        proposalId = (JSON.parse(proposal) as { id: string }).id;
      }
    },
    () => undefined,
  );
  t.after(() => watch.abort());

  await env.setReplicas(1);
  await waitFor('buildkitd-0 ready', async () => (await env.replicas()).ready === 1, 60_000);
  await waitFor('the leader proposes removing buildkitd-0', () => proposalId !== undefined, 4 * idleTimeoutMs + 30_000);
  const heldAt = Date.now();
  await sleep(1_000);
  assert.equal((await env.replicas()).spec, 1, 'the hold came before the commit could land (precondition)');

  // The follower takes a client while the pod is proposed for removal.
  const connection = await openEcho(follower.gateway.proxyPort);
  const chunk = Buffer.alloc(16 * 1024, 's');
  assert.equal(
    Buffer.compare(await connection.roundTrip(chunk), chunk),
    0,
    'the follower serves it once it leads and withdrew the proposal',
  );
  const servedAt = Date.now();
  await waitFor(
    'the follower leads',
    async () => (await follower.gateway.metric('bka_leader')) === 1,
    4 * leaseDurationMs,
  );
  t.diagnostic(`held back ${servedAt - heldAt} ms before the follower served the client`);

  // The old leader's requests get through now, late.
  proxy.release();
  await waitFor(
    'the old leader reports again',
    async () => (await follower.gateway.metric('bka_gateway_stale_reports')) === 0,
    60_000,
  );
  const until = Date.now() + Math.max(3 * idleTimeoutMs, 2 * leaseDurationMs);
  for (let i = 0; Date.now() < until; i += 1) {
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0, `round trip ${i} after the release`);
    await sleep(500);
  }
  const underTheConnection = history.changes.filter((c) => c.at >= heldAt);
  assert.ok(
    underTheConnection.every((c) => c.spec >= 1),
    `replicas never dropped under the connection: ${JSON.stringify(history.changes)}`,
  );
  await logsCaughtUp([leader, follower]);
  assert.deepEqual(scaleDowns(leader), [], 'the stepped-down leader wrote no scale-down');
  assert.deepEqual(scaleDowns(follower), []);
  assert.ok(
    eventsOf(leader, 'leader_changed').some((e) => e['leading'] === false),
    'the held-back leader stepped down',
  );
  connection.socket.end();
  assert.equal(await connection.closed, undefined, 'closed by the client, not cut');
});
