// The process kubelet: a daemon in the cluster netns that plays the kubelet of every Node of the cluster
// (node.ts). It registers them, binds unscheduled pods to one (scheduler.ts: there is no kube-scheduler),
// runs each container as a local process in the pod's own network namespace (veth on the cluster bridge),
// probes it, patches pod status, restarts crashed containers and honours graceful deletion. Pods are
// watched with an informer; nothing polls the API.
//
// Usage (started by `up`): node test/cluster/kubelet.ts --name <cluster> --bin-dir <dir> [--nodes a,b]
// Env: BKA_KUBELET_START_DELAY_MS (default start delay of every pod, simulating an image pull; the pod
//      annotation bka.test/start-delay-ms wins), BKA_KUBELET_MAX_BACKOFF_MS (crash restart backoff cap).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type V1Container,
  type V1EnvVar,
  type V1Pod,
  type V1Probe,
  type V1Volume,
} from '@kubernetes/client-node';
import {
  BRIDGE,
  BRIDGE_IP,
  API_PORT,
  clusterNetnses,
  NODE_NAME,
  POD_PREFIX_LEN,
  REPO_ROOT,
  SA_MOUNT,
  clusterPaths,
  netnsInode,
  netnsPath,
  pidsInNetns,
  run,
  runOk,
  type ClusterPaths,
} from './common.ts';
import { sleep } from '../support/wait.ts';
import { KUBELET_PORT, ProcessNode } from './node.ts';
import { Scheduler } from './scheduler.ts';
import { Services, resolvConf } from './services.ts';

export const START_DELAY_ANNOTATION = 'bka.test/start-delay-ms';
const SUBNET = BRIDGE_IP.split('.').slice(0, 3).join('.');

type ImageKind = 'socat' | 'buildkit' | 'gateway';

/** Which local command plays an image; undefined for images the kubelet cannot run. */
export function imageKind(image: string): ImageKind | undefined {
  let repo = image.split('@')[0] ?? '';
  const lastSlash = repo.lastIndexOf('/');
  const colon = repo.lastIndexOf(':');
  if (colon > lastSlash) repo = repo.slice(0, colon);
  if (repo === 'alpine/socat' || repo.endsWith('/alpine/socat')) return 'socat';
  if (repo === 'moby/buildkit' || repo.endsWith('/moby/buildkit')) return 'buildkit';
  if (repo.split('/').pop() === 'buildkitd-autoscaler') return 'gateway';
  return undefined;
}

interface StateRunning {
  running: { startedAt: string };
}
interface StateWaiting {
  waiting: { reason: string; message?: string };
}
interface StateTerminated {
  terminated: {
    exitCode: number;
    signal?: number;
    reason: string;
    message?: string;
    startedAt?: string;
    finishedAt: string;
    containerID?: string;
  };
}
type CState = StateRunning | StateWaiting | StateTerminated;

interface Ctr {
  spec: V1Container;
  kind: ImageKind | undefined;
  proc?: ChildProcess;
  pid?: number;
  state: CState;
  lastState?: CState;
  restartCount: number;
  ready: boolean;
  started: boolean;
  startedAtMs: number;
  timers: NodeJS.Timeout[];
  restartTimer?: NodeJS.Timeout;
  backoffMs: number;
  exited?: Promise<void>;
  generation: number;
}

interface PodRt {
  uid: string;
  ns: string;
  name: string;
  pod: V1Pod;
  dir: string;
  ip?: string;
  netns?: string;
  veth?: string;
  ctrs: Map<string, Ctr>;
  startTime: string;
  terminating: boolean;
  killTimer?: NodeJS.Timeout;
  killAtMs?: number;
  conditionTimes: Map<string, { status: string; at: string }>;
  dirty: boolean;
  patching: boolean;
  refreshTimer?: NodeJS.Timeout;
  binds: { src: string; dst: string }[];
  phaseOverride?: 'Failed' | 'Succeeded';
  /** Aborts a pending start delay when the pod is deleted. */
  abort: AbortController;
  startPromise?: Promise<void>;
  sandboxRemoved?: boolean;
}

function sleepAbortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

const now = () => new Date().toISOString();
const log = (msg: string) => process.stdout.write(`${now()} ${msg}\n`);
const errMsg = (e: unknown) => {
  const b = (e as { body?: unknown }).body;
  if (typeof b === 'string' && b) return b.slice(0, 300);
  return e instanceof Error ? e.message : String(e);
};
const errCode = (e: unknown) => (e as { code?: number }).code;
/** The kubelet's format for metadata.labels / metadata.annotations in a downward-API file: key="value" lines, sorted. */
const formatMap = (map: Record<string, string> | undefined) =>
  Object.keys(map ?? {})
    .sort()
    .map((key) => `${key}=${JSON.stringify(map?.[key] ?? '')}`)
    .join('\n');

function parseQuantity(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q));
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  const f = mult[m[2] ?? ''];
  return f === undefined ? undefined : n * f;
}

class Kubelet {
  readonly p: ClusterPaths;
  readonly binDir: string;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly pods = new Map<string, PodRt>();
  readonly nodes: ProcessNode[];
  readonly scheduler: Scheduler;
  readonly usedIps = new Set<number>();
  nextIp = 2;
  stopping = false;
  readonly defaultDelayMs = Number(process.env.BKA_KUBELET_START_DELAY_MS ?? '0') || 0;
  readonly maxBackoffMs = Number(process.env.BKA_KUBELET_MAX_BACKOFF_MS ?? '10000') || 10000;
  readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  readonly caPem: string;
  readonly services: Services;

  constructor(name: string, binDir: string, nodeNames: readonly string[]) {
    this.p = clusterPaths(name);
    this.binDir = binDir;
    this.kc = new KubeConfig();
    this.kc.loadFromFile(this.p.kubeconfig);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.services = new Services(this.kc, log);
    this.caPem = fs.readFileSync(path.join(this.p.pkiDir, 'ca.crt'), 'utf8');
    this.nodes = nodeNames.map((n) => new ProcessNode(this.kc, n));
    this.scheduler = new Scheduler(this.kc, nodeNames, {
      log,
      event: (pod, type, reason, message) => this.event(pod, type, reason, message),
    });
  }

  runsOn(nodeName: string): boolean {
    return this.nodes.some((n) => n.name === nodeName);
  }

