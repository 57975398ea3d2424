// Every gateway replica replaced at once (all pods deleted, a reinstall): a wake the old one accepted is
// still in force on the new one, which keeps the builder for the window instead of scaling it down after
// the idle timeout. The old replica drains properly, so its report Lease is gone before the new one starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  idleTimeoutMs,
  leaderAmong,
  reportLeases,
  scaleDowns,
  startReplica,
} from './gateway-replicas.ts';

test('a wake accepted by a replica stays in force after every replica is replaced at once', async (t) => {
  const env = await setup(t);
  const old = await startReplica(env, 'gateway-old');
  await allReporting([old], 1);
  const acceptedAt = Date.now();
  const accepted = await fetch(`http://127.0.0.1:${old.gateway.metricsPort}/wake?for=10m`, { method: 'POST' });
  assert.equal(accepted.status, 202);
  const { until } = (await accepted.json()) as { until: string };
  await waitFor('the builder woken', async () => (await env.replicas()).ready === 1);

  assert.equal(await old.gateway.stop('SIGTERM'), 0);
  assert.deepEqual(
    await reportLeases(env),
    [],
    'the drained replica deleted its report: nothing of it is left to adopt',
  );

  const fresh = await startReplica(env, 'gateway-new');
  await leaderAmong([fresh]);
  const status = await waitFor(
    'the new replica knows the wake',
    async () => {
      const body = (await (await fetch(`http://127.0.0.1:${fresh.gateway.metricsPort}/wake`)).json()) as {
        wake: { replicas: number; until: string } | null;
      };
      return body.wake ?? undefined;
    },
    20_000,
  );
  // The window left is counted from when the new replica first saw the wake Lease (no clocks compared): never shorter, later by at most that delay.
  const lateByMs = Date.parse(status.until) - Date.parse(until);
  assert.equal(status.replicas, 1);
  assert.ok(
    lateByMs >= 0 && lateByMs <= Date.now() - acceptedAt,
    `the window the old replica accepted, ending ${lateByMs} ms later`,
  );
  // Several idle timeouts with no connection anywhere: only the wake keeps the builder.
  const end = Date.now() + 4 * idleTimeoutMs;
  while (Date.now() < end) {
    assert.equal((await env.replicas()).spec, 1, 'the builder stays for the wake window');
    await sleep(500);
  }
  await fresh.gateway.logCaughtUp();
  assert.deepEqual(scaleDowns(fresh), []);
});
