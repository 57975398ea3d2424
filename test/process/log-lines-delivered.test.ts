// Log lines reach stdout (src/log.ts): run with the real entry point (dist/main.js), a lone line appears by
// itself, and no line is lost when the process exits (SIGTERM, a fatal start error, an invalid value); the
// guarantees any batching of the writes must keep.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { runGateway, spawnGateway, type GatewayChild } from '../support/gateway-process.ts';
import { kubeconfigFile } from '../support/kubeconfig.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

interface Started {
  child: GatewayChild;
  stdout: () => string;
  proxyPort: number;
  metricsPort: number;
}

function startGateway(env: Record<string, string>, proxyPort: number, metricsPort: number): Started {
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfigFile(),
    PROXY_LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
    SHUTDOWN_DELAY: '0s',
    ...env,
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  return { child, stdout: () => stdout, proxyPort, metricsPort };
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; event?: string; id?: number; code?: string; closedByForce?: number });

async function holdConnections(gateway: Started, count: number): Promise<Socket[]> {
  const sockets = Array.from({ length: count }, () => {
    const socket = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    socket.write('hello');
    return socket;
  });
  await waitFor(
    `${count} held connections`,
    async () =>
      (await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text()).includes(
        `bka_connections_held ${count}`,
      ),
    15_000,
    50,
  );
  return sockets;
}

/** A gateway with nothing of its own to log: its API server accepts and never answers, so no request fails. */
async function startQuietGateway(t: TestContext): Promise<Started> {
  const silent: Socket[] = [];
  const api = createServer((socket) => silent.push(socket));
  api.listen(0, '127.0.0.1');
  await once(api, 'listening');
  // No Leases either: the first Lease write would wait for that server before the proxy listens.
  const gateway = startGateway(
    {
      KUBECONFIG_PATH: kubeconfigFile(`https://127.0.0.1:${(api.address() as { port: number }).port}`),
      LEADER_ELECTION: 'false',
    },
    await freePort(),
    await freePort(),
  );
  t.after(() => {
    gateway.child.kill('SIGKILL');
    for (const socket of silent) socket.destroy();
    api.close();
  });
  await waitFor('proxy listening', () => gateway.stdout().includes('proxy listening'), 15_000, 50);
  return gateway;
}

test("a single connection's lines appear on their own, with no further line to push them out", async (t) => {
  const gateway = await startQuietGateway(t);
  const [client] = await holdConnections(gateway, 1);
  await waitFor('the held line', () => lines(gateway.stdout()).some((l) => l.event === 'connection_held'), 15_000, 50);
  client?.destroy();
  await waitFor(
    'the closing line',
    () => lines(gateway.stdout()).some((l) => l.event === 'connection_closed'),
    15_000,
    50,
  );
});

test('when /metrics counts a connection, its line is already on stdout: the log is never behind the counters', async (t) => {
  const gateway = await startQuietGateway(t);
  const [client] = await holdConnections(gateway, 1);
  t.after(() => client?.destroy());
  // The answer's bytes came after the line's on the gateway's side; both are read in the same poll of this loop.
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(
    lines(gateway.stdout()).some((l) => l.event === 'connection_held'),
    `no connection_held line when /metrics counted it:\n${gateway.stdout()}`,
  );
});

test("SIGTERM right after connections closed: each one's line and the shutdown lines are written before the process ends", async () => {
  const count = 40;
  const gateway = startGateway({ SHUTDOWN_GRACE_PERIOD: '200ms' }, await freePort(), await freePort());
  await waitFor('proxy listening', () => gateway.stdout().includes('proxy listening'), 15_000, 50);
  const sockets = await holdConnections(gateway, count);
  for (const socket of sockets) socket.destroy();
  await waitFor(
    'no held connection',
    async () =>
      (await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text()).includes(
        'bka_connections_held 0',
      ),
    15_000,
    50,
  );
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGTERM');
  const [code] = (await exited) as [number];
  assert.equal(code, 0);
  const logged = lines(gateway.stdout());
  const closed = new Set(logged.filter((l) => l.event === 'connection_closed').map((l) => l.id));
  assert.equal(closed.size, count, 'one closing line per connection');
  assert.equal(logged.find((l) => l.event === 'shutdown_finished')?.closedByForce, 0, 'the last line before exit');
});

test('a fatal start error exits 1 with its line written; an invalid value exits 2 with its line', async () => {
  const busy = createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const busyPort = (busy.address() as { port: number }).port;
  try {
    const gateway = startGateway({}, busyPort, await freePort());
    const [code] = (await once(gateway.child, 'exit')) as [number];
    assert.equal(code, 1);
    const fatal = lines(gateway.stdout()).find((l) => l.level === 'fatal');
    assert.equal(fatal?.code, 'BKA_LISTEN_FAILED', gateway.stdout());
  } finally {
    busy.close();
  }
  const invalid = runGateway(['--target-port', '99999']);
  assert.equal(invalid.code, 2);
  assert.match(
    invalid.stderr,
    /^buildkitd-autoscaler: [^\n]*"99999"[^\n]*--target-port \/ BUILDKITD_TARGET_PORT[^\n]*\n$/,
  );
});
