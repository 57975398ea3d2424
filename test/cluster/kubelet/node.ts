// The Node objects the process kubelet plays: registration and the status heartbeat of each.
import os from 'node:os';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { BRIDGE_IP, POD_PREFIX_LEN } from '../internal/common.ts';

export const KUBELET_PORT = 10250;
const SUBNET = BRIDGE_IP.split('.').slice(0, 3).join('.');

export class ProcessNode {
  readonly name: string;
  private readonly core: CoreV1Api;
  private readonly started = new Date().toISOString();
  private readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  constructor(kc: KubeConfig, name: string) {
    this.name = name;
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Creates the Node (kept when it exists, with whatever cordon or taints it carries) and posts its status. */
  async register(log: (msg: string) => void): Promise<void> {
    // Every node shares the cluster netns, so the pod CIDR is the bridge's (pod IPs come from one allocator).
    const body = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.name,
        labels: {
          'kubernetes.io/hostname': this.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'bka.test/process-kubelet': 'true',
        },
      },
      spec: { podCIDR: `${SUBNET}.0/${POD_PREFIX_LEN}`, podCIDRs: [`${SUBNET}.0/${POD_PREFIX_LEN}`] },
    };
    try {
      await this.core.createNode({ body });
      log(`registered node ${this.name}`);
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
    await this.heartbeat();
    await this.clearNotReadyTaint(log);
  }

  /**
   * The API server taints every new Node node.kubernetes.io/not-ready:NoSchedule (TaintNodesByCondition);
   * the node lifecycle controller, which does not run here, takes it off once the node is Ready.
   */
  private async clearNotReadyTaint(log: (msg: string) => void): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const node = await this.core.readNode({ name: this.name });
      const taints = node.spec?.taints ?? [];
      const kept = taints.filter(
        (t) => t.key !== 'node.kubernetes.io/not-ready' && t.key !== 'node.kubernetes.io/unreachable',
      );
      if (kept.length === taints.length) return;
      try {
        await this.core.replaceNode({ name: this.name, body: { ...node, spec: { ...node.spec, taints: kept } } });
        log(`node ${this.name}: Ready, not-ready taint removed`);
        return;
      } catch (e) {
        if ((e as { code?: number }).code !== 409) throw e;
      }
    }
  }

  async heartbeat(): Promise<void> {
    await this.core.patchNodeStatus({ name: this.name, body: { status: this.status() } }, this.mergePatch);
  }

  private status() {
    const t = new Date().toISOString();
    const cond = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: t,
      lastTransitionTime: this.started,
    });
    const memory = `${Math.floor(os.totalmem() / 1024)}Ki`;
    return {
      conditions: [
        cond('Ready', 'True', 'KubeletReady', 'process kubelet is posting ready status'),
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'ok'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'ok'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'ok'),
      ],
      addresses: [
        { type: 'InternalIP', address: BRIDGE_IP },
        { type: 'Hostname', address: this.name },
      ],
      capacity: { cpu: String(os.cpus().length), memory, pods: '110', 'ephemeral-storage': '100Gi' },
      allocatable: { cpu: String(os.cpus().length), memory, pods: '110', 'ephemeral-storage': '100Gi' },
      daemonEndpoints: { kubeletEndpoint: { Port: KUBELET_PORT } },
      nodeInfo: {
        machineID: this.name,
        systemUUID: this.name,
        bootID: 'bka',
        kernelVersion: os.release(),
        osImage: 'buildkitd-autoscaler process kubelet',
        containerRuntimeVersion: 'bka-process://1',
        kubeletVersion: 'v1.33.13',
        kubeProxyVersion: '',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
    };
  }
}
