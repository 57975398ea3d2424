// The container image, checked without a container engine: the build context holds what the Dockerfile
// copies (and nothing built on the host), the final stage's layout starts the gateway from production
// dependencies alone, and the image's user, entry point and ports are the ones the manifests rely on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { deployment, gatewayContainer } from './contract.ts';
import { KUSTOMIZE_DIR, kustomize, REPO_ROOT } from './tools.ts';

const execFileAsync = promisify(execFile);

interface Instruction {
  stage: number;
  op: string;
  args: string;
}

/** Dockerfile instructions with their stage index (continuation lines joined, comments dropped). */
function instructions(dockerfile: string): Instruction[] {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  let stage = -1;
  const out: Instruction[] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match?.[1] || line.trim().startsWith('#')) continue;
    const op = match[1].toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ stage, op, args: (match[2] ?? '').trim() });
  }
  return out;
}

/** Docker's .dockerignore rules: last matching pattern wins, `!` re-includes, a match on a parent counts. */
function makeIgnoreMatcher(dockerignore: string): (file: string) => boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize(negate ? l.slice(1) : l).replace(/\/$/, '');
      const source = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  return (file) => {
    const parts = file.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const rule of rules) if (candidates.some((c) => rule.regex.test(c))) ignored = !rule.negate;
    return ignored;
  };
}

describe('container image', () => {
  let steps: Instruction[];
  let isIgnored: (file: string) => boolean;
  let finalStage: number;

  before(async () => {
    steps = instructions(await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
    isIgnored = makeIgnoreMatcher(await readFile(path.join(REPO_ROOT, '.dockerignore'), 'utf8'));
    finalStage = Math.max(...steps.map((s) => s.stage));
  });

  it('sends the build every file the Dockerfile copies from the context', () => {
    const copied = steps
      .filter((s) => s.op === 'COPY' && !s.args.startsWith('--from'))
      .flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    assert.ok(copied.length > 0);
    for (const source of copied)
      assert.equal(isIgnored(source), false, `${source} is copied but excluded by .dockerignore`);
    assert.equal(isIgnored('src/main.ts'), false);
  });

  it('keeps host builds, tests, secrets and VCS data out of the build context', () => {
    for (const file of [
      'node_modules/pino/package.json',
      'dist/main.js',
      '.git/HEAD',
      'src/config.test.ts',
      'ci-report/REPORT.md',
      '.artifacts/x',
      'charts/buildkitd-autoscaler/values.yaml',
      '.npmrc',
      '.env',
    ]) {
      assert.equal(isIgnored(file), true, `${file} would be sent to the image build`);
    }
  });

  it('starts the package entry point as a non-root numeric user the manifests declare', async () => {
    const final = steps.filter((s) => s.stage === finalStage);
    const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    const entrypoint = final.find((s) => s.op === 'ENTRYPOINT');
    assert.deepEqual(JSON.parse(entrypoint?.args ?? 'null'), ['node', pkg.bin['buildkitd-autoscaler']]);

    // runAsNonRoot can only be verified by the kubelet for a numeric USER.
    const user = final.findLast((s) => s.op === 'USER')?.args ?? '';
    assert.match(user, /^[1-9][0-9]*(:[0-9]+)?$/);
    const docs = await kustomize(KUSTOMIZE_DIR);
    const podSecurity = deployment(docs).spec?.template.spec?.securityContext;
    assert.equal(`${podSecurity?.runAsUser}:${podSecurity?.runAsGroup}`, user);

    const exposed = final
      .filter((s) => s.op === 'EXPOSE')
      .flatMap((s) => s.args.split(/\s+/))
      .map(Number)
      .sort();
    assert.deepEqual(exposed, (gatewayContainer(docs).ports ?? []).map((p) => p.containerPort).sort());
  });

  describe('the final stage assembled as the Dockerfile does', () => {
    let app: string;
    before(async () => {
      // Same steps as the deps and build stages: npm ci --omit=dev, tsc to dist/, package.json beside them.
      app = await mkdtemp(path.join(tmpdir(), 'bka-image-'));
      await cp(path.join(REPO_ROOT, 'package.json'), path.join(app, 'package.json'));
      await cp(path.join(REPO_ROOT, 'package-lock.json'), path.join(app, 'package-lock.json'));
      await execFileAsync(
        'npm',
        ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
        { cwd: app },
      );
      await execFileAsync(
        process.execPath,
        [
          path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'),
          '-p',
          'tsconfig.build.json',
          '--outDir',
          path.join(app, 'dist'),
        ],
        {
          cwd: REPO_ROOT,
        },
      );
      await rm(path.join(app, 'package-lock.json'));
    });
    after(async () => {
      if (app) await rm(app, { recursive: true, force: true });
    });

    it('holds no development tools and no tests', async () => {
      const modules = await readdir(path.join(app, 'node_modules'));
      for (const devOnly of ['typescript', 'eslint', 'typescript-eslint', 'node'])
        assert.ok(!modules.includes(devOnly), `${devOnly} is in the image`);
      const dist = await readdir(path.join(app, 'dist'), { recursive: true });
      assert.ok(dist.includes('main.js'));
      assert.deepEqual(
        dist.filter((f) => f.endsWith('.test.js')),
        [],
      );
    });

    it('loads every module of the gateway from production dependencies and reads its configuration', async () => {
      const { stdout } = await execFileAsync(process.execPath, ['dist/main.js', '--print-config'], {
        cwd: app,
        env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', LOG_LEVEL: 'warn' },
      });
      const config = JSON.parse(stdout) as Record<string, { env: string; value: unknown; source: string }>;
      assert.equal(Object.values(config).find((s) => s.env === 'LOG_LEVEL')?.value, 'warn');
    });

    it('exits 2 naming the variable when a setting is invalid, as a crash-looping pod would show', async () => {
      const result = await execFileAsync(process.execPath, ['dist/main.js'], {
        cwd: app,
        env: { PATH: process.env.PATH ?? '', PROXY_MAX_PENDING: 'lots' },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (error: unknown) => error as { code: number; stderr: string },
      );
      assert.equal(result.code, 2);
      assert.match(result.stderr, /PROXY_MAX_PENDING/);
    });
  });
});