  // ---------------------------------------------------------------- events
  event(
    rt: { ns: string; name: string; uid: string },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    fieldPath?: string,
  ): void {
    const t = now();
    const host = this.pods.get(rt.uid)?.pod.spec?.nodeName ?? this.nodes[0]?.name ?? NODE_NAME;
    this.core
      .createNamespacedEvent({
        namespace: rt.ns,
        body: {
          metadata: { generateName: `${rt.name}.`, namespace: rt.ns },
          involvedObject: {
            kind: 'Pod',
            apiVersion: 'v1',
            namespace: rt.ns,
            name: rt.name,
            uid: rt.uid,
            ...(fieldPath ? { fieldPath } : {}),
          },
          reason,
          message,
          type,
          count: 1,
          firstTimestamp: new Date(t),
          lastTimestamp: new Date(t),
          source: { component: 'bka-process-kubelet', host },
          reportingComponent: 'bka-process-kubelet',
          reportingInstance: host,
        },
      })
      .catch((e: unknown) => log(`event ${rt.ns}/${rt.name} ${reason}: ${errMsg(e)}`));
  }

  // ---------------------------------------------------------------- informer
  onPod(pod: V1Pod): void {
    if (this.stopping) return;
    const uid = pod.metadata?.uid ?? '';
    const ns = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    if (!pod.spec?.nodeName) {
      this.scheduler.schedule(pod);
      return;
    }
    if (!this.runsOn(pod.spec.nodeName)) return;
    const rt = this.pods.get(uid);
    if (!rt) {
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return;
      if (pod.metadata?.deletionTimestamp) {
        // Nothing of ours runs for it: finish the deletion.
        this.core
          .deleteNamespacedPod({
            name,
            namespace: ns,
            gracePeriodSeconds: 0,
            body: { gracePeriodSeconds: 0, preconditions: { uid } },
          })
          .catch((e: unknown) => {
            if (errCode(e) !== 404) log(`delete ${ns}/${name}: ${errMsg(e)}`);
          });
        return;
      }
      const newRt: PodRt = {
        uid,
        ns,
        name,
        pod,
        dir: path.join(this.p.podsDir, `${ns}_${name}`),
        ctrs: new Map(),
        startTime: now(),
        terminating: false,
        conditionTimes: new Map(),
        dirty: false,
        patching: false,
        binds: [],
        abort: new AbortController(),
      };
      this.pods.set(uid, newRt);
      newRt.startPromise = this.startPod(newRt).catch((e: unknown) => {
        log(`start ${ns}/${name}: ${errMsg(e)}`);
      });
      return;
    }
    const metadataChanged =
      JSON.stringify([rt.pod.metadata?.labels, rt.pod.metadata?.annotations]) !==
      JSON.stringify([pod.metadata?.labels, pod.metadata?.annotations]);
    rt.pod = pod;
    if (metadataChanged) this.refreshDownwardApi(rt);
    if (pod.metadata?.deletionTimestamp) this.terminate(rt, this.graceSeconds(pod));
  }

  /** As the kubelet does on a pod update: downward-API files follow label and annotation changes, also while terminating. */
  refreshDownwardApi(rt: PodRt): void {
    for (const v of rt.pod.spec?.volumes ?? []) {
      const items = [
        ...(v.downwardAPI?.items ?? []),
        ...(v.projected?.sources ?? []).flatMap((source) => source.downwardAPI?.items ?? []),
      ];
      const dir = path.join(rt.dir, 'volumes', v.name);
      if (items.length === 0 || !fs.existsSync(dir)) continue;
      for (const it of items)
        if (it.fieldRef) this.writeFileAtomic(path.join(dir, it.path), this.fieldRef(rt, it.fieldRef.fieldPath));
    }
  }

  onPodDeleted(pod: V1Pod): void {
    this.scheduler.forget(pod.metadata?.uid ?? '');
    const rt = this.pods.get(pod.metadata?.uid ?? '');
    if (rt) {
      log(`pod ${rt.ns}/${rt.name} was removed from the API: stopping its processes`);
      rt.pod = pod;
      this.terminate(rt, Math.min(2, this.graceSeconds(pod)), false);
    }
  }

  graceSeconds(pod: V1Pod): number {
    return pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
  }

  // ---------------------------------------------------------------- sandbox
  allocIp(): number {
    for (let i = 0; i < 253; i++) {
      const o = this.nextIp;
      this.nextIp = this.nextIp >= 254 ? 2 : this.nextIp + 1;
      if (!this.usedIps.has(o)) {
        this.usedIps.add(o);
        return o;
      }
    }
    throw new Error('pod IP range exhausted');
  }

