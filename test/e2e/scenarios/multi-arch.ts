// Multi-architecture pools (deploy/README.md, "Multi-architecture pools"): the chart installed twice beside
// the suite's gateway, from the shipped deploy/multi-arch/values-{amd64,arm64}.yaml, and one docker buildx
// builder with a node per pool, each declaring its platform. The local nodes are amd64 processes: the last
// one is labelled kubernetes.io/arch=arm64 and tainted as arm64 nodes often are, so the values' nodeSelector
// and tolerations are what place each pool; a FROM scratch + COPY build runs no binary of its target
// platform, so the "arm64" builder builds linux/arm64 without emulation. Local backend only: it relabels a node.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CHART_DIR, helm, parseManifests, REPO_ROOT, runTool } from '../../deploy/tools.ts';
import { buildx, type BuildxResult } from '../../support/buildx.ts';
import { type Scenario, kubectlOk, seconds } from './context.ts';
import { Timeline } from '../timeline.ts';

const ARCHS = ['amd64', 'arm64'] as const;
type Arch = (typeof ARCHS)[number];

/** What the two values files name; the gateway's objects are named after the release. */
const POOLS = Object.fromEntries(
  ARCHS.map((arch) => [
    arch,
    {
      release: `bka-${arch}`,
      valuesFile: path.join(REPO_ROOT, 'deploy', 'multi-arch', `values-${arch}.yaml`),
      statefulSet: `buildkitd-${arch}`,
      gateway: `bka-${arch}-buildkitd-autoscaler`,
      leaderLease: `buildkitd-${arch}-autoscaler`,
    },
  ]),
) as Record<Arch, { release: string; valuesFile: string; statefulSet: string; gateway: string; leaderLease: string }>;

const ARCH_LABEL = 'kubernetes.io/arch';
/** The pools wake and return to zero four times here: a short idle timeout (at most the suite's) keeps that quick. */
const POOL_IDLE_TIMEOUT_S = 5;

/** The taint some clusters put on arm64 nodes; values-arm64.yaml tolerates it. */
const ARM64_TAINT = `${ARCH_LABEL}=arm64:NoSchedule`;

/** Kinds each release installs with the shipped values, each of which must not collide with the other's. */
const RELEASE_KINDS = [
  'Deployment',
  'StatefulSet',
  'Service',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'PodDisruptionBudget',
  'ClusterRole',
  'ClusterRoleBinding',
];

interface PodInfo {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
}

/** The replicas each pool went through, for the report. */
function woke(w: Record<Arch, string>): string {
  return `${POOLS.amd64.statefulSet} ${w.amd64}, ${POOLS.arm64.statefulSet} ${w.arm64}`;
}

/** Replica counts as transitions from 0 (0 → 1 → 0), as the watch saw them since `sinceMs`. */
function transitionsFromZero(timeline: Timeline, sinceMs: number): string {
  const counts = [0, ...timeline.replicasSince(sinceMs)];
  return counts.filter((n, i) => i === 0 || counts[i - 1] !== n).join(' → ');
}

async function buildContext(dir: string): Promise<string> {
  const marker = `multi-arch build ${Date.now()} ${Math.random().toString(36).slice(2)}\n`;
  await writeFile(path.join(dir, 'hello.txt'), marker);
  // No `# syntax=` line: the built-in frontend needs nothing from a registry.
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
  return marker;
}

function tail(result: BuildxResult): string {
  return result.output.trim().split('\n').slice(-5).join(' / ');
}

