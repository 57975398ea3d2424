// A peer that vanishes without a FIN or RST (a node that dies, a partition) is found by TCP keepalive: the
// gateway ends that connection by itself, on the buildkitd side while the pod stays Ready and present (so
// not by the BKA_BACKEND_LOST path for deleted pods), and on the client side, spliced or held. Keepalive
// starts probing after 30 s idle, then 10 probes 1 s apart (libuv's), so each case takes about 40 s.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { ErrorCode } from '../../src/errors.ts';
import { ConnectionOutcome } from '../../src/events.ts';
import { run, runOk } from '../support/command.ts';
import { setup, type Gateway } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { waitFor } from '../support/wait.ts';

// Keepalive's 40 s and a generous margin for a loaded machine.
const untilKeepaliveGivesUp = 120_000;

/** Devices with the dropping qdisc, and how many tests use each (the cases run at once; two share lo). */
const droppingDevices = new Map<string, { users: number; ready: Promise<void> }>();
let nextFilterPref = 100;

/**
 * Drops every packet `device` sends that matches `matches` (u32 selectors), until the test ends. This
 * kernel has no tc drop action, so matching packets go to an htb class whose queue holds none; the rest
 * of the device's traffic is not classified and leaves as before.
 */
async function dropPackets(t: TestContext, device: string, matches: string[]): Promise<void> {
  let entry = droppingDevices.get(device);
  if (!entry) {
    entry = {
      users: 0,
      ready: (async () => {
        await runOk('tc', ['qdisc', 'add', 'dev', device, 'root', 'handle', '1:', 'htb']);
        await runOk('tc', ['class', 'add', 'dev', device, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '1gbit']);
        await runOk('tc', ['qdisc', 'add', 'dev', device, 'parent', '1:1', 'pfifo', 'limit', '0']);
      })(),
    };
    droppingDevices.set(device, entry);
  }
  entry.users += 1;
  const used = entry;
  t.after(async () => {
    used.users -= 1;
    if (used.users > 0) return;
    droppingDevices.delete(device);
    await run('tc', ['qdisc', 'del', 'dev', device, 'root']);
  });
  await used.ready;
  const pref = String(nextFilterPref++);
  await runOk('tc', [
    'filter',
    'add',
    'dev',
    device,
    'parent',
    '1:',
    'pref',
    pref,
    'protocol',
    'ip',
    'u32',
    ...matches,
    'flowid',
    '1:1',
  ]);
  t.after(() => run('tc', ['filter', 'del', 'dev', device, 'parent', '1:', 'pref', pref]));
}

/** The local port of the gateway's connection to `podIp` (the process kubelet's probes use others). */
async function gatewayPortTo(gateway: Gateway, podIp: string): Promise<number> {
  const lines = (await runOk('ss', ['-tnpH', 'state', 'established', 'dst', `${podIp}:8273`])).split('\n');
  const ours = lines.filter((line) => line.includes(`pid=${gateway.process.pid},`));
  assert.equal(ours.length, 1, `one connection from the gateway to ${podIp}:8273:\n${lines.join('\n')}`);
  return Number(/:(\d+)\s/.exec(ours[0]!)?.[1]);
}

async function podIsReady(env: Awaited<ReturnType<typeof setup>>, uid: string | undefined): Promise<boolean> {
  const pod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return ready && pod.metadata?.uid === uid && pod.metadata?.deletionTimestamp === undefined;
}

