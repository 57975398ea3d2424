// A real build that streams through the gateway for as long as its client takes to read it: random content
// COPYed FROM scratch, the output read as a tar at HA_BUILD_BYTES_PER_SECOND, checked by sha256 at the end.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runOk } from '../cluster/common.ts';
import { type Context, HA_BUILD_BYTES_PER_SECOND, randomFile, slowTarBuild } from './scenarios.ts';

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
