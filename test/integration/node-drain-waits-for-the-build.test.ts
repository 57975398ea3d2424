// kubectl drain of the node a build runs on: the busy builder's eviction is refused (PodDisruptionBudget
// buildkitd-busy) while the build goes on, new builds during the drain land on a builder on the other
// node, and once the build ends the drain completes and the builder comes back on the other node.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadYaml, dumpYaml } from '@kubernetes/client-node';
import { setup, type Env, type Gateway } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

const routedPod = async (gateway: Gateway, count: number) =>
  String(
    (await gateway.waitForEvents('connection_routed', (e) => e['event'] === 'connection_routed', count, 90_000))[
      count - 1
    ]?.['backend'],
  ).split(' ')[0];

async function echoes(client: Awaited<ReturnType<typeof openEcho>>): Promise<boolean> {
  const data = randomBytes(16 * 1024);
  return Buffer.compare(await client.roundTrip(data), data) === 0;
}

const pod = (env: Env, name: string) => env.core.readNamespacedPod({ name, namespace: env.namespace });

/** The shipped builder labels on the test's StatefulSet, and the shipped busy budget in the test's namespace. */
async function shipBusyBudget(env: Env): Promise<void> {
  const labels = { 'app.kubernetes.io/name': 'buildkitd', 'app.kubernetes.io/component': 'buildkitd' };
  const patched = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'patch',
    'statefulset',
    'buildkitd',
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { template: { metadata: { labels } } } }),
  ]);
  assert.equal(patched.code, 0, patched.stderr);
  const pdb = loadYaml<{ metadata: { namespace?: string } }>(
    readFileSync(join(REPO_ROOT, 'deploy/kubernetes/buildkitd/poddisruptionbudget-busy.yaml'), 'utf8'),
  );
  pdb.metadata.namespace = env.namespace;
  const applied = await env.cluster.kubectl(['-n', env.namespace, 'apply', '-f', '-'], { input: dumpYaml(pdb) });
  assert.equal(applied.code, 0, applied.stderr);
}

test('kubectl drain during a build: eviction refused until the build ends, new builds land on the other node, then the drain completes', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock', terminationGraceSeconds: 1 } });
  const [first, second] = env.cluster.nodes;
  assert.ok(first && second, 'the local cluster has two nodes');
  await shipBusyBudget(env);
  const gateway = await env.startGateway({ BUILDKITD_MAX_REPLICAS: '2', SCALE_DOWN_IDLE_TIMEOUT: '60s' });

  const build = await openEcho(gateway.proxyPort);
  assert.ok(await echoes(build));
  assert.equal(await routedPod(gateway, 1), 'buildkitd-0');
  const builder = await pod(env, 'buildkitd-0');
  assert.equal(builder.spec?.nodeName, first);
  await waitFor(
    'buildkitd-0 marked busy',
    async () => (await pod(env, 'buildkitd-0')).metadata?.labels?.['buildkitd-autoscaler/busy'] === 'true',
    30_000,
  );

  t.after(() => env.cluster.kubectl(['uncordon', first]));
  const startedAt = Date.now();
  const drain = env.cluster.kubectl(
    ['drain', first, '--pod-selector=app=buildkitd', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=180s'],
    { timeoutMs: 200_000 },
  );
  await gateway.waitForEvents(
    'buildkitd-0 out of rotation',
    (e) => e['event'] === 'builders_draining' && String(e['pods']) === 'buildkitd-0',
    1,
    30_000,
  );

  const during = await openEcho(gateway.proxyPort);
  assert.ok(await echoes(during), 'a new build during the drain is served');
  assert.equal(await routedPod(gateway, 2), 'buildkitd-1');
  assert.equal((await pod(env, 'buildkitd-1')).spec?.nodeName, second, 'on the node that is not being drained');
  assert.ok(await echoes(build), 'the build on the drained node goes on');
  assert.equal((await pod(env, 'buildkitd-0')).metadata?.uid, builder.metadata?.uid, 'not evicted while busy');

  build.socket.end();
  const drained = await drain;
  t.diagnostic(`drain finished ${Math.round((Date.now() - startedAt) / 1000)}s after it started`);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(
    drained.stderr,
    /Cannot evict pod as it would violate the pod's disruption budget/,
    'evictions were refused while the build ran',
  );
  assert.match(drained.stdout, /pod\/buildkitd-0 evicted/);
  assert.match(drained.stdout, new RegExp(`node/${first} drained`));
  const back = await waitFor(
    'buildkitd-0 back and Ready on the other node',
    async () => {
      const p = await pod(env, 'buildkitd-0');
      return (
        p.metadata?.uid !== builder.metadata?.uid &&
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
        p
      );
    },
    60_000,
  );
  assert.equal(back.spec?.nodeName, second);
  assert.ok(await echoes(during), 'the build that started during the drain is untouched');
  during.socket.end();
  await waitFor('both closed', async () => (await gateway.metric('bka_connections_open')) === 0);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), 2, 'no build was cut');
});
