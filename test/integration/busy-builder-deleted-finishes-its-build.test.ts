// A busy builder deleted outright (kubectl delete pod, a StatefulSet template change: no eviction, so no
// budget applies) runs the shipped preStop hook: it waits while the pod's own labels, read from a
// downward-API file, say busy. The build keeps flowing through the termination; once it ends the gateway
// removes the mark and the pod stops at once, long before its grace period.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadYaml, type V1StatefulSet } from '@kubernetes/client-node';
import { setup } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

const busyLabel = 'buildkitd-autoscaler/busy';
const graceSeconds = 120;

test('a busy builder deleted outright keeps serving its build until it ends, then stops at once', async (t) => {
  const env = await setup(t);
  // The shipped hook and the labels volume it reads, on the test's echo builder.
  const shipped = loadYaml<V1StatefulSet>(
    readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', 'buildkitd', 'statefulset.yaml'), 'utf8'),
  );
  const container = shipped.spec?.template.spec?.containers.find((c) => c.name === 'buildkitd');
  const podinfo = shipped.spec?.template.spec?.volumes?.find((v) => v.name === 'podinfo');
  const mount = container?.volumeMounts?.find((m) => m.name === 'podinfo');
  assert.ok(
    container?.lifecycle?.preStop && podinfo && mount,
    'the shipped StatefulSet has the preStop hook and its labels volume',
  );
  const patch = {
    spec: {
      template: {
        spec: {
          terminationGracePeriodSeconds: graceSeconds,
          containers: [{ name: 'buildkitd', lifecycle: container.lifecycle, volumeMounts: [mount] }],
          volumes: [podinfo],
        },
      },
    },
  };
  const patched = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'patch',
    'statefulset',
    'buildkitd',
    '--type=strategic',
    '-p',
    JSON.stringify(patch),
  ]);
  assert.equal(patched.code, 0, patched.stderr);

  const gateway = await env.startGateway();
  const readPod = () => env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  const build = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'p');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  const uid = await waitFor(
    'buildkitd-0 marked busy',
    async () => {
      const pod = await readPod();
      return pod.metadata?.labels?.[busyLabel] === 'true' ? pod.metadata.uid : undefined;
    },
    30_000,
  );

  const deleted = await env.cluster.kubectl(['-n', env.namespace, 'delete', 'pod', 'buildkitd-0', '--wait=false']);
  assert.equal(deleted.code, 0, deleted.stderr);
  await waitFor('buildkitd-0 terminating', async () => (await readPod()).metadata?.deletionTimestamp !== undefined);
  for (let i = 0; i < 10; i += 1) {
    assert.equal(
      Buffer.compare(await build.roundTrip(chunk), chunk),
      0,
      `round trip ${i} while the builder terminates`,
    );
    await sleep(1_000);
  }
  const terminating = await readPod();
  assert.equal(terminating.metadata?.uid, uid, 'the same pod still runs the build');

  build.socket.end();
  await build.closed;
  const closedAt = Date.now();
  await waitFor(
    'the deleted builder gone',
    async () => {
      try {
        return (await readPod()).metadata?.uid !== uid;
      } catch (error) {
        return (error as { code?: number }).code === 404;
      }
    },
    graceSeconds * 1000,
  );
  const tookMs = Date.now() - closedAt;
  t.diagnostic(`the builder stopped ${tookMs}ms after its build ended (grace ${graceSeconds}s)`);
  assert.ok(
    tookMs < (graceSeconds * 1000) / 2,
    `its preStop returned once idle, not at the end of the grace (${tookMs}ms)`,
  );
});
