// --idle-timeout and --max-report-staleness past a Node timer's reach (2^31-1 ms): the reconcile loop's
// recheck timer used to fire after 1 ms, again and again, with a TimeoutOverflowWarning.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

test('--idle-timeout 720h keeps buildkitd after the last close without a timer firing at once', async (t) => {
  const env = await setup(t);
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '720h', MAX_REPORT_STALENESS: '720h' });
  const { reply, error } = await echoExchange(gateway.proxyPort, 'one build');
  assert.equal(error, undefined);
  assert.equal(reply.toString(), 'one build');
  // The last close starts the 720 h countdown: its recheck timer is armed within milliseconds.
  const cpuBefore = await gateway.metric('bka_process_cpu_seconds_total');
  await sleep(2_000);
  await gateway.logCaughtUp();
  assert.doesNotMatch(gateway.logs(), /TimeoutOverflowWarning/);
  assert.equal((await env.replicas()).spec, 1, 'buildkitd stays for the idle timeout');
  const cpuSeconds = (await gateway.metric('bka_process_cpu_seconds_total')) - cpuBefore;
  t.diagnostic(`CPU over 2 s idle: ${cpuSeconds.toFixed(2)} s`);
  await waitFor('the gateway still answers', async () => (await gateway.readyz()).status === 200, 10_000);
});
