// The docker buildx client run standalone (no Docker daemon): its remote driver talks to buildkitd through
// the gateway. BUILDX_CONFIG in `env` keeps its builder list out of the user's home.
import { spawn } from 'node:child_process';

export interface BuildxResult {
  code: number | null;
  output: string;
  /** Wall time of the command, for the reports (never a pass/fail threshold). */
  ms: number;
}

export function buildx(args: string[], env: NodeJS.ProcessEnv): Promise<BuildxResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn('buildx', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (error) => (output += `spawn buildx: ${error.message}\n`));
    child.on('close', (code) => resolve({ code, output, ms: Math.round(performance.now() - started) }));
  });
}

/** `buildx build` of the Dockerfile in `context` with builder `builder`, exported to the directory `dest`. */
export function buildxBuild(
  builder: string,
  context: string,
  dest: string,
  env: NodeJS.ProcessEnv,
): Promise<BuildxResult> {
  return buildx(
    ['build', '--builder', builder, '--progress', 'plain', '--output', `type=local,dest=${dest}`, context],
    env,
  );
}
