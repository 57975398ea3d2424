// Child processes of the benchmark (proxies, load generators, iperf3): start, collect stdout lines, wait.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../test/support/wait.ts';

const began = performance.now();
/** Progress on stderr, with the seconds since the start so the time each workload takes shows. */
export const say = (text: string) =>
  process.stderr.write(`[bench +${((performance.now() - began) / 1000).toFixed(0)}s] ${text}\n`);

export interface Running {
  child: ChildProcess;
  stdoutLines: string[];
  exited: Promise<number | null>;
}

export function start(
  command: string,
  argv: string[],
  options: { input?: boolean; env?: NodeJS.ProcessEnv } = {},
): Running {
  const child = spawn(command, argv, {
    stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  const stdoutLines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    stdoutLines.push(...parts.filter((l) => l.trim() !== ''));
  });
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = once(child, 'exit').then(([code]) => {
    if (partial.trim()) stdoutLines.push(partial);
    if (code !== 0 && code !== null) say(`${command} ${argv.join(' ')} exited ${String(code)}: ${stderr.trim()}`);
    return code as number | null;
  });
  return { child, stdoutLines, exited };
}

export async function run(command: string, argv: string[]): Promise<string[]> {
  const r = start(command, argv);
  const code = await r.exited;
  if (code !== 0) throw new Error(`${command} ${argv.join(' ')} failed with exit code ${String(code)}`);
  return r.stdoutLines;
}

export async function waitListening(port: number, host = '127.0.0.1'): Promise<void> {
  await waitFor(
    `${host}:${port} listening`,
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host, port });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    20_000,
    50,
  );
}
