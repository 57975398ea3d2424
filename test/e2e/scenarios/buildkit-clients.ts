// BuildKit clients other than plain buildctl, through the shipped gateway and the real buildkitd: the docker
// buildx client (remote driver, standalone) and buildctl against buildkitd with mutual TLS (the shipped
// deploy/kubernetes/buildkitd-mtls patch, certificates made with openssl). They run last in the real suite:
// the mTLS scenario leaves the StatefulSet serving TLS.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../support/command.ts';
import {
  BUILDKITD_TLS_SERVER_NAME,
  buildctlTlsArgs,
  handshakeWithoutClientCert,
  makeBuildkitTls,
} from '../../support/buildkit-tls.ts';
import { buildx, buildxBuild } from '../../support/buildx.ts';
import { type Scenario, access, kubectlOk, seconds, waitForZero } from './context.ts';
import { REPO_ROOT } from '../../support/repo-root.ts';

/** The shipped patch that turns the example StatefulSet to mTLS (its kustomization applies the same file). */
const MTLS_PATCH = path.join(REPO_ROOT, 'deploy/kubernetes/buildkitd-mtls/statefulset-tls.yaml');

/** A build context whose output is one file with a unique line. */
async function buildContext(prefix: string): Promise<{ dir: string; marker: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const marker = `built through the gateway ${Date.now()} ${Math.random().toString(36).slice(2)}\n`;
  await writeFile(path.join(dir, 'hello.txt'), marker);
  // No `# syntax=` line: the built-in frontend needs nothing from a registry.
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
  return { dir, marker };
}

