// The process kubelet: a daemon in the cluster netns that plays the kubelet of every Node of the cluster
// (node.ts). It registers them, binds unscheduled pods to one (scheduler.ts: there is no kube-scheduler),
// runs each container as a local process in the pod's own network namespace (veth on the cluster bridge),
// probes it, patches pod status, restarts crashed containers and honours graceful deletion. Pods are
// watched with an informer; nothing polls the API.
// This file holds the pod lifecycle and the daemon; each job lives beside it (sandbox.ts, volumes.ts, env.ts,
// images.ts, supervision.ts, probes.ts, status.ts, log-server.ts) as functions taking this Kubelet's state.
//
// Usage (started by `up`): node test/cluster/kubelet/main.ts --name <cluster> --bin-dir <dir> [--nodes a,b]
// Env: BKA_KUBELET_START_DELAY_MS (default start delay of every pod, simulating an image pull; the pod
//      annotation bka.test/start-delay-ms wins), BKA_KUBELET_MAX_BACKOFF_MS (crash restart backoff cap).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { NODE_NAME, SA_MOUNT, clusterPaths, type ClusterPaths } from '../internal/common.ts';
import { imageKind } from './images.ts';
import { serveLogs } from './log-server.ts';
import { ProcessNode } from './node.ts';
import {
  START_DELAY_ANNOTATION,
  sleepAbortable,
  now,
  log,
  errMsg,
  errCode,
  podHostname,
  type PodRt,
} from './pod-runtime.ts';
import { makeSandbox, removeSandbox, cleanupLeftovers } from './sandbox.ts';
import { Scheduler } from './scheduler.ts';
import { Services, resolvConf } from './services.ts';
import { markDirty } from './status.ts';
import { startContainer, killGroup, terminate } from './supervision.ts';
import { materializeVolumes, scheduleRefresh, refreshDownwardApi } from './volumes.ts';

export class Kubelet {
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
    if (metadataChanged) refreshDownwardApi(rt);
    if (pod.metadata?.deletionTimestamp) terminate(this, rt, this.graceSeconds(pod));
  }

  onPodDeleted(pod: V1Pod): void {
    this.scheduler.forget(pod.metadata?.uid ?? '');
    const rt = this.pods.get(pod.metadata?.uid ?? '');
    if (rt) {
      log(`pod ${rt.ns}/${rt.name} was removed from the API: stopping its processes`);
      rt.pod = pod;
      terminate(this, rt, Math.min(2, this.graceSeconds(pod)), false);
    }
  }

  graceSeconds(pod: V1Pod): number {
    return pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
  }

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
    await makeSandbox(this, rt);
    const host = podHostname(rt);
    const sub = rt.pod.spec?.subdomain;
    fs.writeFileSync(
      path.join(rt.dir, 'hosts'),
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n` +
        `${rt.ip}\t${sub ? `${host}.${sub}.${rt.ns}.svc.cluster.local ` : ''}${host}\n`,
    );
    log(`${rt.ns}/${rt.name}: sandbox ${rt.netns} ip ${rt.ip}`);
    markDirty(this, rt);
    const delay = Number(rt.pod.metadata?.annotations?.[START_DELAY_ANNOTATION] ?? this.defaultDelayMs) || 0;
    if (delay > 0) {
      this.event(rt, 'Normal', 'Pulling', `simulated image pull: waiting ${delay}ms (${START_DELAY_ANNOTATION})`);
      await sleepAbortable(delay, rt.abort.signal);
    }
    if (rt.terminating) return;
    try {
      const refreshAt = await materializeVolumes(this, rt);
      if (refreshAt !== undefined) scheduleRefresh(this, rt, refreshAt);
    } catch (e) {
      for (const ctr of rt.ctrs.values())
        ctr.state = { waiting: { reason: 'CreateContainerConfigError', message: errMsg(e) } };
      this.event(rt, 'Warning', 'Failed', `volumes: ${errMsg(e)}`);
      markDirty(this, rt);
      return;
    }
    for (const ctr of rt.ctrs.values()) await startContainer(this, rt, ctr);
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
          killGroup(ctr, 'SIGTERM');
        }
        const t = setTimeout(() => {
          for (const ctr of rt.ctrs.values()) killGroup(ctr, 'SIGKILL');
        }, 3000);
        await Promise.all([...rt.ctrs.values()].map((c) => c.exited ?? Promise.resolve()));
        clearTimeout(t);
        await removeSandbox(this, rt);
      }),
    );
    await this.services.stop();
    await this.scheduler.stop();
    log('shut down');
  }

  async main(): Promise<void> {
    await cleanupLeftovers(this);
    await serveLogs(this);
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
    process.stderr.write('usage: kubelet/main.ts --name <cluster> --bin-dir <dir> [--nodes a,b]\n');
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
