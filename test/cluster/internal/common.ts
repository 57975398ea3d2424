// Shared constants and small helpers of the local control plane (paths, binaries, netns).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../support/repo-root.ts';

export const CACHE_DIR = process.env.BKA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'buildkitd-autoscaler');

/** Addressing inside the cluster network namespace. */
export const BRIDGE = 'bka0';
export const BRIDGE_IP = '10.244.0.1';
export const POD_PREFIX_LEN = 24;
export const SERVICE_CIDR = '10.96.0.0/16';
export const SERVICE_IP = '10.96.0.1';
export const API_PORT = 6443;
export const API_URL = `https://${BRIDGE_IP}:${API_PORT}`;
export const NODE_NAME = 'bka-node';
/** Nodes of a cluster unless `up --nodes N` / BKA_CLUSTER_NODES says otherwise: two, so cordons and drains have somewhere to go. */
export const DEFAULT_NODE_COUNT = 2;

/** The names of a cluster's nodes: bka-node, bka-node-b, bka-node-c, ... (the first keeps its single-node name). */
export function nodeNames(count: number): string[] {
  if (!Number.isInteger(count) || count < 1 || count > 26) throw new Error(`invalid node count ${count}: use 1-26`);
  return Array.from({ length: count }, (_, i) => (i === 0 ? NODE_NAME : `${NODE_NAME}-${String.fromCharCode(97 + i)}`));
}
export const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** Where the gateway image expects its ServiceAccount files. */
export const SA_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ClusterPaths {
  name: string;
  netns: string;
  stateDir: string;
  pkiDir: string;
  logDir: string;
  etcdDir: string;
  podsDir: string;
  kubeconfig: string;
  infoFile: string;
}

export function clusterName(name?: string): string {
  const n = name ?? process.env.BKA_CLUSTER_NAME ?? 'default';
  // Pod netns are named <cluster netns>-<octet>: a name ending in -<digits> would be ambiguous.
  if (!/^[a-z0-9][a-z0-9-]{0,11}$/.test(n) || /-\d+$/.test(n)) {
    throw new Error(`invalid cluster name ${JSON.stringify(n)}: use 1-12 chars [a-z0-9-], not ending in -<digits>`);
  }
  return n;
}

export function clusterPaths(name?: string): ClusterPaths {
  const n = clusterName(name);
  const stateDir = path.join(CACHE_DIR, 'cluster', n);
  return {
    name: n,
    netns: `bka-${n}`,
    stateDir,
    pkiDir: path.join(stateDir, 'pki'),
    logDir: path.join(stateDir, 'logs'),
    etcdDir: path.join(stateDir, 'etcd'),
    podsDir: path.join(stateDir, 'pods'),
    kubeconfig: path.join(stateDir, 'kubeconfig'),
    infoFile: path.join(stateDir, 'cluster.json'),
  };
}

/** Recorded by `up` once the control plane is healthy. */
export interface ClusterInfo {
  name: string;
  netns: string;
  binDir: string;
  apiServerUrl: string;
  kubeconfigPath: string;
  stateDir: string;
  startedAt: string;
  upSeconds: number;
  pids: Record<string, number>;
  /** Names of the Nodes the process kubelet plays (absent in clusters recorded before there were several). */
  nodes?: string[];
  /** Command line of each component, to start it again (restartComponent). */
  commands?: Record<string, { cmd: string; args: string[] }>;
}

export function readInfo(p: ClusterPaths): ClusterInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(p.infoFile, 'utf8')) as ClusterInfo;
  } catch {
    return undefined;
  }
}

let cachedBinDir: string | undefined;
/** The versioned bin dir scripts/build-binaries.sh builds into (asks the script, builds nothing). */
export function binDir(): string {
  if (cachedBinDir) return cachedBinDir;
  const r = spawnSync('bash', [path.join(REPO_ROOT, 'scripts/build-binaries.sh'), '--print-dir'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-binaries.sh --print-dir failed: ${r.stderr}`);
  cachedBinDir = r.stdout.trim();
  return cachedBinDir;
}

export const BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kubectl',
  'buildkitd',
  'buildctl',
  'buildx',
];

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function netnsPath(netns: string): string {
  return `/run/netns/${netns}`;
}

/** Network namespaces of one cluster: its own and its pods' (<netns>-<octet>). */
export function clusterNetnses(netns: string, includeCluster = true): string[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync('/run/netns');
  } catch {
    /* none */
  }
  return names.filter(
    (n) => (includeCluster && n === netns) || (n.startsWith(`${netns}-`) && /^\d+$/.test(n.slice(netns.length + 1))),
  );
}

export function netnsExists(netns: string): boolean {
  return fs.existsSync(netnsPath(netns));
}

/** True when this process already runs inside the named network namespace. */
export function inNetns(netns: string): boolean {
  try {
    return fs.statSync(netnsPath(netns)).ino === fs.statSync('/proc/self/ns/net').ino;
  } catch {
    return false;
  }
}

/**
 * `nsenter --mount` into the init mount namespace when this process runs in a private one (e.g. under
 * `exec --dns`): named netns (bind mounts under /run/netns) and daemons must live in the host's mount
 * namespace, or `down` and other processes would not see them. Empty when already there.
 */
export function hostMountArgs(): string[] {
  try {
    if (fs.statSync('/proc/self/ns/mnt').ino !== fs.statSync('/proc/1/ns/mnt').ino) return ['--mount=/proc/1/ns/mnt'];
  } catch {
    /* no access to pid 1: assume the same namespace */
  }
  return [];
}

/** Runs `ip ...` in the host mount namespace. */
export function ipArgv(args: readonly string[]): [string, string[]] {
  const m = hostMountArgs();
  return m.length ? ['nsenter', [...m, '--', 'ip', ...args]] : ['ip', [...args]];
}

/** Prefix that runs a command inside a named netns (nothing else is entered: same mounts, same pid ns). */
export function nsenterArgs(netns: string): string[] {
  return [`--net=${netnsPath(netns)}`, '--'];
}

export function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie counts as dead.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Inode of each network namespace file, to find processes living in them. */
export function netnsInode(p: string): number | undefined {
  try {
    return fs.statSync(p).ino;
  } catch {
    return undefined;
  }
}

/** Pids whose network namespace is one of the given inodes (scans /proc). */
export function pidsInNetns(inodes: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const ino = netnsInode(`/proc/${d}/ns/net`);
    if (ino !== undefined && inodes.has(ino)) out.push(Number(d));
  }
  return out;
}
