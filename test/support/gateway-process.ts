// The gateway's real entry point (dist/main.js, as users run it) started from tests: the process tests, the
// integration harness and the `wake` CLI tests start it the same way, with PATH and only the env they name.
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export const GATEWAY_ENTRY = join(import.meta.dirname, '..', '..', 'dist', 'main.js');

/** A started gateway: no stdin, stdout and stderr piped. */
export type GatewayChild = ChildProcessByStdio<null, Readable, Readable>;

export interface ExitedRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a started process gets: PATH (to find nothing but what a pod would) and `env`. */
function processEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '', ...env };
}

/** Runs the entry point to its exit: flags, `--version`, bad configuration. */
export function runGateway(args: string[], env: Record<string, string> = {}): ExitedRun {
  const result = spawnSync(process.execPath, [GATEWAY_ENTRY, ...args], {
    env: processEnv(env),
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Starts the entry point with piped stdout and stderr; the caller stops it. */
export function spawnGateway(args: string[], env: Record<string, string>): GatewayChild {
  return spawn(process.execPath, [GATEWAY_ENTRY, ...args], { env: processEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `buildkitd-autoscaler wake ...` to its exit, as a CI job does. */
export async function runWakeCli(args: string[], env: Record<string, string> = {}): Promise<ExitedRun> {
  const child = spawnGateway(['wake', ...args], env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
