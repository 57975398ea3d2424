// A flood of held clients, each sending far more than a BuildKit client would before the server answers,
// against the gateway started with the shipped NODE_OPTIONS: its peak memory stays well under the shipped
// 256Mi limit, the clients that do not fit are refused with a code, and clients that leave are released.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadAllYaml, type V1Deployment } from '@kubernetes/client-node';
import { setup } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { waitFor } from '../support/wait.ts';

const CLIENTS = 1000; // the shipped --max-pending
const PAYLOAD = Buffer.alloc(256 * 1024, 0x62);
const MiB = 1024 * 1024;

function shippedNodeOptions(): string {
  const docs = loadAllYaml(
    readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', '04-deployment.yaml'), 'utf8'),
  ) as V1Deployment[];
  const env = docs[0]?.spec?.template.spec?.containers[0]?.env ?? [];
  const value = env.find((e) => e.name === 'NODE_OPTIONS')?.value;
  assert.ok(value, 'the shipped Deployment sets NODE_OPTIONS');
  return value;
}

/** Peak resident memory of a process so far (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match, 'VmHWM in /proc/<pid>/status');
  return Number(match[1]) / 1024;
}

test('1,000 held clients sending 256 KiB each: peak RSS stays under 200 MiB, the overflow is refused, leavers are released', async (t) => {
  // The pod starts only after the test is over, so every client is held for the whole test.
  const env = await setup(t, { buildkitd: { kind: 'mock', startDelayMs: 30 * 60_000 } });
  const gateway = await env.startGateway({
    NODE_OPTIONS: shippedNodeOptions(),
    READY_WAIT_TIMEOUT: '5m',
    LOG_LEVEL: 'info',
  });
  const pid = gateway.process.pid;
  assert.ok(pid);

  const clients: Socket[] = [];
  for (let i = 0; i < CLIENTS; i += 1) {
    const socket = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    socket.write(PAYLOAD);
    clients.push(socket);
  }
  const refusedTotal = () => gateway.metric('bka_connections_total', { outcome: 'rejected_pending_bytes' });
  await waitFor(
    'every client held or refused',
    async () => (await gateway.metric('bka_connections_held')) + (await refusedTotal()) === CLIENTS,
    180_000,
    500,
  );
  await waitFor(
    'every client to have handed its bytes to the gateway',
    () => clients.every((c) => c.destroyed || c.writableLength === 0),
    180_000,
    500,
  );
  const held = await gateway.metric('bka_connections_held');
  const peak = peakRssMiB(pid);
  t.diagnostic(
    `gateway peak RSS (VmHWM) with ${CLIENTS} clients x ${PAYLOAD.length / 1024} KiB: ${peak.toFixed(1)} MiB; held ${held}, refused ${await refusedTotal()}`,
  );

  await waitFor(
    "every held client's bytes to be read",
    async () => (await gateway.metric('bka_pending_bytes')) === held * PAYLOAD.length,
    60_000,
    500,
  );
  assert.ok(held > 0, 'clients inside the budget are held');
  assert.ok(
    (await gateway.metric('bka_pending_bytes')) <= 32 * MiB,
    'the default --max-pending-bytes bounds what is kept',
  );
  assert.equal(
    await gateway.metric('bka_errors_total', { code: 'BKA_PENDING_BYTES_FULL' }),
    CLIENTS - held,
    'each refusal is counted by its code',
  );
  assert.ok(peak < 200, `peak RSS ${peak.toFixed(1)} MiB stays under 200 MiB`);

  for (const client of clients) client.destroy();
  await waitFor(
    'clients that left to be released',
    async () => (await gateway.metric('bka_connections_held')) === 0,
    60_000,
    500,
  );
  assert.equal(await gateway.metric('bka_pending_bytes'), 0);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'client_gone_while_held' }), held);

  // Their places are free again: a new client is held, not refused with BKA_PENDING_FULL.
  const next = connect({ port: gateway.proxyPort, host: '127.0.0.1' });
  next.on('error', () => undefined);
  next.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  await waitFor(
    'a new client to be held',
    async () => (await gateway.metric('bka_connections_held')) === 1,
    30_000,
    200,
  );
  assert.equal(await gateway.metric('bka_errors_total', { code: 'BKA_PENDING_FULL' }), 0);
  next.destroy();
  t.diagnostic(`gateway peak RSS at the end: ${peakRssMiB(pid).toFixed(1)} MiB`);
});
