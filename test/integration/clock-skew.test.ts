// One gateway replica's wall clock is moved (libfaketime; the monotonic clock is left alone, as NTP would
// leave it): no replica may compare another node's clock with its own. Ages are judged by when a replica
// saw something, and a replica acknowledges only a proposal it really fences.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { setup, type Env } from './harness.ts';
import { echoExchange, openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';
import {
  allReporting,
  idleTimeoutMs,
  leaderAmong,
  reportLeaseName,
  reportLeases,
  startReplica,
  type Replica,
} from './gateway-replicas.ts';

const libfaketimeCandidates = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
];

/** The environment that moves a process's wall clock by `seconds`, checked on a Node process first. */
function skewed(seconds: number): Record<string, string> {
  const library = libfaketimeCandidates.find((path) => existsSync(path));
  assert.ok(
    library,
    `libfaketime not found (Debian package faketime, installed by scripts/build-binaries.sh): looked at ${libfaketimeCandidates.join(', ')}`,
  );
  const env = {
    LD_PRELOAD: library,
    FAKETIME: `${seconds >= 0 ? '+' : ''}${seconds}`,
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
  const probe =
    'const w=Date.now(),m=performance.now();setTimeout(()=>console.log(JSON.stringify({w,walled:Date.now()-w,mono:performance.now()-m})),200)';
  const before = Date.now();
  const seen = JSON.parse(
    execFileSync(process.execPath, ['-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' }),
  ) as { w: number; walled: number; mono: number };
  assert.ok(
    Math.abs(seen.w - before - seconds * 1000) < 5_000,
    `the wall clock moved by ${seconds} s (${seen.w - before} ms)`,
  );
  assert.ok(
    Math.abs(seen.mono - seen.walled) < 100,
    `the monotonic clock runs with the wall clock (${seen.mono} vs ${seen.walled} ms over 200 ms)`,
  );
  return env;
}

async function reportOf(
  env: Env,
  identity: string,
): Promise<{ ack?: string; held: number; pods: Record<string, { open: number }> } | undefined> {
  const leases = env.cluster.kubeConfig().makeApiClient(CoordinationV1Api);
  const lease = await leases.readNamespacedLease({ name: reportLeaseName(identity), namespace: env.namespace });
  const text = lease.metadata?.annotations?.['buildkitd-autoscaler/activity'];
  return text === undefined
    ? undefined
    : (JSON.parse(text) as { ack?: string; held: number; pods: Record<string, { open: number }> });
}

/** The leader first (it leads before the other starts), then the follower; each with its own extra env. */
async function leaderAndFollower(
  env: Env,
  leaderEnv: Record<string, string>,
  followerEnv: Record<string, string>,
  reports = 2,
): Promise<{ leader: Replica; follower: Replica }> {
  const leader = await startReplica(env, 'gateway-a', leaderEnv);
  assert.equal(await leaderAmong([leader]), leader);
  const follower = await startReplica(env, 'gateway-b', followerEnv);
  await allReporting([leader, follower], reports);
  return { leader, follower };
}

test('a follower 10 min ahead does not keep buildkitd up 10 min too long: scale-down after the idle timeout', async (t) => {
  const env = await setup(t);
  const { follower } = await leaderAndFollower(env, {}, skewed(600));
  const history = await env.watchReplicas();
  const { reply, error } = await echoExchange(follower.gateway.proxyPort, 'build through the skewed follower');
  assert.equal(error, undefined);
  assert.equal(reply.toString(), 'build through the skewed follower');
  assert.equal(history.maxSpec(), 1, 'the follower woke buildkitd');
  // Idle timeout 3 s: a minute is generous; ten minutes is what a compared clock would cost.
  await waitFor('scale-down to zero after the idle timeout', async () => (await env.replicas()).spec === 0, 60_000);
});

test('a leader 10 min ahead does not scale down right after the last close: it waits the idle timeout', async (t) => {
  const env = await setup(t);
  const idleTimeoutMs = 12_000;
  const settings = { SCALE_DOWN_IDLE_TIMEOUT: '12s' };
  const { follower } = await leaderAndFollower(env, { ...settings, ...skewed(600) }, settings);
  const history = await env.watchReplicas();
  // A replica counts its own start as activity: only a close later than that decides when buildkitd may go.
  await sleep(idleTimeoutMs);
  const build = await openEcho(follower.gateway.proxyPort);
  assert.equal((await build.roundTrip(Buffer.from('build'))).toString(), 'build');
  build.socket.end();
  await build.closed;
  const closedAt = Date.now();
  await waitFor('scale-down to zero', async () => (await env.replicas()).spec === 0, idleTimeoutMs + 60_000);
  const down = history.changes.find((change) => change.spec === 0 && change.at >= closedAt);
  assert.ok(down, 'the watch saw the scale-down');
  // A lower bound only: a slow machine makes it later, never earlier.
  assert.ok(
    down.at - closedAt >= idleTimeoutMs / 2,
    `scaled down ${down.at - closedAt} ms after the last close, with a ${idleTimeoutMs} ms idle timeout`,
  );
});

/** A replica report the test writes itself, renewed every second and never acknowledging: it keeps each proposal open for its timeout. */
async function slowPeer(t: TestContext, env: Env): Promise<void> {
  const leases = env.cluster.kubeConfig().makeApiClient(CoordinationV1Api);
  const name = reportLeaseName('gateway-slow');
  const activity = JSON.stringify({
    instance: 'slow',
    open: 0,
    held: 0,
    pods: {},
    since: new Date(Date.now() - 3_600_000).toISOString(),
  });
  let lease: V1Lease = await leases.createNamespacedLease({
    namespace: env.namespace,
    body: {
      metadata: {
        name,
        labels: { 'buildkitd-autoscaler/group': 'buildkitd-autoscaler', 'buildkitd-autoscaler/role': 'activity' },
        annotations: { 'buildkitd-autoscaler/activity': activity },
      },
      spec: {
        holderIdentity: 'gateway-slow',
        leaseDurationSeconds: 6,
        renewTime: new Date().toISOString().replace('Z', '000Z') as unknown as Date,
      },
    },
  });
  let renewing = true;
  const renew = async () => {
    while (renewing) {
      await sleep(1_000);
      lease = await leases.replaceNamespacedLease({
        name,
        namespace: env.namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, renewTime: new Date().toISOString().replace('Z', '000Z') as unknown as Date },
        },
      });
    }
  };
  const loop = renew();
  t.after(async () => {
    renewing = false;
    await loop.catch(() => undefined);
  });
}

