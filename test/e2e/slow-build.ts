// A real build that streams through the gateway for as long as its client takes to read it: random content
// COPYed FROM scratch, the output read as a tar at HA_BUILD_BYTES_PER_SECOND, checked by sha256 at the end.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runOk } from '../support/command.ts';
import type { Context } from './scenarios/context.ts';

/** Writes `bytes` of random data to file in 1 MiB pieces; returns its sha256. */
export async function randomFile(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  for (let left = bytes; left > 0; left -= 2 ** 20) {
    const chunk = randomBytes(Math.min(left, 2 ** 20));
    hash.update(chunk);
    chunks.push(chunk);
  }
  await writeFile(file, chunks);
  return hash.digest('hex');
}

/**
 * A build whose output the client reads at `bytesPerSecond` (`--output type=tar,dest=-`): buildkitd's
 * export is paced by flow control through the gateway, so the build's one connection streams for as
 * long as the client takes, without a registry or a RUN step. Resolves when buildctl exits.
 */
export function slowTarBuild(
  addr: string,
  dir: string,
  tarFile: string,
  bytesPerSecond: number,
  timeoutS: number,
): Promise<{ code: number; stderr: string }> {
  const child = spawn(
    'buildctl',
    [
      '--addr',
      addr,
      '--timeout',
      String(timeoutS),
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${dir}`,
      '--local',
      `dockerfile=${dir}`,
      '--output',
      'type=tar,dest=-',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<number>((resolve) => {
    child.on('error', (error) => {
      stderr += `cannot run buildctl: ${error.message}`;
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const reading = (async () => {
    const out = createWriteStream(tarFile);
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      if (!out.write(chunk)) await once(out, 'drain');
      await new Promise((resolve) => setTimeout(resolve, (chunk.length / bytesPerSecond) * 1000));
    }
    out.end();
    await once(out, 'finish');
  })();
  return Promise.all([exited, reading]).then(([code]) => ({ code, stderr }));
}

/** How fast the HA scenarios' client reads the build output: slow enough to outlast the idle timeout. */
export const HA_BUILD_BYTES_PER_SECOND = 2 * 2 ** 20;
/** The gateway's drain before SHUTDOWN_GRACE_PERIOD became 1h: the HA builds outlast it after the disruption. */
export const OLD_SHUTDOWN_GRACE_S = 30;
export interface SlowBuild {
  bytes: number;
  startedAt: number;
  /** How the build ended, once buildctl exited; undefined while it runs. */
  ended(): string | undefined;
  /** buildctl's exit: its code, when (timeline time) and, on failure, its last lines. */
  done: Promise<{ code: number; doneAt: number; error: string }>;
  /** Throws unless the tar the client read holds exactly the file that was built. */
  verifyOutput(): Promise<void>;
}

/** Starts a build in `dir` (a fresh directory) whose output takes `readSeconds` to read. */
export async function startSlowBuild(ctx: Context, addr: string, dir: string, readSeconds: number): Promise<SlowBuild> {
  const bytes = HA_BUILD_BYTES_PER_SECOND * readSeconds;
  const sha = await randomFile(path.join(dir, 'big.bin'), bytes);
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY big.bin /big.bin\n');
  const tarFile = path.join(dir, 'out.tar');
  let ended: string | undefined;
  const startedAt = ctx.timeline.now();
  const done = slowTarBuild(addr, dir, tarFile, HA_BUILD_BYTES_PER_SECOND, ctx.settings.readyWaitS + 30).then((r) => {
    const error = r.code === 0 ? '' : `: exit ${r.code}, ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`;
    ended = `exit${error}`;
    return { code: r.code, doneAt: ctx.timeline.now(), error };
  });
  return {
    bytes,
    startedAt,
    ended: () => ended,
    done,
    async verifyOutput() {
      const extracted = path.join(dir, 'out');
      await mkdir(extracted);
      await runOk('tar', ['-xf', tarFile, '-C', extracted]);
      const out = createHash('sha256')
        .update(await readFile(path.join(extracted, 'big.bin')))
        .digest('hex');
      assert.equal(out, sha, 'the build output differs from the build context');
    },
  };
}
