// Without the right to patch pods (an older Role, a restrictive policy) the busy marks cannot be written:
// the gateway says so with a stable code and a metric, and builds flow exactly as before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';

test('without RBAC to patch pods a build still flows, and the gateway logs BKA_MARK_FAILED and counts it', async (t) => {
  const env = await setup(t, { rbac: { withoutPodPatch: true } });
  const gateway = await env.startGateway();
  const build = await openEcho(gateway.proxyPort);
  const chunk = Buffer.alloc(8 * 1024, 'r');
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0);
  const [failed] = await gateway.waitForEvents('mark_failed', (e) => e['event'] === 'mark_failed', 1, 30_000);
  assert.equal(failed?.['code'], 'BKA_MARK_FAILED');
  assert.equal(failed?.['status'], 403);
  assert.equal(failed?.['pod'], 'buildkitd-0');
  assert.ok((await gateway.metric('bka_marks_total', { result: 'failed' })) >= 1);
  assert.ok((await gateway.metric('bka_errors_total', { code: 'BKA_MARK_FAILED' })) >= 1);
  assert.equal(Buffer.compare(await build.roundTrip(chunk), chunk), 0, 'the build flows on');
  const pod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  assert.equal(pod.metadata?.labels?.['buildkitd-autoscaler/busy'], undefined, 'nothing was written');
  build.socket.end();
  await build.closed;
});
