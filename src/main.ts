#!/usr/bin/env node
import { CommanderError } from 'commander';
import { describeConfig, loadConfig, type LoadedConfig } from './config.ts';
import { ConfigError, ErrorCode, GatewayError } from './errors.ts';
import { Gateway } from './gateway.ts';
import { loadKubeConfig } from './kube/client.ts';
import { createLogger } from './log.ts';

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

async function main(): Promise<void> {
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
  const gateway = new Gateway({ config, kubeConfig, log });
  // Node exits on an unhandled rejection, which would cut every spliced build: log it with a code, count it, go on.
  process.on('unhandledRejection', (reason) => gateway.reportInternalError('unhandled promise rejection', reason));
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error, code: ErrorCode.Internal }, 'uncaught exception');
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    gateway.shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error, code: ErrorCode.Internal }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await gateway.start();
  } catch (error) {
    if (error instanceof GatewayError) {
      log.fatal({ code: error.code }, error.message);
      process.exit(1);
    }
    throw error;
  }
}

await main();
