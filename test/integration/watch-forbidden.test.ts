// A ServiceAccount that may list but not watch: every list succeeds and every watch is refused. The
// gateway must back off between restarts instead of relisting every half second, and say so in /metrics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

test('list allowed, watch forbidden: restarts back off, bka_watch_up stays 0, BKA_WATCH_FORBIDDEN', async (t) => {
  const env = await setup(t, { rbac: { withoutWatch: true } });
  const gateway = await env.startGateway();
  const resource = 'statefulset/buildkitd';
  const failures = () => gateway.events().filter((e) => e['event'] === 'watch_failed' && e['resource'] === resource);
  await waitFor('five restarts of the StatefulSet watch', () => failures().length >= 5, 120_000);
  const delays = failures().map((e) => e['retryInMs'] as number);
  const lists = gateway.events().filter((e) => e['event'] === 'watch_synced' && e['resource'] === resource).length;
  t.diagnostic(`retry delays ${delays.join(', ')} ms; ${lists} lists`);
  // Factor 2 with ±20% jitter: each delay is longer than the one before.
  for (let i = 1; i < delays.length; i += 1)
    assert.ok(delays[i]! > delays[i - 1]!, `retry delays ${delays.join(', ')} ms`);
  assert.ok(failures().every((e) => e['code'] === 'BKA_WATCH_FORBIDDEN'));
  assert.equal(await gateway.metric('bka_watch_up', { resource }), 0);
  assert.ok((await gateway.metric('bka_watch_restarts_total', { resource })) >= 5);
  assert.ok((await gateway.metric('bka_errors_total', { code: 'BKA_WATCH_FORBIDDEN' })) >= 5);
});
