// Running a command to completion from a test: its output and exit code, or an error naming it when it failed.
import { spawn, type SpawnOptions } from 'node:child_process';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to completion, capturing output. Never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const withInput = opts.input !== undefined;
    const child = spawn(cmd, args, { ...opts, stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) }));
    if (withInput && child.stdin) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Like run() but throws with the command's stderr on failure. */
export async function runOk(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { input?: string } = {},
): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface CombinedResult {
  code: number | null;
  output: string;
}

/**
 * Runs a command to completion with stdout and stderr in one string in arrival order, as its log reads on a
 * terminal (build clients interleave results and progress). A command that cannot start has why in the output.
 */
export function runCombined(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Promise<CombinedResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (error) => (output += `spawn ${cmd}: ${error.message}\n`));
    child.on('close', (code) => resolve({ code, output }));
  });
}