describe('a peer that vanishes silently is found by TCP keepalive', { concurrency: true }, () => {
  it('a spliced connection whose pod stops answering is ended as BKA_BACKEND_LOST (ETIMEDOUT) while the pod stays Ready', async (t) => {
    const env = await setup(t);
    const gateway = await env.startGateway();
    const connection = await openEcho(gateway.proxyPort);
    const chunk = Buffer.from('before the silence');
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
    const pod = await env.core.readNamespacedPod({ name: 'buildkitd-0', namespace: env.namespace });
    const podIp = pod.status?.podIP ?? '';
    assert.equal(await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' }), 1);

    // Only this connection's packets towards the pod are lost: the kubelet's probes still pass, so the pod stays Ready.
    const port = await gatewayPortTo(gateway, podIp);
    await dropPackets(t, `bkav${podIp.split('.')[3]}`, [
      'match',
      'ip',
      'dst',
      `${podIp}/32`,
      'match',
      'ip',
      'sport',
      String(port),
      '0xffff',
    ]);
    const silentAt = Date.now();

    assert.equal(
      await waitFor('the client sees its connection end', () => connection.socket.closed, untilKeepaliveGivesUp, 500),
      true,
    );
    t.diagnostic(`ended ${Date.now() - silentAt} ms after the pod went silent`);
    const [closed] = await gateway.waitForEvents(
      'connection_closed of the silent connection',
      (e) => e['event'] === 'connection_closed',
    );
    assert.deepEqual([closed?.['outcome'], closed?.['code']], [ConnectionOutcome.backendError, ErrorCode.BackendLost]);
    assert.match(
      String(closed?.['error']),
      /ETIMEDOUT/,
      'the kernel gave up on the pod (keepalive), not the gone-pod path',
    );
    await waitFor(
      'bka_pod_connections back to 0',
      async () => (await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' })) === 0,
    );
    assert.equal(await gateway.metric('bka_connections_open'), 0);
    assert.equal(await podIsReady(env, pod.metadata?.uid), true, 'the same pod is still Ready and not deleted');
  });

  it('a spliced client that stops answering is ended as BKA_CLIENT_ERROR (ETIMEDOUT), and its backend connection with it', async (t) => {
    const env = await setup(t);
    const gateway = await env.startGateway();
    const connection = await openEcho(gateway.proxyPort);
    const chunk = Buffer.from('before the silence');
    assert.equal(Buffer.compare(await connection.roundTrip(chunk), chunk), 0);
    assert.equal(await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' }), 1);

    // The client's packets are lost (it sends from 127.0.0.1:<its port>); its socket stays open, unaware.
    await dropPackets(t, 'lo', [
      'match',
      'ip',
      'src',
      '127.0.0.1/32',
      'match',
      'ip',
      'sport',
      String(connection.socket.localPort),
      '0xffff',
    ]);
    const silentAt = Date.now();
    // The kernel resets a connection whose keepalive gave up; `closed` rejects on that error (events.once).
    const reset = connection.closed.then(
      () => undefined,
      (error: NodeJS.ErrnoException) => error.code,
    );
    t.after(() => connection.socket.destroy());

    const [closed] = await gateway.waitForEvents(
      'connection_closed of the silent client',
      (e) => e['event'] === 'connection_closed',
      1,
      untilKeepaliveGivesUp,
    );
    t.diagnostic(`ended ${Date.now() - silentAt} ms after the client went silent`);
    assert.deepEqual([closed?.['outcome'], closed?.['code']], [ConnectionOutcome.clientError, ErrorCode.ClientError]);
    assert.match(String(closed?.['error']), /ETIMEDOUT/);
    assert.equal(await reset, 'ECONNRESET', 'the gateway reset it; the client never closed it');
    await waitFor(
      'bka_pod_connections back to 0',
      async () => (await gateway.metric('bka_pod_connections', { pod: 'buildkitd-0' })) === 0,
    );
    assert.equal(await gateway.metric('bka_connections_open'), 0);
  });

  it('a held client that stops answering is released before its ready-wait deadline', async (t) => {
    // buildkitd never turns Ready, so the client stays held for up to READY_WAIT_TIMEOUT.
    const env = await setup(t, { buildkitd: { kind: 'never-ready' } });
    const gateway = await env.startGateway({ READY_WAIT_TIMEOUT: '10m' });
    const connection = await openEcho(gateway.proxyPort);
    connection.socket.write('held');
    await gateway.waitForEvents('connection_held', (e) => e['event'] === 'connection_held');

    await dropPackets(t, 'lo', [
      'match',
      'ip',
      'src',
      '127.0.0.1/32',
      'match',
      'ip',
      'sport',
      String(connection.socket.localPort),
      '0xffff',
    ]);
    const silentAt = Date.now();
    // The kernel resets a connection whose keepalive gave up; `closed` rejects on that error (events.once).
    const reset = connection.closed.then(
      () => undefined,
      (error: NodeJS.ErrnoException) => error.code,
    );
    t.after(() => connection.socket.destroy());

    const [closed] = await gateway.waitForEvents(
      'connection_closed of the silent held client',
      (e) => e['event'] === 'connection_closed',
      1,
      untilKeepaliveGivesUp,
    );
    t.diagnostic(`released ${Date.now() - silentAt} ms after the client went silent`);
    assert.equal(closed?.['outcome'], ConnectionOutcome.clientGoneWhileHeld);
    assert.equal(await reset, 'ECONNRESET', 'the gateway reset it; the client never closed it');
    assert.equal(await gateway.metric('bka_connections_open'), 0);
  });
});
