// The pod status the kubelet reports: phase, conditions, container states, written as a merge patch.
import { sleep } from '../../support/wait.ts';
import { BRIDGE_IP } from '../internal/common.ts';
import type { Kubelet } from './main.ts';
import { now, log, errMsg, errCode, containerId, type PodRt } from './pod-runtime.ts';

export function markDirty(k: Kubelet, rt: PodRt): void {
  rt.dirty = true;
  if (rt.patching) return;
  rt.patching = true;
  void (async () => {
    while (rt.dirty) {
      rt.dirty = false;
      try {
        await k.core.patchNamespacedPodStatus(
          { name: rt.name, namespace: rt.ns, body: { status: podStatus(rt) } },
          k.mergePatch,
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

export function cond(rt: PodRt, type: string, ok: boolean, reason?: string) {
  const status = ok ? 'True' : 'False';
  const prev = rt.conditionTimes.get(type);
  const at = prev && prev.status === status ? prev.at : now();
  rt.conditionTimes.set(type, { status, at });
  return { type, status, lastTransitionTime: at, lastProbeTime: null, ...(reason && !ok ? { reason } : {}) };
}

export function podStatus(rt: PodRt) {
  const ctrs = [...rt.ctrs.values()];
  const allReady = ctrs.length > 0 && ctrs.every((c) => c.ready) && !rt.terminating;
  const anyRunning = ctrs.some((c) => 'running' in c.state);
  const phase = rt.phaseOverride ?? (anyRunning || ctrs.some((c) => c.startedAtMs > 0) ? 'Running' : 'Pending');
  return {
    phase,
    conditions: [
      cond(rt, 'PodReadyToStartContainers', rt.ip !== undefined),
      cond(rt, 'Initialized', true),
      cond(rt, 'Ready', allReady, 'ContainersNotReady'),
      cond(rt, 'ContainersReady', allReady, 'ContainersNotReady'),
      cond(rt, 'PodScheduled', true),
    ],
    hostIP: BRIDGE_IP,
    hostIPs: [{ ip: BRIDGE_IP }],
    ...(rt.ip ? { podIP: rt.ip, podIPs: [{ ip: rt.ip }] } : {}),
    startTime: rt.startTime,
    containerStatuses: ctrs.map((c) => ({
      name: c.spec.name,
      image: c.spec.image ?? '',
      imageID: `bka-process://${c.spec.image ?? ''}`,
      ...('waiting' in c.state ? {} : { containerID: containerId(rt, c) }),
      ready: c.ready,
      started: c.started && 'running' in c.state,
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState ?? {},
    })),
  };
}