test('a follower 60 s ahead never acknowledges a proposal while it routes a new connection to the pod', async (t) => {
  const env = await setup(t);
  await slowPeer(t, env);
  const { follower } = await leaderAndFollower(env, {}, skewed(60), 3);
  await env.setReplicas(1);
  await waitFor('buildkitd-0 ready', async () => (await env.replicas()).ready === 1, 60_000);
  const coordination = env.cluster.kubeConfig().makeApiClient(CoordinationV1Api);
  // The slow peer never acknowledges, so the leader withdraws each proposal after 6 s and proposes anew.
  const proposal = await waitFor(
    `the leader proposes removing buildkitd-0 and ${follower.identity} acknowledges it`,
    async () => {
      const lease = await coordination.readNamespacedLease({ name: 'buildkitd-autoscaler', namespace: env.namespace });
      const text = lease.metadata?.annotations?.['buildkitd-autoscaler/scale-down'];
      const parsed =
        text === undefined
          ? undefined
          : (JSON.parse(text) as { id: string; committed: boolean; pods: Record<string, string> });
      if (!parsed || parsed.committed || !('buildkitd-0' in parsed.pods)) return undefined;
      return (await reportOf(env, follower.identity))?.ack === parsed.id ? parsed : undefined;
    },
    120_000,
    50,
  );

  // Every version of the follower's report from now on: none may acknowledge while a connection is on the pod.
  const seen: Array<{ ack?: string; held: number; pods: Record<string, { open: number }> }> = [];
  let watching = true;
  const poll = (async () => {
    while (watching) {
      const report = await reportOf(env, follower.identity).catch(() => undefined);
      if (report) seen.push(report);
      await sleep(50);
    }
  })();
  const build = await openEcho(follower.gateway.proxyPort);
  assert.equal((await build.roundTrip(Buffer.from('build'))).toString(), 'build', 'the connection is served');
  await waitFor(
    'the follower reports the connection on buildkitd-0',
    () => seen.some((report) => (report.pods['buildkitd-0']?.open ?? 0) > 0),
    10_000,
  );
  await sleep(500);
  watching = false;
  await poll;
  const both = seen.find((report) => report.ack === proposal.id && (report.pods['buildkitd-0']?.open ?? 0) > 0);
  assert.equal(
    both,
    undefined,
    `${follower.identity} acknowledged ${proposal.id} while it routed a connection to buildkitd-0: ${JSON.stringify(both)}`,
  );
  assert.equal((await env.replicas()).spec, 1, 'buildkitd-0 is kept under the connection');
  assert.equal((await build.roundTrip(Buffer.from('still there'))).toString(), 'still there');
  build.socket.end();
});

test('a wake accepted by a replica 10 min ahead, every replica then replaced: the new one keeps the builder for the real window only', async (t) => {
  const env = await setup(t);
  const windowMs = 30_000;
  const old = await startReplica(env, 'gateway-ahead', skewed(600));
  await allReporting([old], 1);
  const acceptedAt = Date.now();
  const accepted = await fetch(`http://127.0.0.1:${old.gateway.metricsPort}/wake?for=${windowMs / 1000}s`, {
    method: 'POST',
  });
  assert.equal(accepted.status, 202);
  const realEnd = acceptedAt + windowMs;
  await waitFor('the builder woken', async () => (await env.replicas()).ready === 1);
  assert.equal(await old.gateway.stop('SIGTERM'), 0);
  assert.deepEqual(
    await reportLeases(env),
    [],
    'the drained replica deleted its report: only the wake Lease carries the wake',
  );

  const fresh = await startReplica(env, 'gateway-normal');
  await leaderAmong([fresh]);
  const until = await waitFor(
    'the new replica knows the wake',
    async () => {
      const body = (await (await fetch(`http://127.0.0.1:${fresh.gateway.metricsPort}/wake`)).json()) as {
        wake: { until: string } | null;
      };
      return body.wake ? Date.parse(body.wake.until) : undefined;
    },
    20_000,
  );
  // Counted from when the new replica first saw the write: later than the real end by at most that delay, never earlier.
  const seenBy = Date.now();
  assert.ok(
    until >= realEnd - 1_000 && until <= realEnd + (seenBy - acceptedAt),
    `the window ends ${Math.round((until - realEnd) / 1000)} s after its real end on the new replica's clock`,
  );
  while (Date.now() < realEnd - 1_000) {
    assert.equal((await env.replicas()).spec, 1, 'the builder stays for the wake window');
    await sleep(500);
  }
  // Ten minutes is what the ahead writer's instant would cost.
  await waitFor(
    'scale-down to zero after the window and the idle timeout',
    async () => (await env.replicas()).spec === 0,
    until - Date.now() + idleTimeoutMs + 60_000,
  );
});
