// Reads flags and environment into a Config (env wins, as in the Go tool), checks the settings that
// depend on each other, and describes the result for --print-config.
import { Command, CommanderError, Option } from 'commander';
import { describeBuild } from './build-info.ts';
import { optionDefinitions, type Config, type Source } from './config.ts';
import { formatGoDuration } from './duration.ts';
import { ConfigError } from './errors.ts';

export interface LoadedConfig {
  config: Config;
  sources: Record<keyof Config, Source>;
  printConfig: boolean;
}

/**
 * Reads flags and environment (env wins over flag, as in the Go tool). An empty env var counts as unset,
 * so `value: ""` in a manifest falls back instead of failing. Throws ConfigError with one line.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LoadedConfig {
  const program = new Command()
    .name('buildkitd-autoscaler')
    .description('Scale-to-zero TCP gateway for a buildkitd StatefulSet')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (text) => process.stdout.write(text) })
    .allowExcessArguments(false)
    .option('--print-config', 'print the effective configuration as JSON, with the source of each value, and exit')
    .version(describeBuild(), '--version', 'print the version and the revision it was built from, and exit')
    .addHelpText(
      'after',
      `\nSubcommand:\n  wake [options]  ask a running gateway's ops port for builders now, optionally wait ` +
        `until they accept\n                  connections (buildkitd-autoscaler wake --help)`,
    );
  for (const definition of optionDefinitions) {
    const defaultNote = definition.defaultText === undefined ? '' : ` (default ${definition.defaultText})`;
    program.addOption(
      new Option(`--${definition.flag} <value>`, `${definition.description}; env ${definition.env}${defaultNote}`),
    );
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') throw error;
      throw new ConfigError(error.message.replace(/^error: /, '').split('\n')[0] ?? error.message);
    }
    throw error;
  }
  const flags = program.opts<Record<string, string | boolean | undefined>>();
  const config = {} as Record<keyof Config, unknown>;
  const sources = {} as Record<keyof Config, Source>;
  for (const definition of optionDefinitions) {
    const envValue = env[definition.env];
    const flagValue = flags[camelCase(definition.flag)];
    let raw: string | undefined;
    let source: Source;
    if (envValue !== undefined && envValue !== '') {
      raw = envValue;
      source = 'env';
    } else if (typeof flagValue === 'string') {
      raw = flagValue;
      source = 'flag';
    } else {
      raw = definition.defaultText;
      source = 'default';
    }
    sources[definition.key] = source;
    if (source === 'default' && definition.derivedDefault) continue; // computed below, from the others
    if (raw === undefined) {
      config[definition.key] = undefined;
      continue;
    }
    try {
      config[definition.key] = definition.parse(raw);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(
        `invalid value ${JSON.stringify(raw)} for --${definition.flag} / ${definition.env} (from ${source}): ${reason}`,
      );
    }
  }
  for (const definition of optionDefinitions) {
    const derive = (definition as { derivedDefault?: (c: Config) => unknown }).derivedDefault;
    if (sources[definition.key] === 'default' && derive) config[definition.key] = derive(config as unknown as Config);
  }
  checkLeaderElectionTimings(config as unknown as Config, sources);
  checkPool(config as unknown as Config, sources);
  return { config: config as unknown as Config, sources, printConfig: flags['printConfig'] === true };
}

/** The effective configuration as printed by --print-config: value as a user would write it, and its source. */
export function describeConfig(
  loaded: LoadedConfig,
): Record<string, { flag: string; env: string; value: string | null; source: Source }> {
  const out: Record<string, { flag: string; env: string; value: string | null; source: Source }> = {};
  for (const definition of optionDefinitions) {
    const format = definition.format as (value: unknown) => string | null;
    out[definition.key] = {
      flag: `--${definition.flag}`,
      env: definition.env,
      value: format(loaded.config[definition.key]),
      source: loaded.sources[definition.key],
    };
  }
  return out;
}

const maxLeaseDurationSeconds = 2 ** 31 - 1;

/** client-go's rule: lease duration > renew deadline > 1.2 x retry period, or a healthy leader could lose its Lease. */
function checkLeaderElectionTimings(config: Config, sources: Record<keyof Config, Source>): void {
  const fail = (
    key: 'leaderElectionLeaseDurationMs' | 'leaderElectionRenewDeadlineMs' | 'leaderElectionRetryPeriodMs',
    reason: string,
  ) => {
    const definition = optionDefinitions.find((d) => d.key === key);
    if (!definition) return;
    throw new ConfigError(
      `invalid value ${JSON.stringify(formatGoDuration(config[key]))} for --${definition.flag} / ${definition.env} (from ${sources[key]}): ${reason}`,
    );
  };
  // A Lease holds its duration as whole seconds in an int32: the API server refuses more.
  if (Math.round(config.leaderElectionLeaseDurationMs / 1000) > maxLeaseDurationSeconds) {
    fail(
      'leaderElectionLeaseDurationMs',
      `must be at most ${formatGoDuration(maxLeaseDurationSeconds * 1000)} (a Lease's leaseDurationSeconds is an int32)`,
    );
  }
  if (config.leaderElectionRenewDeadlineMs >= config.leaderElectionLeaseDurationMs) {
    fail(
      'leaderElectionRenewDeadlineMs',
      `must be less than the lease duration (${formatGoDuration(config.leaderElectionLeaseDurationMs)})`,
    );
  }
  if (config.leaderElectionRenewDeadlineMs <= 1.2 * config.leaderElectionRetryPeriodMs) {
    fail(
      'leaderElectionRetryPeriodMs',
      `1.2 x the retry period must be less than the renew deadline (${formatGoDuration(config.leaderElectionRenewDeadlineMs)})`,
    );
  }
}

function checkPool(config: Config, sources: Record<keyof Config, Source>): void {
  const named = (key: keyof Config) => {
    const definition = optionDefinitions.find((d) => d.key === key);
    return `--${definition?.flag ?? key} / ${definition?.env ?? key}`;
  };
  if (config.minReplicas > config.maxReplicas) {
    throw new ConfigError(
      `invalid value "${config.minReplicas}" for ${named('minReplicas')} (from ${sources.minReplicas}): must not exceed --max-replicas (${config.maxReplicas})`,
    );
  }
  if (config.backendDiscovery === 'dns' && config.maxReplicas > 1) {
    // DNS names cannot say which ordinals are ready (Parallel pods become ready in any order) nor when one is gone.
    throw new ConfigError(
      `invalid value "dns" for ${named('backendDiscovery')} (from ${sources.backendDiscovery}): supports one ` +
        `builder only; use endpoints with --max-replicas ${config.maxReplicas}`,
    );
  }
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}
