// What the process kubelet keeps per pod and per container, and the small helpers every part of it uses.
import type { ChildProcess } from 'node:child_process';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { ImageKind } from './images.ts';

export const START_DELAY_ANNOTATION = 'bka.test/start-delay-ms';

export interface StateRunning {
  running: { startedAt: string };
}
export interface StateWaiting {
  waiting: { reason: string; message?: string };
}
export interface StateTerminated {
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
export type CState = StateRunning | StateWaiting | StateTerminated;

export interface Ctr {
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

export interface PodRt {
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

export function sleepAbortable(ms: number, signal: AbortSignal): Promise<void> {
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

export const now = () => new Date().toISOString();
export const log = (msg: string) => process.stdout.write(`${now()} ${msg}\n`);
export const errMsg = (e: unknown) => {
  const b = (e as { body?: unknown }).body;
  if (typeof b === 'string' && b) return b.slice(0, 300);
  return e instanceof Error ? e.message : String(e);
};
export const errCode = (e: unknown) => (e as { code?: number }).code;

export function podHostname(rt: PodRt): string {
  return (rt.pod.spec?.hostname ?? rt.name).slice(0, 63);
}

export function containerId(rt: PodRt, ctr: Ctr): string {
  return `bka://${rt.uid}/${ctr.spec.name}/${ctr.restartCount}`;
}
