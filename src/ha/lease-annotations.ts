import { isIP } from 'node:net';
import type { V1Lease } from '@kubernetes/client-node';
import type { ActivitySnapshot, ScaleDownProposal, WakeRequest } from '../scaler/types.ts';

/**
 * The codec of what replicas write into Lease annotations (no other store): each replica's activity report
 * on its own Lease, the scale-down proposal and the holder's instance id on the leader Lease. JSON with ISO
 * times, so `kubectl get lease -o yaml` is readable by a person.
 */
export const activityAnnotation = 'buildkitd-autoscaler/activity';
export const proposalAnnotation = 'buildkitd-autoscaler/scale-down';
/** On the leader Lease: the holder process's random instance id, so two processes with one identity never both lead. */
export const leaderInstanceAnnotation = 'buildkitd-autoscaler/leader-instance';

export interface PublishedActivity extends ActivitySnapshot {
  /** Random per process: two processes with one identity are told apart. */
  instance: string;
  ack: string | undefined;
  draining: boolean;
  /** Wake requests this replica accepted and that are still in force. */
  wake?: readonly WakeRequest[];
  /** "ip:port" of this replica's ops server: a replica cut off from the API server asks it (GET /report). */
  ops?: string | undefined;
}

interface ActivityJson {
  instance: string;
  open: number;
  held: number;
  pods: Record<string, { open: number; lastActive: string }>;
  since: string;
  heldClosed?: string;
  ack?: string;
  draining?: boolean;
  wake?: Array<{ replicas: number; until: string }>;
  ops?: string;
}

export function encodeActivity(activity: PublishedActivity): string {
  const pods: ActivityJson['pods'] = {};
  for (const [name, entry] of Object.entries(activity.pods))
    pods[name] = { open: entry.open, lastActive: new Date(entry.lastActiveAt).toISOString() };
  const json: ActivityJson = {
    instance: activity.instance,
    open: activity.open,
    held: activity.held,
    pods,
    since: new Date(activity.since).toISOString(),
    ...(activity.lastHeldCloseAt ? { heldClosed: new Date(activity.lastHeldCloseAt).toISOString() } : {}),
    ...(activity.ack ? { ack: activity.ack } : {}),
    ...(activity.draining ? { draining: true } : {}),
    ...(activity.wake?.length
      ? {
          wake: activity.wake.map((request) => ({
            replicas: request.replicas,
            until: new Date(request.until).toISOString(),
          })),
        }
      : {}),
    ...(activity.ops ? { ops: activity.ops } : {}),
  };
  return JSON.stringify(json);
}

/** undefined when the annotation is missing or malformed (such a report blocks scale-down: nothing is known). */
export function decodeActivity(text: string | undefined): PublishedActivity | undefined {
  const json = parse(text);
  if (!json || typeof json !== 'object') return undefined;
  const j = json as Partial<ActivityJson>;
  const since = Date.parse(j.since ?? '');
  if (
    typeof j.instance !== 'string' ||
    !isCount(j.open) ||
    !isCount(j.held) ||
    Number.isNaN(since) ||
    typeof j.pods !== 'object' ||
    j.pods === null
  )
    return undefined;
  const pods: ActivitySnapshot['pods'] = {};
  for (const [name, entry] of Object.entries(j.pods) as Array<[string, unknown]>) {
    // Any writer can put anything here: a malformed entry must not throw in the reconcile loop.
    if (typeof entry !== 'object' || entry === null) return undefined;
    const { open, lastActive } = entry as Partial<ActivityJson['pods'][string]>;
    const lastActiveAt = typeof lastActive === 'string' ? Date.parse(lastActive) : Number.NaN;
    if (!isCount(open) || Number.isNaN(lastActiveAt)) return undefined;
    pods[name] = { open, lastActiveAt };
  }
  const wake = decodeWake(j.wake);
  // Absent from replicas that predate it; a malformed one is dropped, never the report.
  const heldClosed = typeof j.heldClosed === 'string' ? Date.parse(j.heldClosed) : Number.NaN;
  return {
    instance: j.instance,
    open: j.open,
    held: j.held,
    pods,
    since,
    ...(Number.isNaN(heldClosed) ? {} : { lastHeldCloseAt: heldClosed }),
    ack: typeof j.ack === 'string' ? j.ack : undefined,
    draining: j.draining === true,
    ...(wake.length ? { wake } : {}),
    ...(isOpsAddress(j.ops) ? { ops: j.ops } : {}),
  };
}

/** Only "ip:port" (IPv6 in brackets): whoever can write a Lease must not make the others fetch any URL. */
function isOpsAddress(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,5})$/.exec(value);
  return match !== null && isIP(match[1] ?? match[2] ?? '') !== 0 && Number(match[3]) > 0 && Number(match[3]) <= 65535;
}

/** Tolerant: a malformed wake entry is dropped, never the report (its counts still block or allow scale-down). */
export function decodeWake(value: unknown): WakeRequest[] {
  if (!Array.isArray(value)) return [];
  const requests: WakeRequest[] = [];
  for (const entry of value as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { replicas, until } = entry as { replicas?: unknown; until?: unknown };
    const untilMs = typeof until === 'string' ? Date.parse(until) : Number.NaN;
    if (isCount(replicas) && replicas > 0 && !Number.isNaN(untilMs)) requests.push({ replicas, until: untilMs });
  }
  return requests;
}

interface ProposalJson {
  id: string;
  from: number;
  to: number;
  pods: Record<string, string>;
  proposedAt: string;
  committed: boolean;
}

export function encodeProposal(proposal: ScaleDownProposal): string {
  const json: ProposalJson = {
    ...proposal,
    pods: { ...proposal.pods },
    proposedAt: new Date(proposal.proposedAt).toISOString(),
  };
  return JSON.stringify(json);
}

export function decodeProposal(text: string | undefined): ScaleDownProposal | undefined {
  const j = parse(text) as Partial<ProposalJson> | undefined;
  if (!j || typeof j !== 'object') return undefined;
  const proposedAt = Date.parse(j.proposedAt ?? '');
  if (
    typeof j.id !== 'string' ||
    !isCount(j.from) ||
    !isCount(j.to) ||
    typeof j.pods !== 'object' ||
    j.pods === null ||
    Number.isNaN(proposedAt)
  )
    return undefined;
  if (!Object.values(j.pods).every((key) => typeof key === 'string')) return undefined;
  return { id: j.id, from: j.from, to: j.to, pods: { ...j.pods }, proposedAt, committed: j.committed === true };
}

export function leaseAnnotation(lease: V1Lease | undefined, key: string): string | undefined {
  return lease?.metadata?.annotations?.[key];
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function parse(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
