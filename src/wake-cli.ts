import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { boolean } from './config-values.ts';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { ConfigError } from './errors.ts';
import { maxWakeForMs, type WakeStatusJson } from './http/wake-endpoint.ts';

/** `buildkitd-autoscaler wake`: asks a gateway's ops port for builders now; no Kubernetes credentials needed. */
export interface WakeCliOptions {
  /** The gateway's ops server (metrics port), e.g. http://gateway:9090. */
  url: URL;
  replicas: number | undefined;
  forMs: number | undefined;
  wait: boolean;
  timeoutMs: number;
}

const pollMs = 500;

/** Each flag's environment variable; as for the gateway, a non-empty one wins over the flag (a CronJob sets env). */
export const wakeEnv = {
  url: 'WAKE_URL',
  replicas: 'WAKE_REPLICAS',
  for: 'WAKE_FOR',
  wait: 'WAKE_WAIT',
  timeout: 'WAKE_TIMEOUT',
} as const;

const defaultTimeoutMs = 5 * 60_000;

/** Throws ConfigError (one line) on bad input; help is printed by commander and surfaces as a CommanderError. */
export function parseWakeArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): WakeCliOptions {
  const parsers = {
    url: parseUrl,
    replicas: parseReplicas,
    for: parseFor,
    wait: parseWait,
    timeout: parsePositiveDuration('--timeout'),
  } satisfies Record<keyof typeof wakeEnv, (text: string) => unknown>;
  const program = new Command()
    .name('buildkitd-autoscaler wake')
    .description(
      'Wake buildkitd before a build: POST /wake on the gateway ops port, optionally wait until a builder accepts ' +
        'connections.\nEach flag has an environment variable, which wins over the flag when set.',
    )
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (text) => process.stdout.write(text) })
    .allowExcessArguments(false)
    .addOption(
      new Option(
        '--url <url>',
        `the gateway's ops port (not the proxy port), e.g. http://buildkitd-autoscaler:9090 (required; env ${wakeEnv.url})`,
      ).argParser(parsers.url),
    )
    .addOption(
      new Option(
        '--replicas <n>',
        `builders to wake, 1 to the gateway's --max-replicas (env ${wakeEnv.replicas}; default 1)`,
      ).argParser(parsers.replicas),
    )
    .addOption(
      new Option(
        '--for <duration>',
        `keep them this long without connections, Go duration up to ${formatGoDuration(maxWakeForMs)} (env ${wakeEnv.for}; default the gateway's idle timeout)`,
      ).argParser(parsers.for),
    )
    .addOption(
      new Option(
        '--wait',
        `return once the builders accept connections (exit 0), or exit 1 at --timeout (env ${wakeEnv.wait}: true or false)`,
      ).default(false),
    )
    .addOption(
      new Option('--timeout <duration>', `how long --wait waits, Go duration (env ${wakeEnv.timeout})`)
        .argParser(parsers.timeout)
        .default(defaultTimeoutMs, formatGoDuration(defaultTimeoutMs)),
    );
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.help' ||
        error.code === 'commander.version'
      )
        throw error;
      throw new ConfigError(error.message.replace(/^error: /, '').split('\n')[0] ?? error.message);
    }
    throw error;
  }
  const o = program.opts<{ url?: URL; replicas?: number; for?: number; wait: boolean; timeout: number }>();
  for (const key of Object.keys(wakeEnv) as (keyof typeof wakeEnv)[]) {
    const raw = env[wakeEnv[key]];
    if (raw === undefined || raw === '') continue;
    try {
      (o as Record<string, unknown>)[key] = parsers[key](raw);
    } catch (error) {
      throw new ConfigError(
        `invalid value ${JSON.stringify(raw)} for --${key} / ${wakeEnv[key]} (from env): ${(error as Error).message}`,
      );
    }
  }
  if (o.url === undefined)
    throw new ConfigError(
      `missing --url / ${wakeEnv.url}: the gateway's ops port, e.g. http://buildkitd-autoscaler:9090`,
    );
  return { url: o.url, replicas: o.replicas, forMs: o.for, wait: o.wait, timeoutMs: o.timeout };
}

