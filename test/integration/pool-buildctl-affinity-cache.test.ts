// The point of client-ip affinity: a client's second build lands on the builder that built it first, so
// its layer cache is warm. Two client addresses, two real buildkitd builders, each address builds twice.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chooseBackends } from '../../src/backends/balancer.ts';
import { buildctl, type Gateway, setup } from './harness.ts';
import { waitFor } from '../support/wait.ts';

/** The address's first choice among two idle builders, as every gateway replica computes it. */
function firstChoice(address: string): string {
  const builders = [0, 1].map((ordinal) => ({
    key: `k${ordinal}`,
    podName: `buildkitd-${ordinal}`,
    ordinal,
    host: '',
    port: 0,
  }));
  return (
    chooseBackends(builders, {
      clientKey: address,
      affinity: 'client-ip',
      loads: {},
      connectionsPerReplica: 8,
      atMaximum: false,
    }).order[0]?.podName ?? ''
  );
}

/** 128 KiB that differ per address and are the same on every run. */
const contentFor = (address: string) =>
  Buffer.concat(Array.from({ length: 4096 }, (_, i) => createHash('sha256').update(`${address}/${i}`).digest()));

const routedSince = (gateway: Gateway, from: number) =>
  gateway
    .events()
    .filter((e) => e['event'] === 'connection_routed')
    .slice(from);

/** A finished build's lines: its routing lines (logged before buildctl exited), then a closing line for each. */
async function buildLogged(gateway: Gateway): Promise<void> {
  await gateway.logCaughtUp();
  await waitFor("a connection_closed line for every connection_routed line (the build's connections)", () => {
    const count = (kind: string) => gateway.events().filter((e) => e['event'] === kind).length;
    return count('connection_closed') === count('connection_routed');
  });
}

test('buildctl from two client addresses: the second build of each lands on the same builder and reports its cached step', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'real', terminationGraceSeconds: 10 } });
  const candidates = await env.clientAddresses(6);
  // One address per builder, so the two builders each keep one client's cache.
  const clients = ['buildkitd-0', 'buildkitd-1'].map((pod) =>
    candidates.find((address) => firstChoice(address) === pod),
  );
  assert.ok(clients.every(Boolean), `two of ${candidates.join(', ')} prefer different builders`);
  const gateway = await env.startGateway(
    {
      BUILDKITD_MIN_REPLICAS: '2',
      BUILDKITD_MAX_REPLICAS: '2',
      BUILDKITD_AFFINITY: 'client-ip',
      SCALE_DOWN_IDLE_TIMEOUT: '60s',
      READY_WAIT_TIMEOUT: '3m',
    },
    { listenOnAll: true },
  );
  await waitFor('two Ready builders (min replicas)', async () => (await env.replicas()).ready === 2, 180_000);
  await waitFor('the gateway routes to both', async () => (await gateway.metric('bka_ready_backends')) === 2, 60_000);

  const landed: Record<string, string[]> = {};
  for (const run of [1, 2]) {
    for (const address of clients as string[]) {
      const context = mkdtempSync(join(tmpdir(), 'bka-pool-build-'));
      t.after(() => rmSync(context, { recursive: true, force: true }));
      // The same input on both runs (per address), so the second run can reuse the first one's layer.
      const content = Buffer.concat([contentFor(address), Buffer.from(address)]);
      writeFileSync(join(context, 'payload.bin'), content);
      writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
      const out = join(context, 'out');
      const before = gateway.events().filter((e) => e['event'] === 'connection_routed').length;
      const result = await buildctl(
        [
          '--addr',
          `tcp://${address}:${gateway.proxyPort}`,
          'build',
          '--progress',
          'plain',
          '--frontend',
          'dockerfile.v0',
          '--local',
          `context=${context}`,
          '--local',
          `dockerfile=${context}`,
          '--output',
          `type=local,dest=${out}`,
        ],
        env.cluster.env(),
      );
      writeFileSync(join(env.artifacts, `buildctl-${address}-run${run}.log`), result.output);
      assert.equal(result.code, 0, result.output.slice(-2000));
      assert.equal(
        Buffer.compare(readFileSync(join(out, 'out', 'payload.bin')), content),
        0,
        `run ${run} from ${address}: output matches byte for byte`,
      );
      await buildLogged(gateway);
      const routed = routedSince(gateway, before);
      assert.ok(routed.length > 0, 'the build went through the gateway');
      const pods = [...new Set(routed.map((e) => String(e['backend']).split(' ')[0]))];
      assert.equal(pods.length, 1, `every connection of the build on one builder: ${pods.join(', ')}`);
      (landed[address] ??= []).push(pods[0] ?? '');
      const cachedCopy = /#\d+ \[1\/1\] COPY payload\.bin \/out\/payload\.bin\n#\d+ CACHED/.test(result.output);
      if (run === 2)
        assert.ok(
          cachedCopy,
          `the second build from ${address} reports its COPY step cached:\n${result.output.slice(-1500)}`,
        );
      else assert.ok(!cachedCopy, 'the first build really builds');
    }
  }
  t.diagnostic(`builders per address and run: ${JSON.stringify(landed)}`);
  for (const address of clients as string[])
    assert.equal(landed[address]?.[0], landed[address]?.[1], `${address} on the same builder both times`);
  assert.notEqual(landed[clients[0]!]?.[0], landed[clients[1]!]?.[0], 'the two clients use different builders');
  assert.equal(await gateway.metric('bka_affinity_total', { result: 'miss' }), 0);
});
