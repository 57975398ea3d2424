import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../support/command.ts';
import { type Scenario, access, seconds } from './context.ts';

/** A real build through the gateway: buildctl wakes buildkitd, builds a FROM scratch image offline. */
export const realBuild: Scenario = {
  name: 'real-build',
  promise:
    'buildctl through the gateway at 0 replicas wakes buildkitd and completes a build (gRPC over the spliced connection)',
  async run(ctx) {
    assert.equal(ctx.timeline.replicas, 0, 'precondition: buildkitd at 0');
    const gw = access(ctx);
    const addr = `tcp://${gw.proxy.host}:${gw.proxy.port}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-build-'));
    try {
      const marker = `built through the gateway ${Date.now()}\n`;
      await writeFile(path.join(dir, 'hello.txt'), marker);
      // No `# syntax=` line: the built-in frontend needs nothing from a registry.
      await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
      await mkdir(path.join(dir, 'out'));
      const started = performance.now();
      const timeout = String(ctx.settings.readyWaitS + 30);
      const workers = await run('buildctl', ['--addr', addr, '--timeout', timeout, 'debug', 'workers']);
      assert.equal(workers.code, 0, `buildctl debug workers: ${workers.stderr.trim()}`);
      const woke = performance.now() - started;
      const build = await run('buildctl', [
        '--addr',
        addr,
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
      assert.equal(build.code, 0, `buildctl build: ${build.stderr.trim().split('\n').slice(-5).join(' / ')}`);
      assert.equal(
        await readFile(path.join(dir, 'out', 'hello.txt'), 'utf8'),
        marker,
        'the build output is not the file that was built',
      );
      ctx.served += 2;
      ctx.figures.set('real buildkitd: connect at 0 to `debug workers` answered', seconds(woke));
      ctx.figures.set(
        'real build (FROM scratch + COPY) through the gateway',
        seconds(performance.now() - started - woke),
      );
      return `debug workers answered after ${seconds(woke)} (wake included); build output matches`;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