export interface WakeCliIo {
  out: (line: string) => void;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

/** Returns the exit code: 0 asked (and with --wait: the builders accept connections), 1 otherwise, with one line why. */
export async function runWake(options: WakeCliOptions, io: WakeCliIo): Promise<{ code: 0 | 1; line: string }> {
  const started = io.now();
  const deadline = started + options.timeoutMs;
  const query = new URLSearchParams();
  if (options.replicas !== undefined) query.set('replicas', String(options.replicas));
  if (options.forMs !== undefined) query.set('for', formatGoDuration(options.forMs));
  const wakeUrl = endpoint(options.url, query);
  let accepted: { replicas: number; for: string; until: string };
  try {
    const response = await fetch(wakeUrl, {
      method: 'POST',
      signal: AbortSignal.timeout(Math.min(options.timeoutMs, 30_000)),
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.status !== 202) {
      const code = typeof body['code'] === 'string' ? ` (${body['code']})` : '';
      return {
        code: 1,
        line: `POST ${wakeUrl.href} answered ${response.status}: ${typeof body['error'] === 'string' ? body['error'] : response.statusText}${code}`,
      };
    }
    accepted = body as typeof accepted;
  } catch (error) {
    return { code: 1, line: `cannot reach ${wakeUrl.href}: ${describe(error)}` };
  }
  io.out(`wake requested: at least ${accepted.replicas} builders for ${accepted.for}, until ${accepted.until}`);
  if (!options.wait) return { code: 0, line: '' };

  const wanted = accepted.replicas;
  let last = 'no answer yet';
  for (;;) {
    try {
      const response = await fetch(endpoint(options.url), {
        signal: AbortSignal.timeout(Math.max(1000, Math.min(10_000, deadline - io.now()))),
      });
      const status = (await response.json()) as WakeStatusJson;
      if (status.readyBuilders >= wanted) {
        return {
          code: 0,
          line: `${status.readyBuilders} builders accept connections after ${formatGoDuration(Math.round((io.now() - started) / 100) * 100)}`,
        };
      }
      last =
        `${status.readyBuilders} of ${wanted} builders accept connections` +
        (status.failure ? `; ${status.failure.code}: ${status.failure.message}` : '');
    } catch (error) {
      // The gateway may be restarting or another replica answering: keep asking until the deadline.
      last = `cannot reach ${options.url.href}: ${describe(error)}`;
    }
    if (io.now() + pollMs > deadline)
      return { code: 1, line: `no builder ready within ${formatGoDuration(options.timeoutMs)}: ${last}` };
    await io.sleep(pollMs);
  }
}

/** `wake` relative to the given URL, so a path prefix in front of the ops server is kept. */
function endpoint(base: URL, query?: URLSearchParams): URL {
  const url = new URL('wake', base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  if (query) url.search = query.toString();
  return url;
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${JSON.stringify(text)} (example: http://buildkitd-autoscaler:9090)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError(`not an http(s) URL: ${JSON.stringify(text)}`);
  if (url.search || url.hash)
    throw new InvalidArgumentError(`give the ops server's base URL without a query: ${JSON.stringify(text)}`);
  return url;
}

function parseReplicas(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new InvalidArgumentError(`must be a whole number of at least 1, not ${JSON.stringify(text)}`);
  return Number(text);
}

function parseWait(text: string): boolean {
  try {
    return boolean(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function parseFor(text: string): number {
  const ms = parsePositiveDuration('--for')(text);
  if (ms > maxWakeForMs)
    throw new InvalidArgumentError(
      `at most ${formatGoDuration(maxWakeForMs)}, not ${JSON.stringify(text)} (repeat the wake to keep builders longer)`,
    );
  return ms;
}

function parsePositiveDuration(flag: string): (text: string) => number {
  return (text) => {
    let ms: number;
    try {
      ms = parseGoDuration(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
    if (ms <= 0) throw new InvalidArgumentError(`${flag} must be positive, not ${JSON.stringify(text)}`);
    return ms;
  };
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
