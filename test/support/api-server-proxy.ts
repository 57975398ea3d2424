// One gateway process's own path to the API server: a TCP proxy (tcp-proxy.ts) that a test holds back or
// pauses, and a kubeconfig of a ServiceAccount whose server is that proxy, while every other process keeps
// its direct path.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Cluster } from '../cluster/index.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

export interface ApiServerProxy extends TcpProxy {
  /** A kubeconfig of the ServiceAccount whose server is this proxy (the serving cert names 127.0.0.1). */
  kubeconfig: string;
}

export async function startApiServerProxy(
  cluster: Cluster,
  namespace: string,
  serviceAccount: string,
  file = `${cluster.stateDir}/sa-kubeconfigs/${namespace}_${serviceAccount}_proxied.yaml`,
): Promise<ApiServerProxy> {
  const kubeconfig = await cluster.serviceAccountKubeconfig(namespace, serviceAccount, { file });
  const text = readFileSync(kubeconfig, 'utf8');
  const server = /server:\s*https:\/\/([^:\s]+):(\d+)/.exec(text);
  if (!server) throw new Error(`no server in ${kubeconfig}`);
  const proxy = await startTcpProxy({ host: server[1] ?? '', port: Number(server[2]) });
  writeFileSync(kubeconfig, text.replace(server[0], `server: https://127.0.0.1:${proxy.port}`), { mode: 0o600 });
  return Object.assign(proxy, { kubeconfig });
}
