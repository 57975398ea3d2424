import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { KubeConfig, type V1Node, type V1Taint } from '@kubernetes/client-node';
import { FakeListWatchApi, watchErrors } from '../../test/support/fake-list-watch.ts';
import { ManualClock } from '../clock.ts';
import type { GatewayEvent } from '../events.ts';
import { ResilientInformer } from '../kube/informer.ts';
import { DrainingNodes, nodeIsDraining } from './draining-nodes.ts';

const node = (name: string, spec: { unschedulable?: boolean; taints?: V1Taint[] } = {}): V1Node => ({
  metadata: { name },
  spec,
});

const settle = async () => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

const cases: [string, V1Node, boolean][] = [
  ['a schedulable node without taints', node('a'), false],
  ['a cordoned node (kubectl cordon, the first step of kubectl drain)', node('a', { unschedulable: true }), true],
  [
    'the cordon taint',
    node('a', { taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] }),
    true,
  ],
  [
    "Karpenter's disruption taint",
    node('a', { taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] }),
    true,
  ],
  [
    "the cluster autoscaler's scale-down taint",
    node('a', { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1733526000', effect: 'NoSchedule' }] }),
    true,
  ],
  [
    'a drain taint as a mere preference is no drain',
    node('a', { taints: [{ key: 'karpenter.sh/disrupted', effect: 'PreferNoSchedule' }] }),
    false,
  ],
  [
    "the cluster autoscaler's candidate mark is no drain",
    node('a', { taints: [{ key: 'DeletionCandidateOfClusterAutoscaler', effect: 'PreferNoSchedule' }] }),
    false,
  ],
  [
    'an unrelated taint (dedicated builders)',
    node('a', { taints: [{ key: 'dedicated', value: 'buildkit', effect: 'NoSchedule' }] }),
    false,
  ],
];
for (const [name, n, draining] of cases)
  test(`draining: ${name} -> ${draining}`, () => assert.equal(nodeIsDraining(n), draining));

function setup(t: TestContext) {
  const clock = new ManualClock();
  const events: GatewayEvent[] = [];
  const api = new FakeListWatchApi<V1Node>();
  const nodes = new DrainingNodes(
    (emit) =>
      new ResilientInformer<V1Node>(
        {
          resource: 'nodes',
          kubeConfig: new KubeConfig(),
          path: '/api/v1/nodes',
          list: api.list,
          openListWatch: api.open,
          clock,
        },
        { emit },
      ),
    (e) => events.push(e),
  );
  t.after(() => nodes.stop());
  return { clock, events, api, nodes };
}

test('the names of cordoned and drain-tainted nodes, announced when they change', async (t) => {
  const { api, nodes } = setup(t);
  let changes = 0;
  nodes.onChange(() => (changes += 1));
  api.items = [
    node('a'),
    node('b', { unschedulable: true }),
    node('c', { taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] }),
  ];
  nodes.start();
  await settle();
  assert.deepEqual([...nodes.names()].sort(), ['b', 'c']);
  assert.equal(changes, 1);
});

test('without RBAC for nodes: one BKA_NODES_FORBIDDEN warning, no retries, no node counts as draining', async (t) => {
  const { clock, events, api, nodes } = setup(t);
  api.items = [node('b', { unschedulable: true })];
  api.watchError = watchErrors.forbidden();
  nodes.start();
  await settle();
  clock.advance(10 * 60_000);
  await settle();
  assert.deepEqual(
    events.filter((e) => e.kind === 'nodes_unwatched').map((e) => e.kind === 'nodes_unwatched' && e.code),
    ['BKA_NODES_FORBIDDEN'],
  );
  assert.equal(events.filter((e) => e.kind === 'watch_failed').length, 0, 'the forbidden retries are not logged');
  assert.equal(api.lists, 1, 'given up after the first refusal');
  assert.equal(nodes.names().size, 0);
});

test('other watch failures are logged as any watch failure and retried, keeping the last known nodes', async (t) => {
  const { clock, events, api, nodes } = setup(t);
  api.items = [node('b', { unschedulable: true })];
  nodes.start();
  await settle();
  api.current.fail(watchErrors.reset());
  assert.equal(events.filter((e) => e.kind === 'watch_failed').length, 1);
  assert.deepEqual([...nodes.names()], ['b']);
  clock.advance(60_000);
  await settle();
  assert.equal(api.lists, 2);
});
