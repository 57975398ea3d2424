// The local cluster as a library, like controller-runtime's envtest: ensureCluster() brings up (or reuses) a real
// API server, controller manager and process kubelet and returns a Cluster handle. Tests import only this file;
// internal/ holds the control plane (processes, certificates, paths) and kubelet/ the process kubelet, which runs
// as its own daemon. See test/cluster/README.md.
import fs from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  API_URL,
  BRIDGE_IP,
  NODE_NAME,
  clusterPaths,
  inNetns,
  nsenterArgs,
  readInfo,
  type ClusterInfo,
} from './internal/common.ts';
import { run, type RunResult } from '../support/command.ts';
import { waitFor } from '../support/wait.ts';
import {
  down,
  health,
  restartComponent,
  signalComponent,
  startComponent,
  up,
  type Component,
  type Logger,
} from './internal/control-plane.ts';
import { kubeconfigYaml } from './internal/pki.ts';

export { imageKind } from './kubelet/images.ts';
export { START_DELAY_ANNOTATION } from './kubelet/pod-runtime.ts';
export { API_URL, BRIDGE_IP, NODE_NAME, SA_MOUNT, nodeNames } from './internal/common.ts';
export type { ClusterInfo } from './internal/common.ts';
export type { RunResult } from '../support/command.ts';
export { COMPONENTS, down, type Component } from './internal/control-plane.ts';
/** Runs `ip ...` in the host mount namespace (tests add client addresses to the cluster netns with it). */
export { ipArgv } from './internal/common.ts';
/** openssl certificates signed by a CA of the test's own (buildkitd mTLS). */
export { leaf, makeCa } from './internal/pki.ts';

export interface EnsureClusterOptions {
  /** Cluster name (default env BKA_CLUSTER_NAME or "default"). */
  name?: string;
  /** Throw unless this process runs inside the cluster netns (needed to reach pod IPs). Default false. */
  requireNetns?: boolean;
  /** Progress lines of `up` (default: stderr). */
  log?: Logger;
}

