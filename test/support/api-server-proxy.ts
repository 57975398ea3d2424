// One gateway process's own path to the API server: a socat TCP proxy on loopback that a test pauses
// (SIGSTOP: packets go unanswered, as in a partition) and resumes, while every other process keeps its path.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Cluster } from '../cluster/index.ts';
import { freePort } from './net.ts';

export interface ApiServerProxy {
  /** A kubeconfig of the ServiceAccount whose server is this proxy (the serving cert names 127.0.0.1). */
  kubeconfig: string;
  /** Freezes the proxy and every connection it forwards: requests and watches hang, nothing is refused. */
  pause(): void;
  resume(): void;
  stop(): void;
}

export async function startApiServerProxy(
  cluster: Cluster,
  namespace: string,
  serviceAccount: string,
): Promise<ApiServerProxy> {
  const port = await freePort();
  const kubeconfig = await cluster.serviceAccountKubeconfig(namespace, serviceAccount, {
    file: `${cluster.stateDir}/sa-kubeconfigs/${namespace}_${serviceAccount}_proxied.yaml`,
  });
  const text = readFileSync(kubeconfig, 'utf8');
  const server = /server:\s*https:\/\/([^:\s]+):(\d+)/.exec(text);
  if (!server) throw new Error(`no server in ${kubeconfig}`);
  writeFileSync(kubeconfig, text.replace(server[0], `server: https://127.0.0.1:${port}`), { mode: 0o600 });
  // Its own process group: a signal to the group reaches the children forked per connection too.
  const socat: ChildProcess = spawn(
    'socat',
    [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:${server[1]}:${server[2]}`],
    { detached: true, stdio: 'ignore' },
  );
  const signal = (name: NodeJS.Signals) => {
    if (socat.pid !== undefined && socat.exitCode === null && socat.signalCode === null) process.kill(-socat.pid, name);
  };
  for (let attempt = 0; ; attempt += 1) {
    const up = await new Promise<boolean>((resolve) => {
      const probe = connect({ port, host: '127.0.0.1' }, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on('error', () => resolve(false));
    });
    if (up) break;
    if (attempt > 100) throw new Error('socat proxy did not listen');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    kubeconfig,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    stop() {
      signal('SIGCONT');
      signal('SIGKILL');
    },
  };
}
