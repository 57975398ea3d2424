// Pre-wake: POST /wake on the ops port brings a builder up with no client, keeps it for the window even on
// a replica that is not the leader, then the ordinary idle rules take it down. The CLI's --wait returns once
// a pod accepts connections.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { setup } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { echoExchange } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  leaderAmong,
  loggedAt,
  logsCaughtUp,
  reportLeaseName,
  reportLeases,
  scaleDowns,
  startReplica,
  type Replica,
} from './gateway-replicas.ts';

async function wakeCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Only the client's own environment: the CLI needs no Kubernetes credentials.
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'main.js'), 'wake', ...args], {
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

test('/wake?for=20s at zero brings a builder up with no client, keeps it 20 s though the leader is another replica, then it idles down', async (t) => {
  const env = await setup(t);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  const leader = await leaderAmong(replicas);
  // The wake goes to the follower: the leader learns of it only from that replica's report.
  const follower = replicas.find((r) => r !== leader)!;
  const ops = `http://127.0.0.1:${follower.gateway.metricsPort}`;
  t.diagnostic(`leader ${leader.identity}; wake sent to ${follower.identity}`);

  const bad = await fetch(`${ops}/wake?for=20`, { method: 'POST' });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /invalid for "20": not a Go duration/);
  assert.equal((await env.replicas()).spec, 0, 'a refused request wakes nothing');

  const history = await env.watchReplicas();
  const wake = await wakeCli(['--url', ops, '--for', '20s', '--wait', '--timeout', '2m']);
  assert.equal(wake.code, 0, wake.stderr);
  const until = Date.parse(/until (\S+)\n/.exec(wake.stdout)?.[1] ?? '');
  assert.match(
    wake.stdout,
    /^wake requested: at least 1 builders for 20s, until .*\n1 builders accept connections after /,
  );
  assert.deepEqual(await env.replicas(), { spec: 1, ready: 1 }, 'a pod accepts connections when --wait returns');
  t.diagnostic(`wake --wait: ${wake.stdout.trim().split('\n').at(-1)}`);
  for (const { gateway } of replicas)
    assert.equal(await gateway.metric('bka_connections_total'), 0, 'no client connected');
  assert.equal(await follower.gateway.metric('bka_wakes_total', { source: 'api' }), 1);
  assert.equal(await follower.gateway.metric('bka_wakes_total', { source: 'connection' }), 0);
  const status = (await (await fetch(`http://127.0.0.1:${leader.gateway.metricsPort}/wake`)).json()) as {
    wake: { replicas: number; until: string } | null;
  };
  assert.equal(status.wake?.replicas, 1, 'the leader sees the request through the report');
  // On the leader's own clock: the report's travel time moves its end later (never earlier), by far less than a second here.
  const leaderUntil = Date.parse(status.wake?.until ?? '');
  assert.ok(
    leaderUntil >= until && leaderUntil - until < 2_000,
    `the leader's end of the window ${status.wake?.until} is the request's ${new Date(until).toISOString()}`,
  );

  // The idle timeout is 3 s and nobody connects: only the request keeps the builder.
  while (Date.now() < until - 1_000) {
    assert.equal((await env.replicas()).spec, 1, `still 1 replica ${until - Date.now()}ms before the window ends`);
    await sleep(1_000);
  }
  await waitFor('idled down after the window', async () => (await env.replicas()).spec === 0, 60_000);
  const downs = await waitFor('the scale-down logged', () => scaleDowns(leader).length > 0 && scaleDowns(leader));
  assert.ok(
    loggedAt(downs[0]!) >= until,
    `scaled down at ${new Date(loggedAt(downs[0]!)).toISOString()}, not before the window ended at ${new Date(until).toISOString()}`,
  );
  await logsCaughtUp([follower]);
  assert.deepEqual(scaleDowns(follower), [], 'only the leader scaled down');
  const up = history.changes.find((c) => c.spec === 1);
  assert.ok(up, 'woken to 1');
  t.diagnostic(`kept ${loggedAt(downs[0]!) - up.at}ms after the scale-up (window ${until - up.at}ms from it)`);

  // A client at zero is a connection-driven wake, counted once by the replica that wrote the scale-up.
  const reply = await echoExchange(follower.gateway.proxyPort, 'after the window');
  assert.equal(reply.reply.toString(), 'after the window');
  const connectionWakes = await waitFor('the connection wake counted', async () => {
    let sum = 0;
    for (const { gateway } of replicas) sum += await gateway.metric('bka_wakes_total', { source: 'connection' });
    return sum > 0 && sum;
  });
  assert.equal(connectionWakes, 1);
});

test('a wake accepted by a replica that then shuts down is carried on by the other (a rollout does not end it)', async (t) => {
  const env = await setup(t);
  const replicas = [await startReplica(env, 'gateway-a'), await startReplica(env, 'gateway-b')];
  await allReporting(replicas, 2);
  const [leaving, staying] = replicas as [Replica, Replica];
  const accepted = await fetch(`http://127.0.0.1:${leaving.gateway.metricsPort}/wake?for=40s`, { method: 'POST' });
  assert.equal(accepted.status, 202);
  const until = Date.parse(((await accepted.json()) as { until: string }).until);
  await waitFor('woken', async () => (await env.replicas()).ready === 1, 60_000);
  assert.equal(await leaving.gateway.stop('SIGTERM'), 0);
  await waitFor(
    'its report deleted',
    async () => !(await reportLeases(env)).includes(reportLeaseName(leaving.identity)),
    30_000,
  );
  await waitFor('the other one leads', async () => (await staying.gateway.metric('bka_leader')) === 1, 60_000);
  // Idle timeout 3 s, no client: only the handed-over request keeps the builder.
  while (Date.now() < until - 1_000) {
    assert.equal((await env.replicas()).spec, 1, `still 1 replica ${until - Date.now()}ms before the window ends`);
    await sleep(1_000);
  }
  await waitFor('idled down after the window', async () => (await env.replicas()).spec === 0, 60_000);
  const [down] = await waitFor('the scale-down logged', () => scaleDowns(staying).length > 0 && scaleDowns(staying));
  assert.ok(loggedAt(down!) >= until, 'not before the window ended');
});
