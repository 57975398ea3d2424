// The process kubelet's scheduler (no kube-scheduler runs here): binds each unscheduled pod to the first of
// the cluster's nodes it fits on (node-fit.ts: cordons, NoSchedule/NoExecute taints, nodeSelector, required
// node affinity), so pods pack onto the first node as long as it takes them. A pod that fits nowhere stays
// Pending with PodScheduled=False/Unschedulable and is tried again whenever a node changes.
import {
  CoreV1Api,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type ObjectCache,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { pickNode } from './node-fit.ts';

export interface SchedulerCallbacks {
  log: (msg: string) => void;
  /** Records an Event on the pod (Scheduled, FailedScheduling). */
  event: (
    pod: { ns: string; name: string; uid: string },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ) => void;
}

export class Scheduler {
  private readonly core: CoreV1Api;
  private readonly nodeNames: readonly string[];
  private readonly callbacks: SchedulerCallbacks;
  private readonly nodes: Informer<V1Node> & ObjectCache<V1Node>;
  /** Binding requests in flight, by pod UID. */
  private readonly binding = new Set<string>();
  /** Pods no node takes now, by UID, with the reason last written to their status. */
  private readonly waiting = new Map<string, { pod: V1Pod; reason: string }>();
  private readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  private stopped = false;

  constructor(kc: KubeConfig, nodeNames: readonly string[], callbacks: SchedulerCallbacks) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.nodeNames = nodeNames;
    this.callbacks = callbacks;
    this.nodes = makeInformer<V1Node>(kc, '/api/v1/nodes', () => this.core.listNode());
    const retry = () => {
      for (const { pod } of [...this.waiting.values()]) this.schedule(pod);
    };
    this.nodes.on('add', retry);
    this.nodes.on('update', retry);
    this.nodes.on('error', (e: unknown) => {
      callbacks.log(`node watch error: ${e instanceof Error ? e.message : String(e)}; restarting in 1s`);
      setTimeout(() => {
        if (!this.stopped) this.nodes.start().catch(() => undefined);
      }, 1000);
    });
  }

  start(): Promise<void> {
    return this.nodes.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.nodes.stop().catch(() => undefined);
  }

  /** Binds a pod that has no node yet (idempotent while a binding is in flight). */
  schedule(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const ns = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    if (this.stopped || this.binding.has(uid)) return;
    if (pod.spec?.nodeName || pod.metadata?.deletionTimestamp) {
      this.waiting.delete(uid);
      return;
    }
    const ours = this.nodes
      .list()
      .filter((n) => this.nodeNames.includes(n.metadata?.name ?? ''))
      .sort((a, b) => this.nodeNames.indexOf(a.metadata?.name ?? '') - this.nodeNames.indexOf(b.metadata?.name ?? ''));
    const choice = pickNode(pod, ours);
    if ('unschedulable' in choice) {
      const reason = choice.unschedulable;
      const before = this.waiting.get(uid)?.reason;
      this.waiting.set(uid, { pod, reason });
      if (before === reason) return;
      this.callbacks.log(`${ns}/${name}: unschedulable: ${reason}`);
      this.callbacks.event({ ns, name, uid }, 'Warning', 'FailedScheduling', reason);
      const condition = {
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message: reason,
        lastTransitionTime: new Date().toISOString(),
        lastProbeTime: null,
      };
      this.core
        .patchNamespacedPodStatus(
          { name, namespace: ns, body: { status: { phase: 'Pending', conditions: [condition] } } },
          this.mergePatch,
        )
        .catch((e: unknown) =>
          this.callbacks.log(`status ${ns}/${name}: ${e instanceof Error ? e.message : String(e)}`),
        );
      return;
    }
    this.waiting.delete(uid);
    this.binding.add(uid);
    const node = choice.node;
    this.core
      .createNamespacedPodBinding({
        name,
        namespace: ns,
        body: {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name, namespace: ns, uid },
          target: { apiVersion: 'v1', kind: 'Node', name: node },
        },
      })
      .then(
        () => {
          this.callbacks.log(`bound ${ns}/${name} to ${node}`);
          this.callbacks.event(
            { ns, name, uid },
            'Normal',
            'Scheduled',
            `Successfully assigned ${ns}/${name} to ${node}`,
          );
        },
        (e: unknown) => {
          this.callbacks.log(`bind ${ns}/${name} to ${node}: ${e instanceof Error ? e.message : String(e)}`);
          setTimeout(() => this.binding.delete(uid), 1000);
        },
      );
  }

  /** The pod is gone from the API. */
  forget(uid: string): void {
    this.waiting.delete(uid);
    this.binding.delete(uid);
  }
}