export const multiArchPools: Scenario = {
  name: 'multi-arch-pools',
  promise:
    'two releases of the chart side by side, one per architecture (deploy/multi-arch/values-{amd64,arm64}.yaml), with distinct objects and Leases; one buildx builder with a node per pool (`--platform`, then `--append --platform`): an amd64 build wakes only the amd64 pool, a `--platform linux/amd64,linux/arm64` build wakes each pool on its own nodes and its output carries both platforms, nodes created without `--platform` wake both pools, and both return to 0',
  async run(ctx) {
    const dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-multi-arch-'));
    const env = { ...process.env, BUILDX_CONFIG: path.join(dir, '.buildx'), DOCKER_CONFIG: path.join(dir, '.docker') };
    const watches = {} as Record<Arch, Timeline>;
    const installed: Arch[] = [];
    const builders: string[] = [];
    let armNode: { name: string; arch: string } | undefined;
    let cleanedUp = false;
    const cleanup = async (): Promise<string[]> => {
      cleanedUp = true;
      const errors: string[] = [];
      for (const watch of Object.values(watches)) watch.stop();
      for (const builder of builders) await buildx(['rm', '--builder', builder], env);
      for (const arch of installed) {
        const removed = await runTool(await helm(), [
          'uninstall',
          POOLS[arch].release,
          '--namespace',
          ctx.namespace,
          '--wait',
          '--timeout',
          '120s',
        ]);
        if (removed.code !== 0) errors.push(`helm uninstall ${POOLS[arch].release}: ${removed.stderr.trim()}`);
      }
      if (armNode) {
        const node = armNode.name;
        const untainted = await ctx.backend.kubectl(['taint', 'node', node, `${ARM64_TAINT}-`]);
        const relabelled = await ctx.backend.kubectl([
          'label',
          'node',
          node,
          `${ARCH_LABEL}=${armNode.arch}`,
          '--overwrite',
        ]);
        for (const r of [untainted, relabelled])
          if (r.code !== 0) errors.push(`restoring node ${node}: ${r.stderr.trim()}`);
      }
      await rm(dir, { recursive: true, force: true });
      return errors;
    };

    try {
      const marker = await buildContext(dir);
      // The arm64 pool's node: the last local node, labelled and tainted as an arm64 node; the others stay amd64.
      const nodes = JSON.parse(await kubectlOk(ctx, ['get', 'nodes', '-o', 'json'])) as {
        items: { metadata: { name: string; labels?: Record<string, string> } }[];
      };
      const last = nodes.items
        .map((n) => n.metadata)
        .sort((a, b) => a.name.localeCompare(b.name))
        .at(-1);
      assert.ok(
        last && nodes.items.length >= 2,
        `two nodes needed (one per architecture), found ${nodes.items.length}`,
      );
      armNode = { name: last.name, arch: last.labels?.[ARCH_LABEL] ?? 'amd64' };
      await kubectlOk(ctx, ['label', 'node', armNode.name, `${ARCH_LABEL}=arm64`, '--overwrite']);
      await kubectlOk(ctx, ['taint', 'node', armNode.name, ARM64_TAINT, '--overwrite']);
      ctx.timeline.mark(`node ${armNode.name} labelled ${ARCH_LABEL}=arm64 and tainted ${ARM64_TAINT}`);

      // The suite's own gateway image; the shipped values plus the E2E's timeouts and discovery mode.
      const idleTimeoutS = Math.min(POOL_IDLE_TIMEOUT_S, ctx.settings.idleTimeoutS);
      const image = (
        await kubectlOk(ctx, [
          'get',
          'deployment',
          'buildkitd-autoscaler',
          '-o',
          'jsonpath={.spec.template.spec.containers[0].image}',
        ])
      ).trim();
      const colon = image.lastIndexOf(':');
      const set = {
        'image.repository': image.slice(0, colon),
        'image.tag': image.slice(colon + 1),
        'gateway.idleTimeout': `${idleTimeoutS}s`,
        'gateway.readyWaitTimeout': `${ctx.settings.readyWaitS}s`,
        'gateway.logLevel': 'debug',
        'gateway.backendDiscovery': ctx.settings.discovery,
      };
      const origin = performance.now() - ctx.timeline.now();
      for (const arch of ARCHS) {
        const pool = POOLS[arch];
        installed.push(arch);
        const result = await runTool(await helm(), [
          'install',
          pool.release,
          CHART_DIR,
          '--namespace',
          ctx.namespace,
          '-f',
          pool.valuesFile,
          ...Object.entries(set).flatMap(([k, v]) => ['--set-string', `${k}=${v}`]),
        ]);
        assert.equal(result.code, 0, `helm install ${pool.release}: ${result.stderr.trim()}`);
        watches[arch] = new Timeline(origin);
        await watches[arch].watch(ctx.namespace, pool.statefulSet);
      }
      for (const arch of ARCHS)
        await kubectlOk(ctx, ['rollout', 'status', `deployment/${POOLS[arch].gateway}`, '--timeout=240s']);
      ctx.timeline.mark('releases bka-amd64 and bka-arm64 installed, gateways ready');

      // What each release installed (helm get manifest) is distinct from the other's, and every object of it
      // in the API is still its own: a shared name would have failed the second install or changed hands.
      const installedObjects = {} as Record<Arch, string[]>;
      for (const arch of ARCHS) {
        const manifest = await runTool(await helm(), ['get', 'manifest', POOLS[arch].release, '-n', ctx.namespace]);
        assert.equal(manifest.code, 0, `helm get manifest ${POOLS[arch].release}: ${manifest.stderr.trim()}`);
        const objects = parseManifests(manifest.stdout).map((m) => `${m.kind}/${m.metadata.name}`);
        installedObjects[arch] = objects;
        const live = JSON.parse(await kubectlOk(ctx, ['get', ...objects, '-o', 'json'])) as {
          items: { kind: string; metadata: { name: string; annotations?: Record<string, string> } }[];
        };
        const foreign = live.items
          .filter((o) => o.metadata.annotations?.['meta.helm.sh/release-name'] !== POOLS[arch].release)
          .map((o) => `${o.kind}/${o.metadata.name}`);
        assert.equal(live.items.length, objects.length, `${POOLS[arch].release}: objects missing from the API`);
        assert.deepEqual(foreign, [], `objects of ${POOLS[arch].release} owned by another release`);
      }
      const shared = installedObjects.amd64.filter((o) => installedObjects.arm64.includes(o));
      assert.deepEqual(shared, [], 'objects both releases install');
      for (const kind of RELEASE_KINDS)
        for (const arch of ARCHS)
          assert.ok(
            installedObjects[arch].some((o) => o.startsWith(`${kind}/`)),
            `release ${POOLS[arch].release} installed no ${kind}: ${installedObjects[arch].join(', ')}`,
          );

      // Each release's gateways elect their own leader in their own Lease and report in their own Leases.
      const leaseDeadline = Date.now() + 90_000;
      for (;;) {
        const leases = JSON.parse(await kubectlOk(ctx, ['get', 'leases', '-o', 'json'])) as {
          items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[];
        };
        const pods = JSON.parse(
          await kubectlOk(ctx, ['get', 'pods', '-l', 'app.kubernetes.io/component=gateway', '-o', 'json']),
        ) as { items: PodInfo[] };
        const podsOf = (arch: Arch) =>
          pods.items
            .filter((p) => p.metadata.labels?.['app.kubernetes.io/instance'] === POOLS[arch].release)
            .map((p) => p.metadata.name);
        const problems = ARCHS.flatMap((arch) => {
          const holder = leases.items.find((l) => l.metadata.name === POOLS[arch].leaderLease)?.spec?.holderIdentity;
          const reports = leases.items.filter((l) => l.metadata.name.startsWith(`${POOLS[arch].leaderLease}-`));
          return [
            ...(holder && podsOf(arch).includes(holder)
              ? []
              : [
                  `Lease ${POOLS[arch].leaderLease} held by ${holder ?? 'nobody'}, not a pod of ${POOLS[arch].release}`,
                ]),
            ...podsOf(arch)
              .filter((pod) => !reports.some((l) => l.metadata.name === `${POOLS[arch].leaderLease}-${pod}`))
              .map((pod) => `no report Lease ${POOLS[arch].leaderLease}-${pod}`),
          ];
        });
        if (problems.length === 0) break;
        assert.ok(Date.now() < leaseDeadline, `after 90s: ${problems.join('; ')}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }

      const address = async (arch: Arch) => {
        const service = JSON.parse(await kubectlOk(ctx, ['get', 'service', POOLS[arch].gateway, '-o', 'json'])) as {
          spec: { clusterIP: string; ports: { name: string; port: number }[] };
        };
        return `tcp://${service.spec.clusterIP}:${service.spec.ports.find((p) => p.name === 'buildkit')?.port ?? 0}`;
      };
      const addresses = { amd64: await address('amd64'), arm64: await address('arm64') };
      const wokeSince = (since: number) => ({
        amd64: transitionsFromZero(watches.amd64, since),
        arm64: transitionsFromZero(watches.arm64, since),
      });
      const atZero = (arch: Arch) => watches[arch].replicas === 0 && watches[arch].readyReplicas === 0;
      const zeroTimeout = (idleTimeoutS + 180) * 1000;
      const bothAtZero = (what: string) => ctx.timeline.until(what, () => ARCHS.every(atZero), zeroTimeout);

      // One builder with a node per pool, each declaring its platform; and the same two gateways as nodes
      // without --platform. Creating a node dials it, so the pools wake once here and go back to zero.
      const create = async (builder: string, arch: Arch, platform: boolean) => {
        const made = await buildx(
          [
            'create',
            ...(arch === 'arm64' ? ['--append'] : []),
            '--name',
            builder,
            '--driver',
            'remote',
            ...(platform ? ['--platform', `linux/${arch}`] : []),
            addresses[arch],
          ],
          env,
        );
        assert.equal(made.code, 0, `buildx create ${builder} (${arch}): ${made.output.trim()}`);
        if (!builders.includes(builder)) builders.push(builder);
      };
      let t0 = ctx.timeline.now();
      for (const arch of ARCHS) await create('multi-arch', arch, true);
      for (const arch of ARCHS) await create('unpinned', arch, false);
      const createWoke = wokeSince(t0);
      ctx.timeline.mark(`buildx create of both builders done: ${woke(createWoke)}`);
      await bothAtZero('both pools at 0 before the builds');

      const build = (builder: string, platforms: string, output: string) =>
        buildx(
          ['build', '--builder', builder, '--progress', 'plain', '--platform', platforms, '--output', output, dir],
          env,
        );
      const builderNodes = async () => {
        const pods = JSON.parse(await kubectlOk(ctx, ['get', 'pods', '-o', 'json'])) as { items: PodInfo[] };
        return Object.fromEntries(
          ARCHS.map((arch) => [
            arch,
            pods.items
              .filter((p) => p.metadata.name.startsWith(`${POOLS[arch].statefulSet}-`))
              .map((p) => `${p.metadata.name} on ${p.spec.nodeName ?? 'no node'}`),
          ]),
        ) as Record<Arch, string[]>;
      };

      // One platform: buildx dials only the node declared for it.
      t0 = ctx.timeline.now();
      const single = await build('multi-arch', 'linux/amd64', `type=local,dest=${path.join(dir, 'out-amd64')}`);
      assert.equal(single.code, 0, `buildx build --platform linux/amd64: ${tail(single)}`);
      const singleWoke = wokeSince(t0);
      ctx.timeline.mark(`amd64 build done: ${woke(singleWoke)}`);
      assert.equal(await readFile(path.join(dir, 'out-amd64', 'hello.txt'), 'utf8'), marker, 'amd64 build output');
      assert.ok(
        watches.amd64.replicasSince(t0).some((n) => n > 0),
        `the amd64 pool did not wake: ${singleWoke.amd64}`,
      );
      assert.ok(
        watches.arm64.replicasSince(t0).every((n) => n === 0) && watches.arm64.replicas === 0,
        `an amd64 build woke the arm64 pool: ${singleWoke.arm64}`,
      );
      await bothAtZero('both pools at 0 before the two-platform build');

      // Both platforms: each node builds its own, each pool wakes on its own nodes.
      t0 = ctx.timeline.now();
      // buildx exports a build across nodes as local files (or pushes it); an OCI layout it refuses for now.
      const out = path.join(dir, 'out-multi');
      const multi = await build('multi-arch', 'linux/amd64,linux/arm64', `type=local,dest=${out}`);
      const doneAt = ctx.timeline.now();
      assert.equal(multi.code, 0, `buildx build --platform linux/amd64,linux/arm64: ${tail(multi)}`);
      const placed = await builderNodes();
      const multiWoke = wokeSince(t0);
      ctx.timeline.mark(`two-platform build done: ${woke(multiWoke)}`);
      for (const arch of ARCHS)
        assert.ok(
          watches[arch].replicasSince(t0).some((n) => n > 0),
          `the ${arch} pool did not wake: ${multiWoke[arch]}`,
        );
      assert.ok(
        placed.arm64.length > 0 && placed.arm64.every((p) => p.endsWith(` on ${armNode?.name ?? ''}`)),
        `the arm64 builders are not on the arm64 node ${armNode.name}: ${placed.arm64.join(', ') || 'none left'}`,
      );
      assert.ok(
        placed.amd64.length > 0 && placed.amd64.every((p) => !p.endsWith(` on ${armNode?.name ?? ''}`)),
        `the amd64 builders are not on an amd64 node: ${placed.amd64.join(', ') || 'none left'}`,
      );
      // One directory per platform, each with the file that was built.
      const platforms = (await readdir(out)).sort();
      assert.deepEqual(
        platforms,
        ['linux_amd64', 'linux_arm64'],
        'the output does not carry exactly the two platforms',
      );
      for (const platform of platforms)
        assert.equal(
          await readFile(path.join(out, platform, 'hello.txt'), 'utf8'),
          marker,
          `${platform}/hello.txt is not the file built`,
        );
      const zeroAt = await bothAtZero('both pools back to 0 after the two-platform build');

      // Nodes without --platform: buildx asks every node for its platforms, so one platform wakes both pools.
      t0 = ctx.timeline.now();
      const unpinned = await build('unpinned', 'linux/amd64', `type=local,dest=${path.join(dir, 'out-unpinned')}`);
      assert.equal(unpinned.code, 0, `buildx build on nodes without --platform: ${tail(unpinned)}`);
      const unpinnedWoke = wokeSince(t0);
      ctx.timeline.mark(`amd64 build on nodes without --platform done: ${woke(unpinnedWoke)}`);
      for (const arch of ARCHS)
        assert.ok(
          watches[arch].replicasSince(t0).some((n) => n > 0),
          `nodes without --platform: the ${arch} pool did not wake for an amd64 build (${unpinnedWoke[arch]})`,
        );
      const finalZeroAt = await bothAtZero('both pools back to 0 at the end');

      ctx.figures.set(
        'multi-arch: `--platform linux/amd64,linux/arm64` build from 0 (both pools woken)',
        seconds(multi.ms),
      );
      ctx.figures.set('multi-arch: `--platform linux/amd64` build, replicas per pool', woke(singleWoke));
      ctx.figures.set('multi-arch: two-platform build, replicas per pool', woke(multiWoke));
      ctx.figures.set(
        'multi-arch: two-platform build, builders',
        `${placed.amd64.join(', ')}; ${placed.arm64.join(', ')}`,
      );
      ctx.figures.set('multi-arch: nodes without `--platform`, amd64 build, replicas per pool', woke(unpinnedWoke));
      ctx.figures.set('multi-arch: `buildx create` of four nodes (two per pool), replicas per pool', woke(createWoke));
      ctx.figures.set(
        'multi-arch: two-platform build done to both pools at 0',
        `${seconds(zeroAt - doneAt)} (idle timeout ${idleTimeoutS}s)`,
      );
      const errors = await cleanup();
      assert.deepEqual(errors, [], 'cleaning up');
      return (
        `amd64 build ${seconds(single.ms)}: ${woke(singleWoke)}; two-platform build from 0 ${seconds(multi.ms)}: ${woke(multiWoke)} ` +
        `(${[...placed.amd64, ...placed.arm64].join(', ')}), output linux_amd64/ + linux_arm64/, files match; ` +
        `unpinned nodes: ${woke(unpinnedWoke)}; both at 0 ${seconds(finalZeroAt - t0)} after the last build started; releases uninstalled`
      );
    } finally {
      if (!cleanedUp)
        for (const message of await cleanup())
          ctx.diagnostics.push({ level: 'warning', title: 'e2e multi-arch-pools cleanup', message });
    }
  },
};