  async makeSandbox(rt: PodRt): Promise<void> {
    const octet = this.allocIp();
    rt.ip = `${SUBNET}.${octet}`;
    rt.netns = `${this.p.netns}-${octet}`;
    rt.veth = `bkav${octet}`;
    await run('ip', ['netns', 'del', rt.netns]);
    await run('ip', ['link', 'del', rt.veth]);
    await runOk('ip', ['netns', 'add', rt.netns]);
    await runOk('ip', ['link', 'add', rt.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', rt.netns]);
    await runOk('ip', ['link', 'set', rt.veth, 'master', BRIDGE, 'up']);
    const ipn = (...a: string[]) => runOk('ip', ['-n', rt.netns ?? '', ...a]);
    await ipn('link', 'set', 'lo', 'up');
    await ipn('addr', 'add', `${rt.ip}/${POD_PREFIX_LEN}`, 'dev', 'eth0');
    await ipn('link', 'set', 'eth0', 'up');
    await ipn('route', 'add', 'default', 'via', BRIDGE_IP);
  }

  async removeSandbox(rt: PodRt): Promise<void> {
    if (rt.sandboxRemoved) return;
    rt.sandboxRemoved = true;
    if (rt.netns) {
      const ino = netnsInode(netnsPath(rt.netns));
      if (ino !== undefined) {
        for (const pid of pidsInNetns(new Set([ino]))) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      await run('ip', ['netns', 'del', rt.netns]);
    }
    if (rt.veth) await run('ip', ['link', 'del', rt.veth]);
    if (rt.ip) this.usedIps.delete(Number(rt.ip.split('.')[3]));
  }

  // ---------------------------------------------------------------- volumes and env
  async getConfigMapData(ns: string, name: string, optional: boolean): Promise<Record<string, string>> {
    try {
      const cm = await this.core.readNamespacedConfigMap({ name, namespace: ns });
      return cm.data ?? {};
    } catch (e) {
      if (optional && errCode(e) === 404) return {};
      throw new Error(`configmap ${ns}/${name}: ${errMsg(e)}`);
    }
  }

  async getSecretData(ns: string, name: string, optional: boolean): Promise<Record<string, string>> {
    try {
      const s = await this.core.readNamespacedSecret({ name, namespace: ns });
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
      for (const [k, v] of Object.entries(s.stringData ?? {})) out[k] = v;
      return out;
    } catch (e) {
      if (optional && errCode(e) === 404) return {};
      throw new Error(`secret ${ns}/${name}: ${errMsg(e)}`);
    }
  }

  fieldRef(rt: PodRt, fieldPath: string): string {
    const md = rt.pod.metadata;
    const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
    if (m) return (m[1] === 'labels' ? md?.labels : md?.annotations)?.[m[2] ?? ''] ?? '';
    switch (fieldPath) {
      case 'metadata.labels':
        return formatMap(md?.labels);
      case 'metadata.annotations':
        return formatMap(md?.annotations);
      case 'metadata.name':
        return rt.name;
      case 'metadata.namespace':
        return rt.ns;
      case 'metadata.uid':
        return rt.uid;
      case 'spec.nodeName':
        return rt.pod.spec?.nodeName ?? '';
      case 'spec.serviceAccountName':
        return rt.pod.spec?.serviceAccountName ?? 'default';
      case 'status.podIP':
      case 'status.podIPs':
        return rt.ip ?? '';
      case 'status.hostIP':
      case 'status.hostIPs':
        return BRIDGE_IP;
      default:
        return '';
    }
  }

  resourceField(c: V1Container, resource: string, divisor?: string): string {
    const [kind, res] = resource.split('.') as [string, string];
    const src = kind === 'limits' ? c.resources?.limits : c.resources?.requests;
    let v = parseQuantity(src?.[res]);
    if (v === undefined) v = res === 'cpu' ? os.cpus().length : os.totalmem();
    const d = parseQuantity(divisor) ?? 1;
    return String(Math.ceil(v / d));
  }

  async resolveEnv(rt: PodRt, c: V1Container): Promise<Record<string, string>> {
    const env: Record<string, string> = {
      PATH: `${this.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: '/root',
      HOSTNAME: rt.name,
      KUBERNETES_SERVICE_HOST: BRIDGE_IP,
      KUBERNETES_SERVICE_PORT: String(API_PORT),
      KUBERNETES_SERVICE_PORT_HTTPS: String(API_PORT),
    };
    for (const src of c.envFrom ?? []) {
      const prefix = src.prefix ?? '';
      let data: Record<string, string> = {};
      if (src.configMapRef?.name)
        data = await this.getConfigMapData(rt.ns, src.configMapRef.name, src.configMapRef.optional ?? false);
      if (src.secretRef?.name)
        data = await this.getSecretData(rt.ns, src.secretRef.name, src.secretRef.optional ?? false);
      for (const [k, v] of Object.entries(data)) env[prefix + k] = v;
    }
    const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, k: string) => env[k] ?? all);
    for (const e of c.env ?? ([] as V1EnvVar[])) {
      if (e.value !== undefined) env[e.name] = expand(e.value);
      else if (e.valueFrom?.fieldRef) env[e.name] = this.fieldRef(rt, e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.resourceFieldRef)
        env[e.name] = this.resourceField(
          c,
          e.valueFrom.resourceFieldRef.resource,
          e.valueFrom.resourceFieldRef.divisor,
        );
      else if (e.valueFrom?.configMapKeyRef) {
        const r = e.valueFrom.configMapKeyRef;
        const v = (await this.getConfigMapData(rt.ns, r.name ?? '', r.optional ?? false))[r.key];
        if (v === undefined && !r.optional) throw new Error(`configmap ${r.name} has no key ${r.key}`);
        if (v !== undefined) env[e.name] = v;
      } else if (e.valueFrom?.secretKeyRef) {
        const r = e.valueFrom.secretKeyRef;
        const v = (await this.getSecretData(rt.ns, r.name ?? '', r.optional ?? false))[r.key];
        if (v === undefined && !r.optional) throw new Error(`secret ${r.name} has no key ${r.key}`);
        if (v !== undefined) env[e.name] = v;
      } else env[e.name] = '';
    }
    return env;
  }

  writeFileAtomic(file: string, content: string | Buffer, mode = 0o644): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, content, { mode });
    fs.renameSync(tmp, file);
  }

  /** Materializes the pod's volumes under <podDir>/volumes; returns the earliest token refresh time. */
  async materializeVolumes(rt: PodRt): Promise<number | undefined> {
    let refreshAt: number | undefined;
    const vols = rt.pod.spec?.volumes ?? ([] as V1Volume[]);
    for (const v of vols) {
      const dir = path.join(rt.dir, 'volumes', v.name);
      fs.mkdirSync(dir, { recursive: true });
      const writeItems = (data: Record<string, string>, items?: { key: string; path: string }[]) => {
        const list = items?.length ? items : Object.keys(data).map((k) => ({ key: k, path: k }));
        for (const it of list) {
          const val = data[it.key];
          if (val !== undefined) this.writeFileAtomic(path.join(dir, it.path), val);
        }
      };
      if (v.emptyDir) continue;
      if (v.configMap)
        writeItems(
          await this.getConfigMapData(rt.ns, v.configMap.name ?? '', v.configMap.optional ?? false),
          v.configMap.items,
        );
      else if (v.secret)
        writeItems(
          await this.getSecretData(rt.ns, v.secret.secretName ?? '', v.secret.optional ?? false),
          v.secret.items,
        );
      else if (v.projected) {
        for (const s of v.projected.sources ?? []) {
          if (s.serviceAccountToken) {
            const exp = s.serviceAccountToken.expirationSeconds ?? 3607;
            const tr = await this.core.createNamespacedServiceAccountToken({
              name: rt.pod.spec?.serviceAccountName ?? 'default',
              namespace: rt.ns,
              body: {
                spec: {
                  audiences: s.serviceAccountToken.audience ? [s.serviceAccountToken.audience] : [],
                  expirationSeconds: exp,
                  boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: rt.name, uid: rt.uid },
                },
              },
            });
            this.writeFileAtomic(path.join(dir, s.serviceAccountToken.path), tr.status?.token ?? '', 0o600);
            const at = Date.now() + exp * 800;
            refreshAt = refreshAt === undefined ? at : Math.min(refreshAt, at);
          } else if (s.configMap) {
            // kube-root-ca.crt may not be published yet right after a namespace is made: use our CA.
            let data: Record<string, string>;
            if (s.configMap.name === 'kube-root-ca.crt') data = { 'ca.crt': this.caPem };
            else data = await this.getConfigMapData(rt.ns, s.configMap.name ?? '', s.configMap.optional ?? false);
            writeItems(data, s.configMap.items);
          } else if (s.secret) {
            writeItems(
              await this.getSecretData(rt.ns, s.secret.name ?? '', s.secret.optional ?? false),
              s.secret.items,
            );
          } else if (s.downwardAPI) {
            for (const it of s.downwardAPI.items ?? []) {
              if (it.fieldRef) this.writeFileAtomic(path.join(dir, it.path), this.fieldRef(rt, it.fieldRef.fieldPath));
            }
          }
        }
      } else if (v.downwardAPI) {
        for (const it of v.downwardAPI.items ?? []) {
          if (it.fieldRef) this.writeFileAtomic(path.join(dir, it.path), this.fieldRef(rt, it.fieldRef.fieldPath));
        }
      } else if (!v.hostPath) {
        log(`${rt.ns}/${rt.name}: volume ${v.name} of an unsupported type is an empty directory`);
      }
    }
    return refreshAt;
  }

  bindsFor(rt: PodRt, c: V1Container): { src: string; dst: string }[] {
    const out: { src: string; dst: string }[] = [];
    const policy = rt.pod.spec?.dnsPolicy ?? 'ClusterFirst';
    if (!rt.pod.spec?.hostNetwork && (policy === 'ClusterFirst' || policy === 'ClusterFirstWithHostNet')) {
      out.push({ src: path.join(rt.dir, 'resolv.conf'), dst: '/etc/resolv.conf' });
    }
    out.push({ src: path.join(rt.dir, 'hosts'), dst: '/etc/hosts' });
    for (const m of c.volumeMounts ?? []) {
      const v = rt.pod.spec?.volumes?.find((x) => x.name === m.name);
      if (!v) continue;
      let src = v.hostPath ? v.hostPath.path : path.join(rt.dir, 'volumes', v.name);
      if (m.subPath) src = path.join(src, m.subPath);
      out.push({ src, dst: m.mountPath });
    }
    return out;
  }

  // ---------------------------------------------------------------- commands
  commandFor(rt: PodRt, c: V1Container, kind: ImageKind): string[] {
    const cmd = c.command ?? [];
    const args = c.args ?? [];
    const base = (s: string) => s.split('/').pop() ?? s;
    if (kind === 'socat') return cmd.length ? [...cmd, ...args] : ['socat', ...args];
    if (kind === 'gateway') {
      const main = path.join(REPO_ROOT, 'dist', 'main.js');
      if (!fs.existsSync(main)) throw new Error(`${main} does not exist: run \`npm run build\` first`);
      return [process.execPath, main, ...args];
    }
    // buildkit: keep the buildkitd flags, run our buildkitd with a per-pod state dir and socket.
    let flags = args;
    const i = cmd.findIndex((x) => base(x) === 'buildkitd');
    if (i >= 0) flags = [...cmd.slice(i + 1), ...args];
    else if (cmd.length && base(cmd[0] ?? '') !== 'rootlesskit') flags = [...cmd.slice(1), ...args];
    const out: string[] = [path.join(this.binDir, 'buildkitd')];
    let hasAddr = false;
    for (let j = 0; j < flags.length; j++) {
      const f = flags[j] ?? '';
      const takeValue = () => (f.includes('=') ? f.slice(f.indexOf('=') + 1) : (flags[++j] ?? ''));
      if (f === '--root' || f.startsWith('--root=')) {
        takeValue();
        continue;
      }
      if (f === '--addr' || f.startsWith('--addr=')) {
        const a = takeValue();
        hasAddr = true;
        out.push(
          '--addr',
          a.startsWith('unix://') ? `unix://${path.join(rt.dir, `buildkitd-${path.basename(a.slice(7))}`)}` : a,
        );
        continue;
      }
      out.push(f);
    }
    if (!hasAddr) out.push('--addr', `unix://${path.join(rt.dir, 'buildkitd.sock')}`);
    out.push('--root', path.join(rt.dir, 'buildkit', c.name));
    if (!flags.some((f) => f.startsWith('--containerd-worker'))) out.push('--containerd-worker=false');
    return out;
  }

  // ---------------------------------------------------------------- pod lifecycle
  async startPod(rt: PodRt): Promise<void> {
    fs.mkdirSync(rt.dir, { recursive: true });
    fs.writeFileSync(path.join(rt.dir, 'resolv.conf'), resolvConf(rt.ns));
    const spec = rt.pod.spec;
    for (const c of spec?.containers ?? []) {
      rt.ctrs.set(c.name, {
        spec: c,
        kind: imageKind(c.image ?? ''),
        state: { waiting: { reason: 'ContainerCreating' } },
        restartCount: 0,
        ready: false,
        started: false,
        startedAtMs: 0,
        timers: [],
        backoffMs: 1000,
        generation: 0,
      });
    }
    if (spec?.initContainers?.length) log(`${rt.ns}/${rt.name}: init containers are not supported and are skipped`);
    await this.makeSandbox(rt);
    const host = this.podHostname(rt);
    const sub = rt.pod.spec?.subdomain;
    fs.writeFileSync(
      path.join(rt.dir, 'hosts'),
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n` +
        `${rt.ip}\t${sub ? `${host}.${sub}.${rt.ns}.svc.cluster.local ` : ''}${host}\n`,
    );
    log(`${rt.ns}/${rt.name}: sandbox ${rt.netns} ip ${rt.ip}`);
    this.markDirty(rt);
    const delay = Number(rt.pod.metadata?.annotations?.[START_DELAY_ANNOTATION] ?? this.defaultDelayMs) || 0;
    if (delay > 0) {
      this.event(rt, 'Normal', 'Pulling', `simulated image pull: waiting ${delay}ms (${START_DELAY_ANNOTATION})`);
      await sleepAbortable(delay, rt.abort.signal);
    }
    if (rt.terminating) return;
    try {
      const refreshAt = await this.materializeVolumes(rt);
      if (refreshAt !== undefined) this.scheduleRefresh(rt, refreshAt);
    } catch (e) {
      for (const ctr of rt.ctrs.values())
        ctr.state = { waiting: { reason: 'CreateContainerConfigError', message: errMsg(e) } };
      this.event(rt, 'Warning', 'Failed', `volumes: ${errMsg(e)}`);
      this.markDirty(rt);
      return;
    }
    for (const ctr of rt.ctrs.values()) await this.startContainer(rt, ctr);
  }

  scheduleRefresh(rt: PodRt, at: number): void {
    clearTimeout(rt.refreshTimer);
    rt.refreshTimer = setTimeout(
      () => {
        if (rt.terminating) return;
        this.materializeVolumes(rt).then(
          (next) => {
            if (next !== undefined) this.scheduleRefresh(rt, next);
          },
          (e: unknown) => {
            log(`${rt.ns}/${rt.name}: token refresh failed: ${errMsg(e)}`);
            this.scheduleRefresh(rt, Date.now() + 10_000);
          },
        );
      },
      Math.max(1000, at - Date.now()),
    );
  }

  async startContainer(rt: PodRt, ctr: Ctr): Promise<void> {
    if (rt.terminating) return;
    const c = ctr.spec;
    if (!ctr.kind) {
      const msg = `the process kubelet has no command for image "${c.image}" (it runs alpine/socat, moby/buildkit and buildkitd-autoscaler images)`;
      ctr.state = { waiting: { reason: 'UnsupportedImage', message: msg } };
      this.event(rt, 'Warning', 'Failed', msg, `spec.containers{${c.name}}`);
      this.markDirty(rt);
      return;
    }
    let argv: string[];
    let env: Record<string, string>;
    try {
      argv = this.commandFor(rt, c, ctr.kind);
      env = await this.resolveEnv(rt, c);
      if (rt.terminating) return;
    } catch (e) {
      ctr.state = { waiting: { reason: 'CreateContainerConfigError', message: errMsg(e) } };
      this.event(rt, 'Warning', 'Failed', errMsg(e), `spec.containers{${c.name}}`);
      this.markDirty(rt);
      return;
    }
    const binds = this.bindsFor(rt, c);
    const pre = ['--net=' + netnsPath(rt.netns ?? ''), '--'];
    // Own mount namespace (private bind mounts: volumes, token, resolv.conf, hosts) and UTS namespace
    // (hostname = pod hostname), then exec the command: the pid stays the same.
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    // Mount points are made on the host filesystem when missing (empty dirs / files); the mounts stay private.
    const script = [
      `hostname ${q(this.podHostname(rt))} || exit 122`,
      ...binds.map(
        (b) =>
          `if [ -d ${q(b.src)} ]; then mkdir -p ${q(b.dst)}; else mkdir -p "$(dirname ${q(b.dst)})"; [ -e ${q(b.dst)} ] || touch ${q(b.dst)}; fi; mount --bind ${q(b.src)} ${q(b.dst)} || exit 121`,
      ),
      'exec "$@"',
    ].join('\n');
    const full = [
      ...pre,
      'unshare',
      '--mount',
      '--uts',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      script,
      'sh',
      ...argv,
    ];
    const logFile = path.join(rt.dir, `${c.name}.log`);
    const fd = fs.openSync(logFile, 'a');
    let cwd = rt.dir;
    if (c.workingDir && fs.existsSync(c.workingDir)) cwd = c.workingDir;
    const child = spawn('nsenter', full, { detached: true, stdio: ['ignore', fd, fd], env, cwd });
    fs.closeSync(fd);
    ctr.generation++;
    const gen = ctr.generation;
    ctr.proc = child;
    ctr.pid = child.pid;
    ctr.startedAtMs = Date.now();
    const startedAt = now();
    ctr.state = { running: { startedAt } };
    ctr.ready = false;
    ctr.started = !c.startupProbe;
    log(`${rt.ns}/${rt.name}/${c.name}: started pid ${child.pid}: ${argv.join(' ')}`);
    this.event(rt, 'Normal', 'Started', `Started container ${c.name} (pid ${child.pid})`, `spec.containers{${c.name}}`);
    ctr.exited = new Promise<void>((resolve) => {
      child.on('error', (e) => log(`${rt.ns}/${rt.name}/${c.name}: spawn error ${e.message}`));
      child.on('exit', (code, signal) => {
        resolve();
        if (gen !== ctr.generation) return;
        this.onExit(rt, ctr, code, signal, startedAt);
      });
    });
    this.startProbes(rt, ctr, gen);
    this.markDirty(rt);
  }

  onExit(rt: PodRt, ctr: Ctr, code: number | null, signal: NodeJS.Signals | null, startedAt: string): void {
    ctr.proc = undefined;
    ctr.pid = undefined;
    for (const t of ctr.timers) clearTimeout(t);
    ctr.timers = [];
    ctr.ready = false;
    ctr.started = false;
    const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
    const term: StateTerminated = {
      terminated: {
        exitCode,
        reason: exitCode === 0 ? 'Completed' : 'Error',
        startedAt,
        finishedAt: now(),
        ...(signal ? { signal: os.constants.signals[signal] } : {}),
        containerID: this.containerId(rt, ctr),
      },
    };
    log(`${rt.ns}/${rt.name}/${ctr.spec.name}: exited code=${code} signal=${signal}`);
    if (rt.terminating) {
      ctr.state = term;
      this.markDirty(rt);
      return;
    }
    const policy = rt.pod.spec?.restartPolicy ?? 'Always';
    const restart = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
    if (!restart) {
      ctr.state = term;
      const all = [...rt.ctrs.values()];
      if (all.every((x) => 'terminated' in x.state)) {
        rt.phaseOverride = all.every((x) => 'terminated' in x.state && x.state.terminated.exitCode === 0)
          ? 'Succeeded'
          : 'Failed';
        // A finished pod keeps its status (and podIP) but no longer holds a network namespace.
        clearTimeout(rt.refreshTimer);
        this.removeSandbox(rt).catch((e: unknown) => log(`${rt.ns}/${rt.name}: sandbox removal: ${errMsg(e)}`));
      }
      this.markDirty(rt);
      return;
    }
    if (Date.now() - ctr.startedAtMs > 60_000) ctr.backoffMs = 1000;
    const wait = ctr.backoffMs;
    ctr.backoffMs = Math.min(this.maxBackoffMs, ctr.backoffMs * 2);
    ctr.lastState = term;
    ctr.state = {
      waiting: {
        reason: 'CrashLoopBackOff',
        message: `back-off ${wait}ms restarting failed container ${ctr.spec.name}`,
      },
    };
    this.event(
      rt,
      'Warning',
      'BackOff',
      `Back-off ${wait}ms restarting failed container ${ctr.spec.name} (exit ${exitCode})`,
      `spec.containers{${ctr.spec.name}}`,
    );
    this.markDirty(rt);
    ctr.restartTimer = setTimeout(() => {
      if (rt.terminating) return;
      ctr.restartCount++;
      this.startContainer(rt, ctr).catch((e: unknown) =>
        log(`restart ${rt.ns}/${rt.name}/${ctr.spec.name}: ${errMsg(e)}`),
      );
    }, wait);
  }

  podHostname(rt: PodRt): string {
    return (rt.pod.spec?.hostname ?? rt.name).slice(0, 63);
  }

  containerId(rt: PodRt, ctr: Ctr): string {
    return `bka://${rt.uid}/${ctr.spec.name}/${ctr.restartCount}`;
  }

  // ---------------------------------------------------------------- probes
  startProbes(rt: PodRt, ctr: Ctr, gen: number): void {
    const c = ctr.spec;
    const live = () => gen === ctr.generation && !rt.terminating && ctr.proc !== undefined;
    const loop = (
      probe: V1Probe,
      kind: 'startup' | 'readiness' | 'liveness',
      onResult: (ok: boolean, st: { succ: number; fail: number }) => boolean,
      delayMs: number,
    ) => {
      const st = { succ: 0, fail: 0 };
      const period = (probe.periodSeconds ?? 10) * 1000;
      const tick = () => {
        if (!live()) return;
        this.probe(rt, ctr, probe).then(
          (res) => {
            if (!live()) return;
            if (res.ok) {
              st.succ++;
              st.fail = 0;
            } else {
              st.fail++;
              st.succ = 0;
              if (st.fail === (probe.failureThreshold ?? 3) || kind !== 'readiness') {
                this.event(
                  rt,
                  'Warning',
                  'Unhealthy',
                  `${kind[0]?.toUpperCase()}${kind.slice(1)} probe failed: ${res.detail}`,
                  `spec.containers{${c.name}}`,
                );
              }
            }
            if (onResult(res.ok, st)) ctr.timers.push(setTimeout(tick, period));
          },
          (e: unknown) => log(`probe ${rt.ns}/${rt.name}/${c.name}: ${errMsg(e)}`),
        );
      };
      ctr.timers.push(setTimeout(tick, delayMs));
    };
    const startMain = () => {
      if (c.readinessProbe) {
        const p = c.readinessProbe;
        loop(
          p,
          'readiness',
          (_ok, st) => {
            if (!ctr.ready && st.succ >= (p.successThreshold ?? 1)) {
              ctr.ready = true;
              this.markDirty(rt);
            } else if (ctr.ready && st.fail >= (p.failureThreshold ?? 3)) {
              ctr.ready = false;
              this.markDirty(rt);
            }
            return true;
          },
          (p.initialDelaySeconds ?? 0) * 1000,
        );
      } else if (!ctr.ready) {
        ctr.ready = true;
        this.markDirty(rt);
      }
      if (c.livenessProbe) {
        const p = c.livenessProbe;
        loop(
          p,
          'liveness',
          (_ok, st) => {
            if (st.fail >= (p.failureThreshold ?? 3)) {
              this.event(
                rt,
                'Normal',
                'Killing',
                `Container ${c.name} failed liveness probe, will be restarted`,
                `spec.containers{${c.name}}`,
              );
              this.killGroup(ctr, 'SIGKILL');
              return false;
            }
            return true;
          },
          (p.initialDelaySeconds ?? 0) * 1000,
        );
      }
    };
    if (c.startupProbe) {
      const p = c.startupProbe;
      loop(
        p,
        'startup',
        (_ok, st) => {
          if (st.succ >= 1) {
            ctr.started = true;
            this.markDirty(rt);
            startMain();
            return false;
          }
          if (st.fail >= (p.failureThreshold ?? 3)) {
            this.killGroup(ctr, 'SIGKILL');
            return false;
          }
          return true;
        },
        (p.initialDelaySeconds ?? 0) * 1000,
      );
    } else startMain();
  }

  resolvePort(c: V1Container, port: number | string | undefined): number {
    if (typeof port === 'number') return port;
    if (port !== undefined && /^\d+$/.test(port)) return Number(port);
    const named = c.ports?.find((p) => p.name === port);
    if (!named) throw new Error(`no container port named ${String(port)}`);
    return named.containerPort;
  }

  async probe(rt: PodRt, ctr: Ctr, p: V1Probe): Promise<{ ok: boolean; detail: string }> {
    const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
    const host = rt.ip ?? '127.0.0.1';
    try {
      if (p.tcpSocket) {
        const port = this.resolvePort(ctr.spec, p.tcpSocket.port);
        const h = p.tcpSocket.host ?? host;
        return await new Promise((resolve) => {
          const s = net.connect({ host: h, port, timeout: timeoutMs });
          const done = (ok: boolean, detail: string) => {
            s.destroy();
            resolve({ ok, detail });
          };
          s.once('connect', () => done(true, 'connected'));
          s.once('timeout', () => done(false, `dial tcp ${h}:${port}: i/o timeout`));
          s.once('error', (e) => done(false, `dial tcp ${h}:${port}: ${e.message}`));
        });
      }
      if (p.httpGet) {
        const g = p.httpGet;
        const port = this.resolvePort(ctr.spec, g.port);
        const scheme = (g.scheme ?? 'HTTP').toUpperCase();
        const mod = scheme === 'HTTPS' ? https : http;
        const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.33' };
        for (const hh of g.httpHeaders ?? []) headers[hh.name] = hh.value;
        return await new Promise((resolve) => {
          const req = mod.request(
            {
              host: g.host ?? host,
              port,
              path: g.path ?? '/',
              method: 'GET',
              headers,
              timeout: timeoutMs,
              rejectUnauthorized: false,
            },
            (res) => {
              res.resume();
              const code = res.statusCode ?? 0;
              resolve({ ok: code >= 200 && code < 400, detail: `HTTP probe failed with statuscode: ${code}` });
            },
          );
          req.on('timeout', () => req.destroy(new Error('timeout')));
          req.on('error', (e) =>
            resolve({
              ok: false,
              detail: `Get ${scheme.toLowerCase()}://${g.host ?? host}:${port}${g.path ?? '/'}: ${e.message}`,
            }),
          );
          req.end();
        });
      }
      if (p.exec?.command?.length) {
        if (!ctr.pid) return { ok: false, detail: 'container not running' };
        const r = await run('nsenter', ['-t', String(ctr.pid), '-n', '-m', '-u', '--', ...p.exec.command], {
          timeout: timeoutMs,
          env: { PATH: `${this.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
        });
        return {
          ok: r.code === 0,
          detail: `exec ${p.exec.command.join(' ')}: exit ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`.slice(
            0,
            300,
          ),
        };
      }
      if (p.grpc) {
        // No gRPC health client here: a TCP connect stands in for it.
        return await this.probe(rt, ctr, { ...p, grpc: undefined, tcpSocket: { port: p.grpc.port } });
      }
      return { ok: true, detail: 'no handler' };
    } catch (e) {
      return { ok: false, detail: errMsg(e) };
    }
  }

  // ---------------------------------------------------------------- termination
  killGroup(ctr: Ctr, sig: NodeJS.Signals): void {
    if (!ctr.pid) return;
    try {
      process.kill(-ctr.pid, sig);
    } catch {
      try {
        process.kill(ctr.pid, sig);
      } catch {
        /* gone */
      }
    }
  }

  terminate(rt: PodRt, graceSeconds: number, deleteFromApi = true): void {
    const killAt = Date.now() + graceSeconds * 1000;
    if (rt.terminating) {
      if (rt.killAtMs !== undefined && killAt < rt.killAtMs) this.scheduleKill(rt, killAt);
      return;
    }
    rt.terminating = true;
    clearTimeout(rt.refreshTimer);
    log(`${rt.ns}/${rt.name}: terminating (grace ${graceSeconds}s)`);
    for (const ctr of rt.ctrs.values()) {
      for (const t of ctr.timers) clearTimeout(t);
      ctr.timers = [];
      clearTimeout(ctr.restartTimer);
      ctr.ready = false;
    }
    this.markDirty(rt);
    this.scheduleKill(rt, killAt);
    rt.abort.abort();
    (rt.startPromise ?? Promise.resolve())
      .then(() => this.stopContainers(rt))
      .then(async () => {
        clearTimeout(rt.killTimer);
        await this.removeSandbox(rt);
        this.pods.delete(rt.uid);
        if (deleteFromApi) {
          try {
            await this.core.deleteNamespacedPod({
              name: rt.name,
              namespace: rt.ns,
              gracePeriodSeconds: 0,
              body: { gracePeriodSeconds: 0, preconditions: { uid: rt.uid } },
            });
          } catch (e) {
            if (errCode(e) !== 404 && errCode(e) !== 409) log(`delete ${rt.ns}/${rt.name}: ${errMsg(e)}`);
          }
        }
        log(`${rt.ns}/${rt.name}: terminated and removed`);
      })
      .catch((e: unknown) => log(`terminate ${rt.ns}/${rt.name}: ${errMsg(e)}`));
  }

  scheduleKill(rt: PodRt, at: number): void {
    clearTimeout(rt.killTimer);
    rt.killAtMs = at;
    rt.killTimer = setTimeout(
      () => {
        for (const ctr of rt.ctrs.values()) {
          if (ctr.proc) {
            log(`${rt.ns}/${rt.name}/${ctr.spec.name}: grace period over, SIGKILL`);
            this.killGroup(ctr, 'SIGKILL');
          }
        }
      },
      Math.max(0, at - Date.now()),
    );
  }

  async stopContainers(rt: PodRt): Promise<void> {
    await Promise.all(
      [...rt.ctrs.values()].map(async (ctr) => {
        if (!ctr.proc) return;
        const pre = ctr.spec.lifecycle?.preStop;
        if (pre?.exec?.command?.length && ctr.pid) {
          const left = Math.max(0, (rt.killAtMs ?? Date.now()) - Date.now());
          await run('nsenter', ['-t', String(ctr.pid), '-n', '-m', '-u', '--', ...pre.exec.command], { timeout: left });
        } else if (pre?.sleep?.seconds) {
          const left = Math.max(0, (rt.killAtMs ?? Date.now()) - Date.now());
          await sleep(Math.min(left, pre.sleep.seconds * 1000));
        }
        this.event(rt, 'Normal', 'Killing', `Stopping container ${ctr.spec.name}`, `spec.containers{${ctr.spec.name}}`);
        this.killGroup(ctr, 'SIGTERM');
        await ctr.exited;
      }),
    );
  }

  // ---------------------------------------------------------------- status
  markDirty(rt: PodRt): void {
    rt.dirty = true;
    if (rt.patching) return;
    rt.patching = true;
    void (async () => {
      while (rt.dirty) {
        rt.dirty = false;
        try {
          await this.core.patchNamespacedPodStatus(
            { name: rt.name, namespace: rt.ns, body: { status: this.podStatus(rt) } },
            this.mergePatch,
          );
        } catch (e) {
          if (errCode(e) === 404) break;
          log(`status ${rt.ns}/${rt.name}: ${errMsg(e)}`);
          await sleep(1000);
          rt.dirty = true;
        }
      }
      rt.patching = false;
    })();
  }

  cond(rt: PodRt, type: string, ok: boolean, reason?: string) {
    const status = ok ? 'True' : 'False';
    const prev = rt.conditionTimes.get(type);
    const at = prev && prev.status === status ? prev.at : now();
    rt.conditionTimes.set(type, { status, at });
    return { type, status, lastTransitionTime: at, lastProbeTime: null, ...(reason && !ok ? { reason } : {}) };
  }

  podStatus(rt: PodRt) {
    const ctrs = [...rt.ctrs.values()];
    const allReady = ctrs.length > 0 && ctrs.every((c) => c.ready) && !rt.terminating;
    const anyRunning = ctrs.some((c) => 'running' in c.state);
    const phase = rt.phaseOverride ?? (anyRunning || ctrs.some((c) => c.startedAtMs > 0) ? 'Running' : 'Pending');
    return {
      phase,
      conditions: [
        this.cond(rt, 'PodReadyToStartContainers', rt.ip !== undefined),
        this.cond(rt, 'Initialized', true),
        this.cond(rt, 'Ready', allReady, 'ContainersNotReady'),
        this.cond(rt, 'ContainersReady', allReady, 'ContainersNotReady'),
        this.cond(rt, 'PodScheduled', true),
      ],
      hostIP: BRIDGE_IP,
      hostIPs: [{ ip: BRIDGE_IP }],
      ...(rt.ip ? { podIP: rt.ip, podIPs: [{ ip: rt.ip }] } : {}),
      startTime: rt.startTime,
      containerStatuses: ctrs.map((c) => ({
        name: c.spec.name,
        image: c.spec.image ?? '',
        imageID: `bka-process://${c.spec.image ?? ''}`,
        ...('waiting' in c.state ? {} : { containerID: this.containerId(rt, c) }),
        ready: c.ready,
        started: c.started && 'running' in c.state,
        restartCount: c.restartCount,
        state: c.state,
        lastState: c.lastState ?? {},
      })),
    };
  }

  // ---------------------------------------------------------------- main
  async cleanupLeftovers(): Promise<void> {
    const names = clusterNetnses(this.p.netns, false);
    const inodes = new Set(names.map((n) => netnsInode(netnsPath(n))).filter((i): i is number => i !== undefined));
    for (const pid of inodes.size ? pidsInNetns(inodes) : []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const n of names) await run('ip', ['netns', 'del', n]);
    if (names.length) log(`cleaned up ${names.length} leftover pod netns`);
  }

  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log('shutting down: stopping every pod process (the pods stay in the API)');
    await Promise.all(
      [...this.pods.values()].map(async (rt) => {
        rt.terminating = true;
        for (const ctr of rt.ctrs.values()) {
          for (const t of ctr.timers) clearTimeout(t);
          clearTimeout(ctr.restartTimer);
          this.killGroup(ctr, 'SIGTERM');
        }
        const t = setTimeout(() => {
          for (const ctr of rt.ctrs.values()) this.killGroup(ctr, 'SIGKILL');
        }, 3000);
        await Promise.all([...rt.ctrs.values()].map((c) => c.exited ?? Promise.resolve()));
        clearTimeout(t);
        await this.removeSandbox(rt);
      }),
    );
    await this.services.stop();
    await this.scheduler.stop();
    log('shut down');
  }

  /**
   * The kubelet's HTTPS endpoint, enough for `kubectl logs [-f] [--tail N]` through the API server:
   * GET /containerLogs/<ns>/<pod>/<container>. Only reachable inside the cluster netns.
   */
  serveLogs(): Promise<void> {
    const srv = https.createServer(
      {
        cert: fs.readFileSync(path.join(this.p.pkiDir, 'apiserver.crt')),
        key: fs.readFileSync(path.join(this.p.pkiDir, 'apiserver.key')),
      },
      (req, res) => {
        const url = new URL(req.url ?? '/', 'https://kubelet');
        const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
        if (req.method !== 'GET' || !m) {
          res.writeHead(404).end('not found: the process kubelet serves only /containerLogs\n');
          return;
        }
        const [ns, pod, ctr] = [m[1] ?? '', m[2] ?? '', m[3] ?? ''].map(decodeURIComponent) as [string, string, string];
        const file = path.join(this.p.podsDir, `${ns}_${pod}`, `${ctr}.log`);
        if (!fs.existsSync(file)) {
          res.writeHead(404).end(`no log for container ${ctr} of pod ${ns}/${pod}\n`);
          return;
        }
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        const content = fs.readFileSync(file);
        let offset = content.length;
        const tail = url.searchParams.get('tailLines');
        if (tail === null) res.write(content);
        else {
          const lines = content.toString('utf8').split('\n');
          if (lines[lines.length - 1] === '') lines.pop();
          const n = Math.max(0, Number(tail) || 0);
          if (n > 0) res.write(lines.slice(-n).join('\n') + '\n');
        }
        if (url.searchParams.get('follow') !== 'true') {
          res.end();
          return;
        }
        // Follow: stream what is appended until the client goes away or the pod is gone.
        const timer = setInterval(() => {
          try {
            const size = fs.statSync(file).size;
            if (size > offset) {
              const fd = fs.openSync(file, 'r');
              const buf = Buffer.alloc(size - offset);
              fs.readSync(fd, buf, 0, buf.length, offset);
              fs.closeSync(fd);
              offset = size;
              res.write(buf);
            }
            const alive = [...this.pods.values()].some((rt) => rt.ns === ns && rt.name === pod);
            if (!alive) {
              clearInterval(timer);
              res.end();
            }
          } catch {
            clearInterval(timer);
            res.end();
          }
        }, 250);
        req.on('close', () => clearInterval(timer));
      },
    );
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(KUBELET_PORT, BRIDGE_IP, () => resolve());
    });
  }

  async main(): Promise<void> {
    await this.cleanupLeftovers();
    await this.serveLogs();
    await this.services.start();
    for (const node of this.nodes) await node.register(log);
    const hb = setInterval(() => {
      for (const node of this.nodes)
        node.heartbeat().catch((e: unknown) => log(`heartbeat ${node.name}: ${errMsg(e)}`));
    }, 10_000);
    // Nodes listed before the first pod arrives, so the first pods are bound at once.
    await this.scheduler.start();
    const informer = makeInformer<V1Pod>(this.kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces());
    informer.on('add', (p) => this.onPod(p));
    informer.on('update', (p) => this.onPod(p));
    informer.on('delete', (p) => this.onPodDeleted(p));
    informer.on('error', (e: unknown) => {
      log(`pod watch error: ${errMsg(e)}; restarting in 1s`);
      setTimeout(() => {
        if (!this.stopping) informer.start().catch((e2: unknown) => log(`informer start: ${errMsg(e2)}`));
      }, 1000);
    });
    await informer.start();
    log(`process kubelet ready: nodes ${this.nodes.map((n) => n.name).join(', ')}, state ${this.p.podsDir}`);
    const onSignal = () => {
      clearInterval(hb);
      informer.stop().catch(() => undefined);
      this.shutdown().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { name: { type: 'string' }, 'bin-dir': { type: 'string' }, nodes: { type: 'string' } },
  });
  if (!values['bin-dir']) {
    process.stderr.write('usage: kubelet.ts --name <cluster> --bin-dir <dir> [--nodes a,b]\n');
    process.exit(2);
  }
  fs.mkdirSync(SA_MOUNT, { recursive: true });
  const k = new Kubelet(
    values.name ?? 'default',
    values['bin-dir'],
    values.nodes ? values.nodes.split(',') : [NODE_NAME],
  );
  k.main().catch((e: unknown) => {
    log(`fatal: ${errMsg(e)}`);
    process.exit(1);
  });
}
