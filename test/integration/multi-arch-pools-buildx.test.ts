// Multi-architecture pools: two buildkitd StatefulSets side by side in one namespace, one per architecture,
// each with its own gateway (as two releases of the chart run them), and one buildx builder with a node
// per pool, each node created with its --platform. A single-platform build wakes only its pool; a
// multi-platform build wakes both and the output carries both platforms; then both pools return to zero.
// Nodes created without --platform make buildx dial every node for any build: both pools wake.
// The local cluster has one amd64 node and no nodeSelector here: a FROM scratch + COPY build needs no
// emulation, so the "arm64" builder builds its platform on it (the chart's nodeSelector and tolerations
// are checked in test/deploy/multi-arch.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildx } from '../support/buildx.ts';
import { setup, type Gateway } from './harness.ts';
import { waitFor } from '../support/wait.ts';

const archs = ['amd64', 'arm64'] as const;
type Arch = (typeof archs)[number];

test('two pools, one buildx builder with a node per platform: each pool wakes for its platform only, the output has both, both return to zero', async (t) => {
  const names = { amd64: 'buildkitd-amd64', arm64: 'buildkitd-arm64' } satisfies Record<Arch, string>;
  const env = await setup(t, {
    buildkitd: false,
    pools: archs.map((arch) => ({ kind: 'real' as const, name: names[arch], terminationGraceSeconds: 10 })),
    rbac: { statefulSetNames: Object.values(names) },
  });
  const gateways = {} as Record<Arch, Gateway>;
  for (const arch of archs) {
    gateways[arch] = await env.startGateway({
      BUILDKITD_STATEFULSET_NAME: names[arch],
      BUILDKITD_HEADLESS_SERVICE_NAME: `${names[arch]}-headless`,
      SCALE_DOWN_IDLE_TIMEOUT: '5s',
      READY_WAIT_TIMEOUT: '3m',
    });
  }
  const spec = async (arch: Arch) =>
    (await env.apps.readNamespacedStatefulSet({ name: names[arch], namespace: env.namespace })).spec?.replicas ?? 0;
  const ready = async (arch: Arch) =>
    (await env.apps.readNamespacedStatefulSet({ name: names[arch], namespace: env.namespace })).status?.readyReplicas ??
    0;
  const bothAtZero = async () =>
    (await spec('amd64')) === 0 &&
    (await spec('arm64')) === 0 &&
    (await ready('amd64')) === 0 &&
    (await ready('arm64')) === 0;
  const wakes = (arch: Arch) =>
    gateways[arch].metric('bka_scale_operations_total', { direction: 'up', result: 'success' });
  const routedTo = (arch: Arch) =>
    gateways[arch]
      .events()
      .flatMap((e) => (e['event'] === 'connection_routed' ? [String(e['backend']).split(' ')[0] ?? ''] : []));

  const context = mkdtempSync(join(tmpdir(), 'bka-multi-arch-'));
  const payload = randomBytes(64 * 1024);
  writeFileSync(join(context, 'payload.bin'), payload);
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /out/payload.bin\n');
  const clientEnv = {
    ...env.cluster.env(),
    BUILDX_CONFIG: join(context, 'buildx-config'),
    DOCKER_CONFIG: join(context, 'docker-config'),
  };
  const log = (name: string, output: string) => writeFileSync(join(env.artifacts, name), output);

  const create = await buildx(
    [
      'create',
      '--name',
      'multi',
      '--driver',
      'remote',
      '--platform',
      'linux/amd64',
      `tcp://127.0.0.1:${gateways.amd64.proxyPort}`,
    ],
    clientEnv,
  );
  log('buildx-create.log', create.output);
  assert.equal(create.code, 0, create.output);
  const append = await buildx(
    [
      'create',
      '--append',
      '--name',
      'multi',
      '--driver',
      'remote',
      '--platform',
      'linux/arm64',
      `tcp://127.0.0.1:${gateways.arm64.proxyPort}`,
    ],
    clientEnv,
  );
  log('buildx-create-append.log', append.output);
  assert.equal(append.code, 0, append.output);
  await waitFor('both pools at zero before the builds', bothAtZero, 90_000);

  // One platform: buildx picks the node declared for it and dials no other, so the other pool sleeps on.
  const armWakesBefore = await wakes('arm64');
  const connectionsSeen = (arch: Arch) =>
    gateways[arch].events().filter((e) => e['event'] === 'connection_held' || e['event'] === 'connection_routed')
      .length;
  await gateways.arm64.logCaughtUp();
  const armConnectionsBefore = connectionsSeen('arm64');
  const amdWakesBefore = await wakes('amd64');
  const single = await buildx(
    [
      'build',
      '--builder',
      'multi',
      '--progress',
      'plain',
      '--platform',
      'linux/amd64',
      '--output',
      `type=local,dest=${join(context, 'out-single')}`,
      context,
    ],
    clientEnv,
  );
  log('buildx-build-single.log', single.output);
  assert.equal(single.code, 0, single.output.slice(-2000));
  assert.equal(Buffer.compare(readFileSync(join(context, 'out-single', 'out', 'payload.bin')), payload), 0);
  assert.equal(await wakes('amd64'), amdWakesBefore + 1, 'the amd64 pool woke for the amd64 build');
  await gateways.arm64.logCaughtUp();
  assert.equal(await wakes('arm64'), armWakesBefore, 'the arm64 pool was not woken');
  assert.equal(await spec('arm64'), 0);
  assert.equal(connectionsSeen('arm64'), armConnectionsBefore, 'no connection reached the arm64 gateway');
  await waitFor('both pools at zero before the multi-platform build', bothAtZero, 90_000);

  // Both platforms: each node builds its own, each pool wakes once.
  const before = { amd64: await wakes('amd64'), arm64: await wakes('arm64') };
  const dest = join(context, 'out-multi');
  const multi = await buildx(
    [
      'build',
      '--builder',
      'multi',
      '--progress',
      'plain',
      '--platform',
      'linux/amd64,linux/arm64',
      '--output',
      `type=local,dest=${dest}`,
      context,
    ],
    clientEnv,
  );
  log('buildx-build-multi.log', multi.output);
  assert.equal(multi.code, 0, multi.output.slice(-2000));
  assert.deepEqual(readdirSync(dest).sort(), ['linux_amd64', 'linux_arm64'], 'one directory per platform');
  for (const dir of ['linux_amd64', 'linux_arm64'])
    assert.equal(
      Buffer.compare(readFileSync(join(dest, dir, 'out', 'payload.bin')), payload),
      0,
      `${dir} carries the file`,
    );
  for (const arch of archs) {
    assert.equal(await wakes(arch), before[arch] + 1, `the ${arch} pool woke once for the multi-platform build`);
    assert.ok(
      routedTo(arch).length > 0 && routedTo(arch).every((pod) => pod.startsWith(`${names[arch]}-`)),
      `${arch} gateway routed only to its pool: ${routedTo(arch).join(', ')}`,
    );
  }
  t.diagnostic(`single-platform build ${single.ms} ms; multi-platform build ${multi.ms} ms`);

  // Nodes created without --platform: buildx asks every node for its platforms, so one platform wakes both pools.
  for (const arch of archs) {
    const made = await buildx(
      [
        'create',
        ...(arch === 'arm64' ? ['--append'] : []),
        '--name',
        'unpinned',
        '--driver',
        'remote',
        `tcp://127.0.0.1:${gateways[arch].proxyPort}`,
      ],
      clientEnv,
    );
    assert.equal(made.code, 0, made.output);
  }
  await waitFor('both pools at zero before the build on unpinned nodes', bothAtZero, 90_000);
  const beforeUnpinned = { amd64: await wakes('amd64'), arm64: await wakes('arm64') };
  const unpinned = await buildx(
    [
      'build',
      '--builder',
      'unpinned',
      '--progress',
      'plain',
      '--platform',
      'linux/amd64',
      '--output',
      `type=local,dest=${join(context, 'out-unpinned')}`,
      context,
    ],
    clientEnv,
  );
  log('buildx-build-unpinned.log', unpinned.output);
  assert.equal(unpinned.code, 0, unpinned.output.slice(-2000));
  for (const arch of archs)
    assert.equal(
      await wakes(arch),
      beforeUnpinned[arch] + 1,
      `without --platform on the nodes, the ${arch} pool woke for an amd64 build too`,
    );

  await waitFor('both pools back at zero', bothAtZero, 90_000);
});
