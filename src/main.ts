#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildInfo, describeBuild } from './build-info.ts';
import { describeConfig, loadConfig, type LoadedConfig } from './config-load.ts';
import { ConfigError, ErrorCode, GatewayError } from './errors.ts';
import { Gateway } from './gateway.ts';
import { loadKubeConfig } from './kube/client.ts';
import { createLogger } from './log.ts';
import { parseWakeArgs, runWake } from './wake-cli.ts';

/** 3: another process runs with this identity (BKA_IDENTITY_CONFLICT); 1: any other failure to start. */
function exitCodeOf(error: GatewayError): number {
  return error.code === ErrorCode.IdentityConflict ? 3 : 1;
}

function exitWithConfigError(error: ConfigError): never {
  // One line, no stack: users read this in `kubectl logs` of a crash-looping pod.
  process.stderr.write(`buildkitd-autoscaler: ${error.message}\n`);
  process.exit(2);
}

function readConfig(): LoadedConfig {
  try {
    return loadConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    if (error instanceof ConfigError) exitWithConfigError(error);
    throw error;
  }
}

/** `buildkitd-autoscaler wake ...`: a client of the ops port, dispatched before the gateway's configuration is read. */
async function wake(argv: readonly string[]): Promise<never> {
  let options;
  try {
    options = parseWakeArgs(argv, process.env);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    if (error instanceof ConfigError) {
      process.stderr.write(`buildkitd-autoscaler wake: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const result = await runWake(options, {
    out: (line) => process.stdout.write(`${line}\n`),
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  });
  if (result.line)
    (result.code === 0 ? process.stdout : process.stderr).write(
      `${result.code === 0 ? '' : 'buildkitd-autoscaler wake: '}${result.line}\n`,
    );
  process.exit(result.code);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'wake') await wake(process.argv.slice(3));
  const loaded = readConfig();
  if (loaded.printConfig) {
    process.stdout.write(`${JSON.stringify(describeConfig(loaded), null, 2)}\n`);
    return;
  }
  const { config } = loaded;
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig(config.kubeconfig);
  } catch (error) {
    if (error instanceof ConfigError) exitWithConfigError(error);
    throw error;
  }
  const log = createLogger(config.logLevel);
  log.info(
    { event: 'starting', version: buildInfo.version, revision: buildInfo.revision },
    `${describeBuild()} starting`,
  );
  let stop: (signal: string, exitCode?: number) => void = () => undefined;
  const gateway = new Gateway({
    config,
    kubeConfig,
    log,
    onFatal: (error) => {
      log.fatal({ code: error.code }, `${error.message}; draining and exiting with code ${exitCodeOf(error)}`);
      stop(error.code, exitCodeOf(error));
    },
  });
  // Node exits on an unhandled rejection, which would cut every spliced build: log it with a code, count it, go on.
  process.on('unhandledRejection', (reason) => gateway.reportInternalError('unhandled promise rejection', reason));
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error, code: ErrorCode.Internal }, 'uncaught exception');
    process.exit(1);
  });
  let stopping = false;
  stop = (signal, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    gateway.shutdown(signal).then(
      () => process.exit(exitCode),
      (error: unknown) => {
        log.error({ err: error, code: ErrorCode.Internal }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await gateway.start();
  } catch (error) {
    if (error instanceof GatewayError) {
      log.fatal({ code: error.code }, error.message);
      process.exit(exitCodeOf(error));
    }
    throw error;
  }
}

await main();
