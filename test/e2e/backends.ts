// Where the E2E runs: the local control plane (test/cluster, inside its netns), kind, or whatever the
// current kubectl context points at. A backend says how to reach the gateway pod from this process and
// how to read its logs; everything else goes through kubectl and the Kubernetes API alike everywhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { currentCluster, type Cluster } from '../cluster/index.ts';
import { run, runOk, type RunResult } from '../cluster/common.ts';

export const BACKENDS = ['local', 'kind', 'minikube', 'docker-desktop', 'existing'] as const;
export const GATEWAY_SERVICE = 'buildkitd-autoscaler';
export type BackendName = (typeof BACKENDS)[number];

export interface Endpoint {
  host: string;
  port: number;
}

export interface GatewayAccess {
  proxy: Endpoint;
  metrics: Endpoint;
  close(): void;
}

export interface Backend {
  name: BackendName;
  kubectl(args: readonly string[], input?: string): Promise<RunResult>;
  /** Reaches the gateway's proxy and metrics ports (its Service where this process can, else the pod). */
  gatewayAccess(namespace: string, pod: string): Promise<GatewayAccess>;
  /** stdout+stderr of a container, as far as it goes. */
  containerLog(namespace: string, pod: string, container: string): Promise<string>;
  collectArtifacts(namespace: string, dir: string): Promise<void>;
}

function kubectlRunner(): Backend['kubectl'] {
  return (args, input) => run('kubectl', args, input === undefined ? {} : { input });
}

/**
 * Local control plane: this process runs inside the cluster netns, where the process kubelet's
 * userspace proxy serves Service ClusterIPs, so clients go through the gateway's Service as in a pod.
 */
function localBackend(cluster: Cluster): Backend {
  const kubectl = kubectlRunner();
  return {
    name: 'local',
    kubectl,
    async gatewayAccess(namespace) {
      const service = JSON.parse(await runOk('kubectl', ['-n', namespace, 'get', 'service', GATEWAY_SERVICE, '-o', 'json'])) as {
        spec: { clusterIP?: string; ports?: { name?: string; port: number }[] };
      };
      const ip = service.spec.clusterIP;
      const port = (name: string) => service.spec.ports?.find((p) => p.name === name)?.port ?? 0;
      if (!ip || ip === 'None') throw new Error(`Service ${GATEWAY_SERVICE} has no ClusterIP`);
      return { proxy: { host: ip, port: port('buildkit') }, metrics: { host: ip, port: port('metrics') }, close: () => undefined };
    },
    async containerLog(namespace, pod, container) {
      return readFile(cluster.podLogPath(namespace, pod, container), 'utf8').catch(() => '');
    },
    collectArtifacts: (namespace, dir) => cluster.collectArtifacts(namespace, dir),
  };
}

/** Starts `kubectl port-forward` and resolves once it printed the local ports it bound. */
function portForward(namespace: string, pod: string, remotePorts: number[]): Promise<{ ports: number[]; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['-n', namespace, 'port-forward', `pod/${pod}`, ...remotePorts.map((p) => `:${p}`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const found = new Map<number, number>();
    let output = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`kubectl port-forward did not start: ${output}`));
    }, 30_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      for (const m of chunk.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/g)) found.set(Number(m[2]), Number(m[1]));
      if (remotePorts.every((p) => found.has(p))) {
        clearTimeout(timer);
        resolve({ ports: remotePorts.map((p) => found.get(p) ?? 0), child });
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kubectl port-forward exited ${code}: ${output}`));
    });
  });
}

/** Any real cluster reached through the current kubectl context (kind, minikube, ...). */
function remoteBackend(name: BackendName): Backend {
  const kubectl = kubectlRunner();
  return {
    name,
    kubectl,
    async gatewayAccess(namespace, pod) {
      const { ports, child } = await portForward(namespace, pod, [8080, 9090]);
      return {
        proxy: { host: '127.0.0.1', port: ports[0] ?? 0 },
        metrics: { host: '127.0.0.1', port: ports[1] ?? 0 },
        close: () => child.kill(),
      };
    },
    async containerLog(namespace, pod, container) {
      const r = await kubectl(['-n', namespace, 'logs', pod, '-c', container]);
      return r.stdout;
    },
    async collectArtifacts(namespace, dir) {
      await mkdir(dir, { recursive: true });
      const dump = async (file: string, args: string[]) => {
        const r = await kubectl(args);
        await writeFile(path.join(dir, file), r.stdout + (r.code !== 0 ? `\n# kubectl exit ${r.code}: ${r.stderr}` : ''));
      };
      const kinds = 'pods,services,endpointslices,statefulsets,deployments,replicasets,serviceaccounts,roles,rolebindings';
      await dump('objects.yaml', ['-n', namespace, 'get', kinds, '-o', 'yaml']);
      await dump('objects.txt', ['-n', namespace, 'get', kinds, '-o', 'wide']);
      await dump('events.txt', ['-n', namespace, 'get', 'events', '--sort-by=.metadata.creationTimestamp']);
      const pods = (await kubectl(['-n', namespace, 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.split(/\s+/).filter(Boolean);
      await mkdir(path.join(dir, 'pod-logs'), { recursive: true });
      for (const pod of pods) {
        const r = await kubectl(['-n', namespace, 'logs', pod, '--all-containers', '--prefix']);
        await writeFile(path.join(dir, 'pod-logs', `${pod}.log`), r.stdout + r.stderr);
      }
    },
  };
}

export function makeBackend(name: BackendName): Backend {
  if (name !== 'local') return remoteBackend(name);
  const cluster = currentCluster();
  if (!cluster?.inNetns) {
    throw new Error('backend local runs inside the cluster netns: use test/e2e/run.sh --backend local (it calls `npm run cluster -- exec`)');
  }
  return localBackend(cluster);
}