export const buildxRemoteDriver: Scenario = {
  name: 'buildx-remote-driver',
  promise:
    '`docker buildx` with the remote driver (`buildx create --driver remote tcp://<gateway>`) builds through the gateway from 0 replicas and again while warm; the output is the file that was built',
  async run(ctx) {
    const gw = access(ctx);
    const { dir, marker } = await buildContext('bka-e2e-buildx-');
    const env = { ...process.env, BUILDX_CONFIG: path.join(dir, '.buildx'), DOCKER_CONFIG: path.join(dir, '.docker') };
    try {
      await waitForZero(ctx, 'buildkitd at 0 before buildx create');
      const created = await buildx(
        ['create', '--name', 'bka-e2e', '--driver', 'remote', `tcp://${gw.proxy.host}:${gw.proxy.port}`],
        env,
      );
      assert.equal(created.code, 0, `buildx create: ${created.output.trim()}`);
      // `buildx create` reads the builder's status through the gateway: did that wake buildkitd?
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const createWoke = (ctx.timeline.replicas ?? 0) > 0;
      ctx.timeline.mark(`buildx create done; buildkitd ${createWoke ? 'woken by it' : 'still at 0'}`);
      await waitForZero(ctx, 'buildkitd at 0 before the cold buildx build');

      const cold = await buildxBuild('bka-e2e', dir, path.join(dir, 'out-cold'), env);
      assert.equal(cold.code, 0, `buildx build from 0: ${cold.output.trim().split('\n').slice(-5).join(' / ')}`);
      assert.equal(
        await readFile(path.join(dir, 'out-cold', 'hello.txt'), 'utf8'),
        marker,
        'the cold build output is not the file that was built',
      );
      const warm = await buildxBuild('bka-e2e', dir, path.join(dir, 'out-warm'), env);
      assert.equal(warm.code, 0, `buildx build warm: ${warm.output.trim().split('\n').slice(-5).join(' / ')}`);
      assert.equal(
        await readFile(path.join(dir, 'out-warm', 'hello.txt'), 'utf8'),
        marker,
        'the warm build output is not the file that was built',
      );

      // Connect to first answer: `buildx inspect --bootstrap` at 0 returns once buildkitd answered.
      await waitForZero(ctx, 'buildkitd at 0 before buildx inspect --bootstrap');
      const inspect = await buildx(['inspect', '--bootstrap', '--builder', 'bka-e2e'], env);
      assert.equal(inspect.code, 0, `buildx inspect --bootstrap: ${inspect.output.trim()}`);
      assert.match(inspect.output, /Status:\s+running/, 'buildx does not see the builder running');
      ctx.served += 3;
      ctx.figures.set('buildx: build from 0 (FROM scratch + COPY, wake included)', seconds(cold.ms));
      ctx.figures.set('buildx: the same build warm', seconds(warm.ms));
      ctx.figures.set('buildx: `inspect --bootstrap` at 0, connect to first answer', seconds(inspect.ms));
      ctx.figures.set('buildx: `buildx create` wakes buildkitd', createWoke ? 'yes' : 'no');
      return `build from 0 ${seconds(cold.ms)}, warm ${seconds(warm.ms)}, output matches; inspect --bootstrap at 0 answered after ${seconds(inspect.ms)}; buildx create ${createWoke ? 'woke' : 'did not wake'} buildkitd`;
    } finally {
      await buildx(['rm', '--builder', 'bka-e2e'], env);
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const mtlsBuild: Scenario = {
  name: 'mtls-build',
  promise:
    'buildkitd with mutual TLS (deploy/kubernetes/buildkitd-mtls, certificates from a Secret): buildctl with a client certificate builds through the gateway from 0; a client without one is refused by buildkitd itself (TLS passes through the gateway untouched)',
  async run(ctx) {
    const gw = access(ctx);
    const addr = ['--addr', `tcp://${gw.proxy.host}:${gw.proxy.port}`];
    const { dir, marker } = await buildContext('bka-e2e-mtls-');
    try {
      const tls = await makeBuildkitTls(path.join(dir, '.tls'), ctx.namespace);
      await kubectlOk(ctx, ['apply', '-f', '-'], tls.secretYaml('buildkitd-tls'));
      await waitForZero(ctx, 'buildkitd at 0 before it is switched to mTLS');
      await kubectlOk(ctx, ['patch', 'statefulset', 'buildkitd', '--patch-file', MTLS_PATCH]);
      ctx.timeline.mark('buildkitd StatefulSet patched to mTLS (Secret buildkitd-tls)');

      const timeout = String(ctx.settings.readyWaitS + 30);
      const started = performance.now();
      const workers = await run('buildctl', [
        ...addr,
        ...buildctlTlsArgs(tls),
        '--timeout',
        timeout,
        'debug',
        'workers',
      ]);
      assert.equal(workers.code, 0, `buildctl (mTLS) debug workers: ${workers.stderr.trim()}`);
      const woke = performance.now() - started;
      await mkdir(path.join(dir, 'out'));
      const build = await run('buildctl', [
        ...addr,
        ...buildctlTlsArgs(tls),
        '--timeout',
        timeout,
        'build',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${dir}`,
        '--local',
        `dockerfile=${dir}`,
        '--output',
        `type=local,dest=${path.join(dir, 'out')}`,
      ]);
      assert.equal(build.code, 0, `buildctl (mTLS) build: ${build.stderr.trim().split('\n').slice(-5).join(' / ')}`);
      assert.equal(
        await readFile(path.join(dir, 'out', 'hello.txt'), 'utf8'),
        marker,
        'the build output is not the file that was built',
      );

      const handshake = await handshakeWithoutClientCert(gw.proxy.host, gw.proxy.port, tls.caCert);
      assert.equal(
        handshake.peerFingerprint,
        new X509Certificate(await readFile(tls.serverCert)).fingerprint256,
        "the certificate behind the gateway is not buildkitd's",
      );
      assert.match(
        handshake.error ?? '',
        /certificate required|alert number 116/,
        `a TLS client without a certificate was not refused: ${handshake.error ?? 'no error'}`,
      );
      const noCert = await run('buildctl', [
        ...addr,
        '--tlscacert',
        tls.caCert,
        '--tlsservername',
        BUILDKITD_TLS_SERVER_NAME,
        '--timeout',
        '60',
        'debug',
        'workers',
      ]);
      assert.notEqual(noCert.code, 0, 'buildctl without a client certificate was served');
      const refusal = /certificate required|bad certificate/.exec(noCert.stderr)?.[0];
      assert.ok(refusal, `buildctl without a certificate failed for another reason: ${noCert.stderr.trim()}`);
      ctx.served += 2;
      ctx.figures.set('mTLS: connect at 0 to `debug workers` answered', seconds(woke));
      ctx.figures.set('mTLS: client without a certificate', `refused by buildkitd through the gateway (${refusal})`);
      return `debug workers (mTLS) answered after ${seconds(woke)} (wake included); build output matches; buildkitd's own certificate seen through the gateway; without a client certificate: "${refusal}"`;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
