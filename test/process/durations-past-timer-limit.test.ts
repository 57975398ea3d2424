// Runs the real entry point with durations longer than a Node timer holds (2^31-1 ms, ~24.8 days).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { spawnGateway } from '../support/gateway-process.ts';
import { kubeconfigFile } from '../support/kubeconfig.ts';
import { freePort } from '../support/net.ts';
import { metricSum } from '../support/prom-text.ts';
import { sleep, waitFor } from '../support/wait.ts';

/** A gateway whose API server refuses connections: every client is held, never served. */
async function gateway(t: TestContext, env: Record<string, string>) {
  const [proxyPort, metricsPort] = [await freePort(), await freePort()];
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfigFile(),
    PROXY_LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
    SHUTDOWN_DELAY: '0s',
    // Leases are not what this proves; without them the proxy listens at once.
    LEADER_ELECTION: 'false',
    ...env,
  });
  const output = { logs: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return metricSum(text, name) ?? Number.NaN;
  };
  await waitFor('proxy listening', () => /"event":"listening","what":"proxy"/.test(output.logs), 15_000, 50);
  return { child, proxyPort, metric, output };
}

function client(port: number): { socket: Socket; closed: Promise<void> } {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  socket.resume();
  return { socket, closed: once(socket, 'close').then(() => undefined) };
}

test('--ready-wait-timeout 720h and --first-byte-timeout 720h: a held client and a silent one stay open, no timer fires at once', async (t) => {
  const gw = await gateway(t, { READY_WAIT_TIMEOUT: '720h', FIRST_BYTE_TIMEOUT: '720h' });
  const held = client(gw.proxyPort);
  held.socket.write('hello');
  const silent = client(gw.proxyPort);
  let closedEarly = '';
  void held.closed.then(() => (closedEarly += 'held '));
  void silent.closed.then(() => (closedEarly += 'silent '));
  // An overflowing timer fires after 1 ms; a second is a thousand times that.
  await sleep(1000);
  assert.equal(closedEarly, '', `no client was closed; logs:\n${gw.output.logs}`);
  assert.equal(await gw.metric('bka_connections_held'), 1, 'the client that sent bytes is still held');
  assert.doesNotMatch(gw.output.logs, /BKA_READY_TIMEOUT|BKA_FIRST_BYTE_TIMEOUT/);
  assert.doesNotMatch(gw.output.stderr, /TimeoutOverflowWarning/);
  held.socket.destroy();
  silent.socket.destroy();
});

test('--shutdown-grace 720h: SIGTERM never cuts an open connection; the gateway exits 0 once the client leaves', async (t) => {
  const gw = await gateway(t, { SHUTDOWN_GRACE_PERIOD: '720h' });
  const held = client(gw.proxyPort);
  held.socket.write('hello');
  await waitFor('bka_connections_held 1', async () => (await gw.metric('bka_connections_held')) === 1, 15_000, 50);
  let exited = false;
  const exit = once(gw.child, 'exit').then(([code]) => {
    exited = true;
    return code as number | null;
  });
  gw.child.kill('SIGTERM');
  await waitFor('exit or listener_closed', () => exited || gw.output.logs.includes('"listener_closed"'), 15_000, 50);
  await sleep(1000);
  assert.equal(exited, false, `the gateway waits for its open connection; logs:\n${gw.output.logs}`);
  assert.equal(held.socket.destroyed, false, 'the connection was not cut');
  held.socket.end();
  assert.equal(await exit, 0);
  const finished = gw.output.logs
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { event?: string; closedByForce?: number })
    .find((line) => line.event === 'shutdown_finished');
  assert.equal(finished?.closedByForce, 0, 'nothing closed by force');
  assert.doesNotMatch(gw.output.stderr, /TimeoutOverflowWarning/);
});
