// Which build runs: `--version`, the first log line and bka_build_info, from the real entry point (dist/main.js).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGateway as run, spawnGateway } from '../support/gateway-process.ts';
import { kubeconfigFile } from '../support/kubeconfig.ts';
import { freePort } from '../support/net.ts';

const root = join(import.meta.dirname, '..', '..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** The revision the bundle was built from: a git commit, or "unknown" where the build had no repository. */
function builtRevision(): string {
  const revision = /\(revision ([0-9a-f]{12}|unknown)\)/.exec(run(['--version']).stdout)?.[1];
  assert.ok(revision, 'a revision in --version');
  return revision;
}

test('--version prints the package version and the revision built from, and exits 0 without reading configuration', () => {
  const { code, stdout, stderr } = run(['--version'], { SCALE_DOWN_IDLE_TIMEOUT: 'not-a-duration' });
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '');
  assert.match(
    stdout,
    new RegExp(`^buildkitd-autoscaler ${version.replaceAll('.', '\\.')} \\(revision ([0-9a-f]{12}|unknown)\\)\\n$`),
  );
  const head = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8' });
  // A bundle built in this checkout names one of its commits (the build may predate the newest commit).
  if (head.status === 0)
    assert.equal(
      spawnSync('git', ['cat-file', '-e', `${builtRevision()}^{commit}`], { cwd: root }).status,
      0,
      'the revision is a commit of this repository',
    );
});

test('--help mentions the wake subcommand; wake --help states each default once and each env var', () => {
  const help = run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /\n\s+wake \[options\]\s+ask a running gateway/);
  assert.match(help.stdout, /--version\s+print the version/);
  const wake = run(['wake', '--help']);
  assert.equal(wake.code, 0);
  assert.equal(wake.stdout.match(/5m0s/g)?.length, 1, wake.stdout);
  assert.doesNotMatch(wake.stdout, /300000/);
  for (const env of ['WAKE_URL', 'WAKE_REPLICAS', 'WAKE_FOR', 'WAKE_WAIT', 'WAKE_TIMEOUT'])
    assert.ok(wake.stdout.replace(/\s+/g, ' ').includes(env), `${env} in wake --help`);
});

test('the first log line and bka_build_info name the version and revision', async (t) => {
  const metricsPort = await freePort();
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfigFile(),
    PROXY_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
  });
  t.after(() => child.kill('SIGKILL'));
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  const revision = builtRevision();
  let metrics = '';
  const end = Date.now() + 15_000;
  while (!metrics.includes('bka_build_info')) {
    assert.ok(Date.now() < end, `no bka_build_info on /metrics; logs:\n${logs}`);
    metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    if (!metrics) await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(
    metrics,
    new RegExp(`^bka_build_info\\{version="${version.replaceAll('.', '\\.')}",revision="${revision}"\\} 1$`, 'm'),
  );
  const first = JSON.parse(logs.split('\n')[0] ?? '') as {
    event?: string;
    version?: string;
    revision?: string;
    msg?: string;
  };
  assert.deepEqual([first.event, first.version, first.revision], ['starting', version, revision]);
  assert.equal(first.msg, `buildkitd-autoscaler ${version} (revision ${revision}) starting`);
});
