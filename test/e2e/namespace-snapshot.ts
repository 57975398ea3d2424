// What a suite's namespace held at its end, taken before the namespace is deleted: every object, the
// Events, each pod's logs (including pods that went away during the run) and the scale decisions the
// gateway logged. Plain data, so the report writer needs no cluster.
import type { RunResult } from '../support/command.ts';
import type { PodLogs } from './pod-logs.ts';

export interface NamespaceSnapshot {
  suite: string;
  namespace: string;
  /** Every listable namespaced object except Events, as kubectl prints them with -o json. */
  resources: unknown[];
  resourcesText: string;
  eventsText: string;
  /** Pod name -> stdout+stderr of its containers. */
  podLogs: Map<string, string>;
  scalingActions: ScalingAction[];
}

/** One scale decision of the gateway: a write, a failed write, or a write it chose not to make. */
export interface ScalingAction {
  suite: string;
  namespace: string;
  /** The gateway pod that decided, or the Event's reporting instance. */
  pod: string;
  time: string;
  kind: 'scale' | 'scale_failed' | 'scale_skipped';
  direction?: string;
  from?: number;
  to?: number;
  reason?: string;
  code?: string;
  error?: string;
  message: string;
  source: 'gateway log' | 'event';
}

const SCALE_EVENT_KINDS = new Set(['scale', 'scale_failed', 'scale_skipped']);
const SCALE_EVENT_REASONS = new Set(['ScaledUp', 'ScaledDown', 'ScaleFailed']);

type Kubectl = (args: readonly string[]) => Promise<RunResult>;

/** The gateway's JSON log lines of scale decisions, in the order it logged them. */
export function scalingActionsFromLog(suite: string, namespace: string, pod: string, log: string): ScalingAction[] {
  const actions: ScalingAction[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof entry.event !== 'string' || !SCALE_EVENT_KINDS.has(entry.event)) continue;
    const text = (key: string) => (typeof entry[key] === 'string' ? entry[key] : undefined);
    const num = (key: string) => (typeof entry[key] === 'number' ? entry[key] : undefined);
    actions.push({
      suite,
      namespace,
      pod,
      time: text('time') ?? (typeof entry.time === 'number' ? new Date(entry.time).toISOString() : ''),
      kind: entry.event as ScalingAction['kind'],
      direction: text('direction'),
      from: num('from'),
      to: num('to'),
      reason: text('reason'),
      code: text('code'),
      error: text('error'),
      message: text('msg') ?? '',
      source: 'gateway log',
    });
  }
  return actions;
}

interface EventLike {
  reason?: string;
  message?: string;
  eventTime?: string;
  lastTimestamp?: string;
  firstTimestamp?: string;
  reportingInstance?: string;
  source?: { host?: string };
  involvedObject?: { kind?: string };
}

/** The ScaledUp/ScaledDown/ScaleFailed Events the gateway records on the StatefulSet. */
function scalingActionsFromEvents(suite: string, namespace: string, events: EventLike[]): ScalingAction[] {
  return events
    .filter((e) => e.involvedObject?.kind === 'StatefulSet' && SCALE_EVENT_REASONS.has(e.reason ?? ''))
    .map((e) => ({
      suite,
      namespace,
      pod: e.reportingInstance ?? e.source?.host ?? '',
      time: e.eventTime ?? e.lastTimestamp ?? e.firstTimestamp ?? '',
      kind: e.reason === 'ScaleFailed' ? ('scale_failed' as const) : ('scale' as const),
      direction: e.reason === 'ScaledUp' ? 'up' : e.reason === 'ScaledDown' ? 'down' : undefined,
      message: e.message ?? '',
      source: 'event' as const,
    }))
    .sort((a, b) => a.time.localeCompare(b.time));
}

export async function snapshotNamespace(
  kubectl: Kubectl,
  suite: string,
  namespace: string,
  podLogs: PodLogs,
): Promise<NamespaceSnapshot> {
  const problems: string[] = [];
  const out = async (args: string[]) => {
    const r = await kubectl(args);
    if (r.code !== 0) problems.push(`# kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  // "All objects": whatever the API server lists in a namespace, not a list that goes stale.
  const kinds = (await out(['api-resources', '--namespaced', '--verbs=list', '-o', 'name']))
    .split('\n')
    .map((k) => k.trim())
    .filter((k) => k && !/^events(\.|$)/.test(k))
    .join(',');
  const json = kinds ? await out(['-n', namespace, 'get', kinds, '-o', 'json', '--ignore-not-found']) : '';
  const resources = json.trim() ? ((JSON.parse(json) as { items?: unknown[] }).items ?? []) : [];
  const text = kinds
    ? await out(['-n', namespace, 'get', kinds, '-o', 'wide', '--ignore-not-found', '--show-kind'])
    : '';
  const eventsText = await out([
    '-n',
    namespace,
    'get',
    'events',
    '--sort-by=.metadata.creationTimestamp',
    '-o',
    'wide',
  ]);
  const eventsJson = await out(['-n', namespace, 'get', 'events', '-o', 'json']);
  const events = eventsJson.trim() ? ((JSON.parse(eventsJson) as { items?: EventLike[] }).items ?? []) : [];
  const logs = await podLogs.collect();
  const fromLogs = [...logs]
    .flatMap(([pod, log]) => scalingActionsFromLog(suite, namespace, pod, log))
    .sort((a, b) => a.time.localeCompare(b.time));
  return {
    suite,
    namespace,
    resources,
    resourcesText: text + problems.map((p) => `${p}\n`).join(''),
    eventsText,
    podLogs: logs,
    // The gateway's log has every decision (skips too); its Events stand in when no gateway log survived.
    scalingActions: fromLogs.length > 0 ? fromLogs : scalingActionsFromEvents(suite, namespace, events),
  };
}
