// What every E2E scenario shares: the settings of the run, the context handed from one scenario to the next,
// and the small steps they all take (kubectl in the test namespace, wait for buildkitd at 0).
import assert from 'node:assert/strict';
import type { Diagnostic } from '../../../scripts/ci-report.ts';
import type { Backend, GatewayAccess } from '../backends.ts';
import type { Timeline } from '../timeline.ts';

export const GATEWAY_SELECTOR = 'app.kubernetes.io/name=buildkitd-autoscaler';
export const STATEFULSET = 'buildkitd';

export interface Settings {
  idleTimeoutS: number;
  readyWaitS: number;
  burst: number;
  /** endpoints or dns (BUILDKITD_BACKEND_DISCOVERY). */
  discovery: string;
  /** mock: socat echo in place of buildkitd; real: the example's moby/buildkit, driven with buildctl. */
  buildkitd: 'mock' | 'real';
  /** kustomize: deploy/kubernetes; helm: charts/buildkitd-autoscaler. */
  install: 'kustomize' | 'helm';
}

export interface Context {
  backend: Backend;
  namespace: string;
  timeline: Timeline;
  settings: Settings;
  /** Applies the E2E overlay of the shipped manifests. */
  install(): Promise<void>;
  figures: Map<string, string>;
  diagnostics: Diagnostic[];
  /** Connections served so far, to compare with the gateway's own count. */
  served: number;
  access?: GatewayAccess;
  /** The ready gateway pods (the Deployment may run several replicas); gatewayPod is the first. */
  gatewayPods: string[];
  gatewayPod?: string;
}

export interface Scenario {
  name: string;
  promise: string;
  run(ctx: Context): Promise<string>;
}

export async function kubectlOk(ctx: Context, args: string[], input?: string): Promise<string> {
  const r = await ctx.backend.kubectl(['-n', ctx.namespace, ...args], input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function access(ctx: Context): GatewayAccess {
  assert.ok(ctx.access, 'the gateway is not reachable (install failed)');
  return ctx.access;
}

export async function waitForZero(ctx: Context, what: string): Promise<number> {
  const timeout = (ctx.settings.idleTimeoutS + 120) * 1000;
  return ctx.timeline.until(what, () => ctx.timeline.replicas === 0 && ctx.timeline.readyReplicas === 0, timeout);
}

/** Replica counts as transitions: 0 → 1 → 0, without repeats from readiness-only updates. */
export function transitions(counts: number[]): string {
  return counts.filter((n, i) => i === 0 || counts[i - 1] !== n).join(' → ') || 'nothing';
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
