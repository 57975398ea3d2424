// Builders on a node being drained (cordoned, or tainted by Karpenter or the cluster autoscaler) take no
// new connections: the next client goes to a builder added on another node, the open one keeps echoing,
// so the draining builder goes idle and can be evicted. Without RBAC for nodes: one warning, routing as before.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { ErrorCode } from '../../src/errors.ts';
import { setup, type Env, type Gateway } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

/** The pod of the `count`th routed connection, once its line is logged. */
const routedPod = async (gateway: Gateway, count: number) =>
  String(
    (await gateway.waitForEvents('connection_routed', (e) => e['event'] === 'connection_routed', count, 90_000))[
      count - 1
    ]?.['backend'],
  ).split(' ')[0];

const nodeOf = async (env: Env, pod: string) =>
  (await env.core.readNamespacedPod({ name: pod, namespace: env.namespace })).spec?.nodeName;

async function echoes(client: Awaited<ReturnType<typeof openEcho>>): Promise<boolean> {
  const data = randomBytes(16 * 1024);
  return Buffer.compare(await client.roundTrip(data), data) === 0;
}

interface Disruption {
  name: string;
  apply: (node: string) => string[];
  undo: (node: string) => string[];
}

const cordon: Disruption = {
  name: 'cordoned (kubectl cordon, the first step of kubectl drain)',
  apply: (node) => ['cordon', node],
  undo: (node) => ['uncordon', node],
};
const disruptions: Disruption[] = [
  cordon,
  {
    name: 'tainted karpenter.sh/disrupted by Karpenter',
    apply: (node) => ['taint', 'node', node, 'karpenter.sh/disrupted:NoSchedule'],
    undo: (node) => ['taint', 'node', node, 'karpenter.sh/disrupted:NoSchedule-'],
  },
];

/** Disrupts the node now and undoes it when the test ends (the nodes are shared by every test). */
async function disrupt(t: TestContext, env: Env, node: string, disruption: Disruption): Promise<void> {
  t.after(() => env.cluster.kubectl(disruption.undo(node)));
  const result = await env.cluster.kubectl(disruption.apply(node));
  assert.equal(result.code, 0, result.stderr);
}

for (const disruption of disruptions) {
  test(`a builder on a node ${disruption.name} takes no new connection: the next goes to a builder added on the other node, the open one keeps echoing`, async (t) => {
    const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
    const [first, second] = env.cluster.nodes;
    assert.ok(first && second, 'the local cluster has two nodes');
    const gateway = await env.startGateway({ BUILDKITD_MAX_REPLICAS: '2', SCALE_DOWN_IDLE_TIMEOUT: '30s' });
    const building = await openEcho(gateway.proxyPort);
    assert.ok(await echoes(building));
    assert.equal(await routedPod(gateway, 1), 'buildkitd-0');
    assert.equal(await nodeOf(env, 'buildkitd-0'), first);

    await disrupt(t, env, first, disruption);
    await gateway.waitForEvents(
      'buildkitd-0 out of rotation',
      (e) => e['event'] === 'builders_draining' && String(e['pods']) === 'buildkitd-0',
    );

    const next = await openEcho(gateway.proxyPort);
    assert.ok(await echoes(next), 'the next client is served');
    assert.equal(await routedPod(gateway, 2), 'buildkitd-1', 'by a builder added for it');
    assert.equal(await nodeOf(env, 'buildkitd-1'), second, 'on the node that is not draining');
    assert.ok(await echoes(building), 'the build on the draining node goes on');
    assert.deepEqual(await env.replicas(), { spec: 2, ready: 2 });
    assert.deepEqual(
      await Promise.all([0, 1].map((i) => gateway.metric('bka_pod_connections', { pod: `buildkitd-${i}` }))),
      [1, 1],
    );
    building.socket.end();
    next.socket.end();
    await waitFor('both closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  });
}

test('without RBAC for nodes: one BKA_NODES_FORBIDDEN warning, and a cordoned builder takes connections as before', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 }, rbac: { withoutNodes: true } });
  const [first] = env.cluster.nodes;
  assert.ok(first);
  const gateway = await env.startGateway({ BUILDKITD_MAX_REPLICAS: '2' });
  const warning = await gateway.waitForEvents('the nodes warning', (e) => e['event'] === 'nodes_unwatched');
  assert.equal(warning[0]?.['code'], ErrorCode.NodesForbidden);
  const building = await openEcho(gateway.proxyPort);
  assert.ok(await echoes(building));
  await disrupt(t, env, first, cordon);
  const next = await openEcho(gateway.proxyPort);
  assert.ok(await echoes(next));
  assert.equal(await routedPod(gateway, 2), 'buildkitd-0', 'routing ignores the cordon');
  assert.equal((await env.replicas()).spec, 1, 'no builder added');
  await gateway.logCaughtUp();
  assert.equal(
    gateway.events().filter((e) => e['event'] === 'nodes_unwatched').length,
    1,
    'one warning, not one per retry',
  );
  assert.equal(gateway.events().filter((e) => e['event'] === 'watch_failed').length, 0, 'no watch failure lines');
  assert.equal(await gateway.metric('bka_errors_total', { code: ErrorCode.NodesForbidden }), 1);
  assert.equal((await gateway.readyz()).status, 200, 'ready: nodes are not needed to serve');
  building.socket.end();
  next.socket.end();
});