export interface Cluster {
  name: string;
  /** Named network namespace holding the whole cluster (`ip netns`). */
  netns: string;
  /** Admin kubeconfig (client cert in system:masters), server https://10.244.0.1:6443. */
  kubeconfigPath: string;
  /** Directory with kubectl, etcd, kube-apiserver, kube-controller-manager, buildkitd, buildctl. */
  binDir: string;
  apiServerUrl: string;
  /** CA that signed the API server's serving certificate. */
  caCertPath: string;
  stateDir: string;
  /** The Nodes the process kubelet plays, in the order its scheduler fills them (bka-node first). */
  nodes: readonly string[];
  /**
   * Cluster DNS server (pods use it through their /etc/resolv.conf): A records for
   * <svc>.<ns>.svc.cluster.local and <hostname>.<svc>.<ns>.svc.cluster.local. From the test runner use
   * `const r = new dns.promises.Resolver(); r.setServers([cluster.dnsServer])`.
   */
  dnsServer: string;
  /** True when this process runs inside the cluster netns (pod IPs reachable). */
  inNetns: boolean;
  /** True when this ensureCluster() call brought the cluster up. */
  startedHere: boolean;
  /** A fresh client config loaded from the admin kubeconfig. */
  kubeConfig(): KubeConfig;
  /** Environment for child processes: KUBECONFIG set, binDir first on PATH. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs the built kubectl with the admin kubeconfig (inside the netns, from wherever this runs). */
  kubectl(
    args: readonly string[],
    opts?: { input?: string; kubeconfig?: string; timeoutMs?: number },
  ): Promise<RunResult>;
  /** Creates a namespace named `<prefix>-<random>` and waits for its default ServiceAccount. */
  createNamespace(prefix: string): Promise<string>;
  deleteNamespace(name: string): Promise<void>;
  /** Dumps API objects (YAML), events, pod process logs and component logs of a namespace into dir. */
  collectArtifacts(namespace: string, dir: string): Promise<void>;
  /** Where the process kubelet writes a container's stdout+stderr. */
  podLogPath(namespace: string, pod: string, container: string): string;
  /** Mints a token kubeconfig (TokenRequest) for a ServiceAccount; returns its path. */
  serviceAccountKubeconfig(
    namespace: string,
    serviceAccount: string,
    opts?: { expirationSeconds?: number; file?: string },
  ): Promise<string>;
  /**
   * Failure injection on a control-plane component ('etcd' | 'kube-apiserver' | 'kube-controller-manager' |
   * 'kubelet'): SIGTERM/SIGKILL stop it (and wait), SIGSTOP/SIGCONT pause/resume it.
   */
  signalComponent(component: Component, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped component with its recorded command line (API server: waits for /readyz). */
  startComponent(component: Component): Promise<void>;
  restartComponent(component: Component): Promise<void>;
  /** Brings the cluster down if this call started it (unless BKA_KEEP_CLUSTER=1); otherwise does nothing. */
  stop(): Promise<void>;
}

/** Env for commands run against the cluster (used by `npm run cluster -- exec`). */
export function execEnv(info: ClusterInfo, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KUBECONFIG: info.kubeconfigPath,
    PATH: `${info.binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    BKA_CLUSTER_NAME: info.name,
    BKA_CLUSTER_NETNS: info.netns,
    ...extra,
  };
}

/** Returns the running cluster, bringing it up first when it is not up and healthy. */
export async function ensureCluster(opts: EnsureClusterOptions = {}): Promise<Cluster> {
  const p = clusterPaths(opts.name);
  let startedHere = false;
  const h = await health(p.name);
  let info = h.healthy ? h.info : undefined;
  if (!info) {
    const r = await up({ name: p.name, ...(opts.log ? { log: opts.log } : {}) });
    info = r.info;
    startedHere = !r.alreadyUp;
  }
  const here = inNetns(p.netns);
  if (opts.requireNetns && !here) {
    throw new Error(
      `this process is not inside the cluster netns ${p.netns}, so pod IPs are unreachable: ` +
        'run it with `npm run cluster -- exec -- <command>`',
    );
  }
  return makeCluster(info, here, startedHere);
}

/** The handle of a cluster that is already up (no health check); undefined when it is not recorded. */
export function currentCluster(name?: string): Cluster | undefined {
  const p = clusterPaths(name);
  const info = readInfo(p);
  return info ? makeCluster(info, inNetns(p.netns), false) : undefined;
}

function makeCluster(info: ClusterInfo, here: boolean, startedHere: boolean): Cluster {
  const p = clusterPaths(info.name);
  const kubectlBin = path.join(info.binDir, 'kubectl');
  const caCertPath = path.join(p.pkiDir, 'ca.crt');
  const kubectl: Cluster['kubectl'] = (args, o = {}) => {
    const full = ['--kubeconfig', o.kubeconfig ?? info.kubeconfigPath, ...args];
    const [file, argv] = here ? [kubectlBin, full] : ['nsenter', [...nsenterArgs(info.netns), kubectlBin, ...full]];
    return run(file, argv, {
      ...(o.input !== undefined ? { input: o.input } : {}),
      ...(o.timeoutMs ? { timeout: o.timeoutMs } : {}),
    });
  };
  const must = async (args: readonly string[], input?: string): Promise<string> => {
    const r = await kubectl(args, input !== undefined ? { input } : {});
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  return {
    name: info.name,
    netns: info.netns,
    kubeconfigPath: info.kubeconfigPath,
    binDir: info.binDir,
    apiServerUrl: info.apiServerUrl || API_URL,
    caCertPath,
    stateDir: info.stateDir,
    nodes: info.nodes ?? [NODE_NAME],
    dnsServer: BRIDGE_IP,
    inNetns: here,
    startedHere,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(info.kubeconfigPath);
      return kc;
    },
    env: (extra) => execEnv(info, extra),
    kubectl,
    async createNamespace(prefix) {
      const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`.toLowerCase().slice(0, 63);
      await must(['create', 'namespace', name]);
      // Pods are refused by the ServiceAccount admission until the controller made "default".
      await waitFor(
        `namespace ${name}: ServiceAccount default (is kube-controller-manager running?)`,
        async () => (await kubectl(['-n', name, 'get', 'serviceaccount', 'default', '-o', 'name'])).code === 0,
        30_000,
        200,
      );
      return name;
    },
    async deleteNamespace(name) {
      await must(['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
    },
    async collectArtifacts(namespace, dir) {
      fs.mkdirSync(dir, { recursive: true });
      const dump = async (file: string, args: string[]) => {
        const r = await kubectl(args);
        fs.writeFileSync(
          path.join(dir, file),
          r.stdout + (r.code !== 0 ? `\n# kubectl exit ${r.code}: ${r.stderr}` : ''),
        );
      };
      const kinds =
        'pods,services,endpointslices,statefulsets,deployments,replicasets,serviceaccounts,roles,rolebindings,configmaps,leases,poddisruptionbudgets';
      await dump('objects.yaml', ['-n', namespace, 'get', kinds, '-o', 'yaml']);
      await dump('objects.txt', ['-n', namespace, 'get', kinds, '-o', 'wide']);
      await dump('events.txt', [
        '-n',
        namespace,
        'get',
        'events',
        '--sort-by=.metadata.creationTimestamp',
        '-o',
        'wide',
      ]);
      await dump('events.yaml', ['-n', namespace, 'get', 'events', '-o', 'yaml']);
      await dump('nodes.yaml', ['get', 'nodes', '-o', 'yaml']);
      const podsOut = path.join(dir, 'pod-logs');
      for (const d of fs.existsSync(p.podsDir) ? fs.readdirSync(p.podsDir) : []) {
        if (!d.startsWith(`${namespace}_`)) continue;
        for (const f of fs.readdirSync(path.join(p.podsDir, d))) {
          if (!f.endsWith('.log')) continue;
          fs.mkdirSync(path.join(podsOut, d), { recursive: true });
          fs.copyFileSync(path.join(p.podsDir, d, f), path.join(podsOut, d, f));
        }
      }
      const compOut = path.join(dir, 'control-plane-logs');
      fs.mkdirSync(compOut, { recursive: true });
      for (const f of fs.existsSync(p.logDir) ? fs.readdirSync(p.logDir) : [])
        fs.copyFileSync(path.join(p.logDir, f), path.join(compOut, f));
    },
    podLogPath: (namespace, pod, container) => path.join(p.podsDir, `${namespace}_${pod}`, `${container}.log`),
    async serviceAccountKubeconfig(namespace, sa, o = {}) {
      const token = (
        await must(['-n', namespace, 'create', 'token', sa, `--duration=${o.expirationSeconds ?? 3600}s`])
      ).trim();
      const file = o.file ?? path.join(p.stateDir, 'sa-kubeconfigs', `${namespace}_${sa}.yaml`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(
        file,
        kubeconfigYaml({
          server: `https://${BRIDGE_IP}:${new URL(info.apiServerUrl || API_URL).port}`,
          caCert: caCertPath,
          user: `system:serviceaccount:${namespace}:${sa}`,
          token,
          namespace,
        }),
        { mode: 0o600 },
      );
      return file;
    },
    signalComponent: (comp, sig) => signalComponent(info.name, comp, sig),
    startComponent: (comp) => startComponent(info.name, comp),
    restartComponent: (comp) => restartComponent(info.name, comp),
    async stop() {
      if (startedHere && process.env.BKA_KEEP_CLUSTER !== '1') await down({ name: info.name });
    },
  };
}
