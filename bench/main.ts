// npm run bench [-- --json] [-- --runs N]; npm run bench:short (CI). Installs HAProxy and iperf3 when
// missing, brings up the local cluster (its own name, "bench", unless BKA_CLUSTER_NAME is set), then runs
// bench/suite.ts inside the cluster's network namespace. Exits non-zero only when a run fails.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const env = { ...process.env, BKA_CLUSTER_NAME: process.env['BKA_CLUSTER_NAME'] ?? 'bench' };
const step = (command: string, argv: string[]) => {
  const r = spawnSync(command, argv, { stdio: 'inherit', env, cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const cli = join(root, 'test', 'cluster', 'cli.ts');
step('bash', [join(root, 'bench', 'install-tools.sh')]);
step(process.execPath, [cli, 'up']);
step(process.execPath, [cli, 'exec', '--', process.execPath, join(root, 'bench', 'suite.ts'), ...process.argv.slice(2)]);
