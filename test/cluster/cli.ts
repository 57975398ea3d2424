// CLI of the local control plane: npm run cluster -- <up|down|status|exec -- cmd...|kubeconfig-sa>
import { spawn } from 'node:child_process';
import path from 'node:path';
import { clusterPaths, inNetns, netnsExists, nsenterArgs, readInfo } from './internal/common.ts';
import { down, health, up, upInner } from './internal/control-plane.ts';
import { execEnv } from './index.ts';

const USAGE = `usage: npm run cluster -- <command> [--name NAME]
  up [--nodes N]     bring the cluster up (idempotent; builds the binaries the first time); N nodes, default 2
                     (BKA_CLUSTER_NODES): pods go to the first node that takes them (cordons, taints, selectors)
  down [--purge]     stop every process, delete every netns (--purge: also remove the state dir)
  status             kubeconfig path, netns, health of each component
  exec [--dns] -- CMD...
                     run CMD inside the cluster netns with KUBECONFIG set and the built binaries first on PATH;
                     --dns: in an own mount namespace (slave of the host) whose /etc/resolv.conf points at the cluster DNS
env: BKA_CLUSTER_NAME (default "default"), BKA_CLUSTER_NODES (default 2), BKA_CACHE_DIR (default ~/.cache/buildkitd-autoscaler)`;

async function main(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const rest = dd >= 0 ? argv.slice(dd + 1) : [];
  let name: string | undefined;
  const ni = own.indexOf('--name');
  if (ni >= 0) name = own[ni + 1];
  const cmd = own[0];
  switch (cmd) {
    case '__up-inner': {
      await upInner(own[1] ?? 'default', own[2] ?? '', Number(own[3]), Number(own[4] ?? '1'));
      return 0;
    }
    case 'up': {
      const t0 = Date.now();
      const ni2 = own.indexOf('--nodes');
      const r = await up({ name, ...(ni2 >= 0 ? { nodes: Number(own[ni2 + 1]) } : {}) });
      const p = clusterPaths(name);
      if (!r.alreadyUp) process.stdout.write(`up in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
      process.stdout.write(
        `netns: ${p.netns}\nkubeconfig: ${p.kubeconfig}\napi: ${r.info.apiServerUrl}\nbin: ${r.info.binDir}\n` +
          `try: npm run cluster -- exec -- kubectl get nodes\n`,
      );
      return 0;
    }
    case 'down':
      await down({ name, purge: own.includes('--purge') });
      return 0;
    case 'status': {
      const p = clusterPaths(name);
      const h = await health(name);
      process.stdout.write(
        `cluster: ${p.name}\nnetns: ${p.netns} (${netnsExists(p.netns) ? 'present' : 'absent'})\n` +
          `kubeconfig: ${p.kubeconfig}\nstate: ${p.stateDir}\nlogs: ${p.logDir}\n` +
          `${h.info ? `api: ${h.info.apiServerUrl}\nbin: ${h.info.binDir}\nstarted: ${h.info.startedAt} (up took ${h.info.upSeconds.toFixed(1)}s)\n` : ''}` +
          h.details.map((d) => `  ${d}\n`).join('') +
          `health: ${h.healthy ? 'healthy' : 'NOT healthy'}\n`,
      );
      return h.healthy ? 0 : 1;
    }
    case 'exec': {
      if (!rest.length) {
        process.stderr.write('usage: npm run cluster -- exec -- <command...>\n');
        return 2;
      }
      const p = clusterPaths(name);
      const info = readInfo(p);
      if (!info || !netnsExists(p.netns)) {
        process.stderr.write(`cluster ${p.name} is not up: run \`npm run cluster -- up\` first\n`);
        return 1;
      }
      const env = execEnv(info);
      let cmdv = rest;
      if (own.includes('--dns')) {
        const resolv = path.join(p.stateDir, 'resolv.conf');
        cmdv = [
          'unshare',
          '--mount',
          '--propagation',
          'slave',
          '--',
          'sh',
          '-c',
          `mount --bind '${resolv}' /etc/resolv.conf || exit 121; exec "$@"`,
          'sh',
          ...rest,
        ];
      }
      const [file, args] = inNetns(p.netns)
        ? [cmdv[0] ?? '', cmdv.slice(1)]
        : ['nsenter', [...nsenterArgs(p.netns), ...cmdv]];
      const child = spawn(file, args, { stdio: 'inherit', env });
      const forward = (s: NodeJS.Signals) => () => child.kill(s);
      process.on('SIGINT', forward('SIGINT'));
      process.on('SIGTERM', forward('SIGTERM'));
      return await new Promise<number>((resolve) => {
        child.on('error', (e) => {
          process.stderr.write(`exec ${rest[0]}: ${e.message}\n`);
          resolve(127);
        });
        child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 + 15 : 1)));
      });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd ? 0 : 2;
    default:
      process.stderr.write(`unknown command ${cmd}\n${USAGE}\n`);
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
