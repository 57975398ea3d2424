// The docker buildx client run standalone (no Docker daemon): its remote driver talks to buildkitd through
// the gateway. BUILDX_CONFIG in `env` keeps its builder list out of the user's home.
import { runCombined } from './command.ts';

export interface BuildxResult {
  code: number | null;
  output: string;
  /** Wall time of the command, for the reports (never a pass/fail threshold). */
  ms: number;
}

export async function buildx(args: string[], env: NodeJS.ProcessEnv): Promise<BuildxResult> {
  const started = performance.now();
  const result = await runCombined('buildx', args, { env });
  return { ...result, ms: Math.round(performance.now() - started) };
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
