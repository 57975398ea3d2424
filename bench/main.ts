// npm run bench [-- --json] [-- --runs N]; npm run bench:short (CI). For JSON alone on stdout:
// npm run --silent bench -- --json. Other flags: --only throughput,latency,rate,memory,churn,cold;
// --runs N (rounds); --gateway-node-options=--cpu-prof; --node-options=... (the gateway and the Node pipe); --gateway-env NAME=VALUE (repeatable). Installs HAProxy, nginx and iperf3 when missing,
// brings up the local cluster (its own name, "bench", unless BKA_CLUSTER_NAME is set), then runs
// bench/suite.ts inside the cluster's network namespace. Exits non-zero only when a run fails, never on a
// threshold. Results: stdout (--json: JSON on stdout, the table on stderr), .artifacts/bench/result.{md,json}.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const env: NodeJS.ProcessEnv = { ...process.env, BKA_CLUSTER_NAME: process.env['BKA_CLUSTER_NAME'] ?? 'bench' };
// Progress of the steps goes to stderr, so that with --json stdout carries only the result.
const step = (command: string, argv: string[]) => {
  const r = spawnSync(command, argv, { stdio: ['ignore', 2, 2], env, cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const cli = join(root, 'test', 'cluster', 'cli.ts');
step('bash', [join(root, 'bench', 'install-tools.sh')]);
// A cluster this run brings up is brought down at the end (BKA_KEEP_CLUSTER=1 keeps it), as in CI.
const wasUp = spawnSync(process.execPath, [cli, 'status'], { stdio: 'ignore', env, cwd: root }).status === 0;
step(process.execPath, [cli, 'up']);
const suite = spawnSync(
  process.execPath,
  [cli, 'exec', '--', process.execPath, join(root, 'bench', 'suite.ts'), ...process.argv.slice(2)],
  { stdio: 'inherit', env, cwd: root },
);
if (!wasUp && env['BKA_KEEP_CLUSTER'] !== '1')
  spawnSync(process.execPath, [cli, 'down'], { stdio: ['ignore', 'ignore', 'inherit'], env, cwd: root });
process.exit(suite.status ?? 1);
