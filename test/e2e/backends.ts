// Where the E2E runs: the local control plane (test/cluster, inside its netns), kind, or whatever the
// current kubectl context points at. A backend says how to reach the gateway pod from this process and
// how to read its logs; everything else goes through kubectl and the Kubernetes API alike everywhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { currentCluster, type Cluster } from '../cluster/index.ts';
import { run, runOk, type RunResult } from '../support/command.ts';
import { followPodLogs, type PodLogs } from './pod-logs.ts';

export const BACKENDS = ['local', 'kind', 'minikube', 'docker-desktop', 'existing'] as const;
export const GATEWAY_SERVICE = 'buildkitd-autoscaler';
/** The chart's Service for the ops port (/metrics, /readyz): Prometheus's job label in helm mode. */
export const HELM_METRICS_SERVICE = `${GATEWAY_SERVICE}-metrics`;
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
  /** Reaches one gateway pod's ports, not the Service (to tell the replicas apart). */
  podAccess(namespace: string, pod: string): Promise<GatewayAccess>;
  /** stdout+stderr of a container, as far as it goes. */
  containerLog(namespace: string, pod: string, container: string): Promise<string>;
  /** Keeps the logs of every pod of the namespace from now on, including pods deleted before the end. */
  keepPodLogs(namespace: string): Promise<PodLogs>;
}

/** The ClusterIP and the named port of a Service; throws when it has neither. */
async function serviceEndpoint(namespace: string, name: string, portName: string): Promise<Endpoint> {
  const service = JSON.parse(await runOk('kubectl', ['-n', namespace, 'get', 'service', name, '-o', 'json'])) as {
    spec: { clusterIP?: string; ports?: { name?: string; port: number }[] };
  };
  const ip = service.spec.clusterIP;
  const port = service.spec.ports?.find((p) => p.name === portName)?.port;
  if (!ip || ip === 'None') throw new Error(`Service ${name} has no ClusterIP`);
  if (port === undefined) throw new Error(`Service ${name} has no port ${portName}`);
  return { host: ip, port };
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
      const proxy = await serviceEndpoint(namespace, GATEWAY_SERVICE, 'buildkit');
      // The chart puts the ops port on its own Service; the kustomize manifests keep it on the gateway's.
      const metrics =
        (await serviceEndpoint(namespace, GATEWAY_SERVICE, 'metrics').catch(() => undefined)) ??
        (await serviceEndpoint(namespace, HELM_METRICS_SERVICE, 'metrics'));
      return { proxy, metrics, close: () => undefined };
    },
    // Pod addresses are reachable from inside the cluster netns, where this process runs.
    async podAccess(namespace, pod) {
      const p = JSON.parse(await runOk('kubectl', ['-n', namespace, 'get', 'pod', pod, '-o', 'json'])) as {
        spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] };
        status?: { podIP?: string };
      };
      const ip = p.status?.podIP;
      if (!ip) throw new Error(`pod ${pod} has no IP`);
      const port = (name: string) =>
        p.spec.containers.flatMap((c) => c.ports ?? []).find((q) => q.name === name)?.containerPort ?? 0;
      return {
        proxy: { host: ip, port: port('buildkit') },
        metrics: { host: ip, port: port('metrics') },
        close: () => undefined,
      };
    },
    async containerLog(namespace, pod, container) {
      return readFile(cluster.podLogPath(namespace, pod, container), 'utf8').catch(() => '');
    },
    // The process kubelet keeps every pod's output on disk after the pod is gone (appending when a
    // StatefulSet pod of the same name comes back), so reading the files at the end loses nothing.
    keepPodLogs(namespace) {
      const podsDir = path.join(cluster.stateDir, 'pods');
      return Promise.resolve({
        async collect() {
          const logs = new Map<string, string>();
          const dirs = (await readdir(podsDir).catch(() => [])).filter((d) => d.startsWith(`${namespace}_`)).sort();
          for (const dir of dirs) {
            const files = (await readdir(path.join(podsDir, dir))).filter((f) => f.endsWith('.log')).sort();
            const parts = await Promise.all(
              files.map(async (f) => {
                const text = await readFile(path.join(podsDir, dir, f), 'utf8');
                return files.length > 1 ? `== container ${f.slice(0, -'.log'.length)} ==\n${text}` : text;
              }),
            );
            logs.set(dir.slice(namespace.length + 1), parts.join(''));
          }
          return logs;
        },
      });
    },
  };
}

/** Starts `kubectl port-forward` and resolves once it printed the local ports it bound. */
function portForward(
  namespace: string,
  pod: string,
  remotePorts: number[],
): Promise<{ ports: number[]; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'kubectl',
      ['-n', namespace, 'port-forward', `pod/${pod}`, ...remotePorts.map((p) => `:${p}`)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const found = new Map<number, number>();
    let output = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`kubectl port-forward did not start: ${output}`));
    }, 30_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      for (const m of chunk.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/g))
        found.set(Number(m[2]), Number(m[1]));
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

async function podForward(namespace: string, pod: string): Promise<GatewayAccess> {
  const { ports, child } = await portForward(namespace, pod, [8080, 9090]);
  return {
    proxy: { host: '127.0.0.1', port: ports[0] ?? 0 },
    metrics: { host: '127.0.0.1', port: ports[1] ?? 0 },
    close: () => child.kill(),
  };
}

/** Any real cluster reached through the current kubectl context (kind, minikube, ...). */
function remoteBackend(name: BackendName): Backend {
  const kubectl = kubectlRunner();
  return {
    name,
    kubectl,
    gatewayAccess: (namespace, pod) => podForward(namespace, pod),
    podAccess: (namespace, pod) => podForward(namespace, pod),
    async containerLog(namespace, pod, container) {
      const r = await kubectl(['-n', namespace, 'logs', pod, '-c', container]);
      return r.stdout;
    },
    keepPodLogs: (namespace) => followPodLogs(namespace),
  };
}

export function makeBackend(name: BackendName): Backend {
  if (name !== 'local') return remoteBackend(name);
  const cluster = currentCluster();
  if (!cluster?.inNetns) {
    throw new Error(
      'backend local runs inside the cluster netns: use test/e2e/run.sh --backend local (it calls `npm run cluster -- exec`)',
    );
  }
  return localBackend(cluster);
}
