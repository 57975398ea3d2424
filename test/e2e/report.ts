// The E2E report directory: the same files on every run, pass or fail, so a person or a program reads any
// run the same way (the seed's artifact map). REPORT.md links each of them. Plain data in, files out.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Diagnostic } from '../../scripts/ci-report.ts';
import { type MonitoringReport, renderMonitoring } from './monitoring-report.ts';
import type { NamespaceSnapshot, ScalingAction } from './namespace-snapshot.ts';
import type { Settings } from './scenarios/context.ts';
import type { TimelineEntry } from './timeline.ts';

export type SuiteName = 'mock' | 'real';

export interface Outcome {
  name: string;
  promise: string;
  result: 'pass' | 'fail' | 'skipped';
  /** When the scenario started, in milliseconds from the start of the run. */
  startedMs: number;
  seconds: number;
  observed: string;
  /** The first figure the scenario recorded, for the summary table. */
  keyFigure?: string;
}

export interface ReportSuite {
  name: SuiteName;
  namespace: string;
  settings: Settings;
  outcomes: Outcome[];
  figures: Map<string, string>;
  timeline: { readonly entries: readonly TimelineEntry[] };
  /** Missing when the namespace could not be read at the end. */
  snapshot?: NamespaceSnapshot;
}

export interface RunReport {
  backend: string;
  image: string;
  serverVersion: string;
  command: string;
  suites: ReportSuite[];
  diagnostics: Diagnostic[];
  startedAt: Date;
  seconds: number;
  /** The dashboard and alert checks against Prometheus (local backend); error says why they did not run. */
  monitoring?: { report?: MonitoringReport; error?: string };
}

/** One record per scenario in k8s-e2e-results.json. */
export interface ScenarioResult {
  name: string;
  suite: SuiteName;
  result: Outcome['result'];
  durationSeconds: number;
  keyFigure: string | null;
  error: string | null;
}

/** The fixed files of every run; the per-pod logs k8s/logs-<pod>.txt come on top. */
export const ARTIFACTS = [
  { file: 'REPORT.md', what: 'this report' },
  {
    file: 'k8s-e2e-results.json',
    what: 'one record per scenario: name, suite, result, durationSeconds, keyFigure, error',
  },
  {
    file: 'k8s/scaling-actions.json',
    what: 'every scale decision the gateway made (writes, failed writes, skips), from its log (its Events when no log survived)',
  },
  {
    file: 'k8s/resources.json',
    what: 'every object of the test namespaces at the end of each suite (kubectl get -o json)',
  },
  { file: 'k8s/resources.txt', what: 'the same objects, as kubectl get -o wide prints them' },
  { file: 'k8s/events.txt', what: 'the Events of the test namespaces' },
  {
    file: 'k8s/timeline.txt',
    what: 'waterfall of the scenarios, then replicas, pods, marks and scale decisions in time order',
  },
  { file: 'diagnostics.json', what: 'the diagnostics, read by scripts/ci-report.ts for CI annotations' },
  { file: 'timeline.jsonl', what: 'the timeline from watches, one JSON entry per line' },
] as const;

/** k8s/logs-<pod>.txt; with several suites the pod name carries its suite, as buildkitd-0 runs in each. */
export function podLogFile(suite: ReportSuite, pod: string, severalSuites: boolean): string {
  const name = `${severalSuites ? `${suite.name}_` : ''}${pod}`.replaceAll(/[^A-Za-z0-9_.-]/g, '_');
  return `k8s/logs-${name}.txt`;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export const SUITE_TITLE = {
  mock: "buildkitd mocked by an `alpine/socat` echo on port 8273 (the seed guide's mock)",
  real: 'buildkitd as shipped (`moby/buildkit:v0.18.2`), driven with `buildctl`',
} as const satisfies Record<SuiteName, string>;

const ICON = { pass: '✅ pass', fail: '❌ fail', skipped: '⏭️ skipped' } as const;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function podLogLinks(run: RunReport): { file: string; suite: ReportSuite; pod: string }[] {
  const several = run.suites.length > 1;
  return run.suites.flatMap((suite) =>
    [...(suite.snapshot?.podLogs.keys() ?? [])].map((pod) => ({ file: podLogFile(suite, pod, several), suite, pod })),
  );
}

export function renderReport(run: RunReport): string {
  const all = run.suites.flatMap((suite) => suite.outcomes.map((o) => ({ suite, o })));
  const count = (r: Outcome['result']) => all.filter(({ o }) => o.result === r).length;
  const [passed, failed, skipped] = [count('pass'), count('fail'), count('skipped')];
  const several = run.suites.length > 1;
  const label = (suite: ReportSuite, o: Outcome) => (several ? `${o.name} (${suite.name})` : o.name);
  const first = run.suites[0]?.settings;
  const lines = [
    `# buildkitd-autoscaler E2E (${run.backend})`,
    '',
    `**${failed === 0 && skipped === 0 ? 'PASS' : 'FAIL'}: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}** in ${run.seconds.toFixed(0)}s, started ${run.startedAt.toISOString()}`,
    '',
    '| scenario | result | duration | key figure |',
    '| --- | --- | --- | --- |',
    ...all.map(
      ({ suite, o }) =>
        `| ${label(suite, o)} | ${ICON[o.result]} | ${o.seconds.toFixed(1)}s | ${escapeCell(o.result === 'fail' ? o.observed.slice(0, 160) : (o.keyFigure ?? ''))} |`,
    ),
    '',
    '## Artifacts',
    '',
    'In this directory on every run, pass or fail:',
    '',
    ...ARTIFACTS.map((a) => `- [${a.file}](${a.file}): ${a.what}`),
    `- pod logs, one file per pod that ran (terminated and replaced pods too): ${
      podLogLinks(run)
        .map((l) => `[${l.file.slice('k8s/'.length)}](${l.file})`)
        .join(', ') || 'none'
    }`,
    '',
    '## Setup',
    '',
    `- \`${run.command}\``,
    `- Kubernetes server ${run.serverVersion}; the gateway image \`${run.image}\` runs as a pod with its own ServiceAccount and namespaced Role, installed with ${first?.install === 'helm' ? 'the Helm chart' : 'deploy/kubernetes (kustomize)'}`,
    `- E2E settings: SCALE_DOWN_IDLE_TIMEOUT=${first?.idleTimeoutS ?? '?'}s, READY_WAIT_TIMEOUT=${first?.readyWaitS ?? '?'}s, BUILDKITD_BACKEND_DISCOVERY=${first?.discovery ?? '?'} (the shipped defaults are 2m0s and 5m0s)`,
    ...run.suites.map(
      (suite) => `- suite **${suite.name}** in namespace \`${suite.namespace}\`: ${SUITE_TITLE[suite.name]}`,
    ),
    '',
    '## What each scenario promises and what was observed',
    '',
    '| scenario | promise | observed |',
    '| --- | --- | --- |',
    ...all.map(
      ({ suite, o }) =>
        `| ${ICON[o.result].split(' ')[0] ?? ''} ${label(suite, o)} | ${escapeCell(o.promise)} | ${escapeCell(o.observed)} |`,
    ),
    '',
    '## Figures',
    '',
    '| what | value |',
    '| --- | --- |',
    ...run.suites.flatMap((suite) =>
      [...suite.figures].map(([k, v]) => `| ${escapeCell(several ? `${k} (${suite.name})` : k)} | ${escapeCell(v)} |`),
    ),
    '',
  ];
  if (run.monitoring) lines.push(...renderMonitoring(run.monitoring.report, run.monitoring.error));
  if (run.diagnostics.length > 0) {
    lines.push('## Diagnostics', '', ...run.diagnostics.map((d) => `- **${d.level}** ${d.title}: ${d.message}`), '');
  }
  for (const suite of run.suites) {
    lines.push(
      `## Timeline${several ? ` (${suite.name})` : ''}`,
      '',
      '<details><summary>StatefulSet replicas, pods and scenario marks, from watches (seconds from the start of the run; with the gateway\'s decisions in <a href="k8s/timeline.txt">k8s/timeline.txt</a>)</summary>',
      '',
      '```',
      ...suite.timeline.entries.map((e) => `${(e.t / 1000).toFixed(1).padStart(7)}  ${e.source.padEnd(11)} ${e.text}`),
      '```',
      '',
      '</details>',
      '',
    );
  }
  return lines.join('\n');
}

const BAR_WIDTH = 60;

/** The human-readable waterfall: scenario bars on the run's time axis, then every entry in time order. */
export function renderTimeline(run: RunReport): string {
  const origin = run.startedAt.getTime();
  const lines = [
    `buildkitd-autoscaler E2E (${run.backend}), started ${run.startedAt.toISOString()}; times in seconds from the start of the run`,
    '',
  ];
  for (const suite of run.suites) {
    const end = Math.max(
      1,
      ...suite.outcomes.map((o) => o.startedMs + o.seconds * 1000),
      ...suite.timeline.entries.map((e) => e.t),
    );
    const begin = Math.min(end, ...suite.outcomes.map((o) => o.startedMs));
    const col = (ms: number) => Math.round(((ms - begin) / Math.max(1, end - begin)) * BAR_WIDTH);
    const width = Math.max(8, ...suite.outcomes.map((o) => o.name.length));
    lines.push(`== suite ${suite.name}, namespace ${suite.namespace}: ${seconds(begin)} to ${seconds(end)}`, '');
    for (const o of suite.outcomes) {
      const from = col(o.startedMs);
      const to = Math.max(from + 1, col(o.startedMs + o.seconds * 1000));
      const bar = ' '.repeat(from) + (o.result === 'pass' ? '█' : o.result === 'fail' ? '▓' : '░').repeat(to - from);
      lines.push(
        `${o.name.padEnd(width)} ${o.result.padEnd(7)} ${seconds(o.startedMs).padStart(7)} +${seconds(o.seconds * 1000).padStart(7)} |${bar.padEnd(BAR_WIDTH + 1)}|`,
      );
    }
    lines.push('', `${'█ pass  ▓ fail  ░ skipped'}`, '');
    const decisions = (suite.snapshot?.scalingActions ?? []).map((a: ScalingAction) => ({
      t: Date.parse(a.time) - origin,
      source: 'gateway',
      text: `${a.message || a.kind}${a.code ? ` [${a.code}]` : ''} (${a.pod})`,
    }));
    const entries = [...suite.timeline.entries.map((e) => ({ t: e.t, source: e.source, text: e.text })), ...decisions]
      .filter((e) => Number.isFinite(e.t))
      .sort((a, b) => a.t - b.t);
    lines.push(...entries.map((e) => `${seconds(e.t).padStart(8)}  ${e.source.padEnd(11)} ${e.text}`), '');
  }
  return lines.join('\n');
}

export function scenarioResults(run: RunReport): ScenarioResult[] {
  return run.suites.flatMap((suite) =>
    suite.outcomes.map((o) => ({
      name: o.name,
      suite: suite.name,
      result: o.result,
      durationSeconds: Number(o.seconds.toFixed(3)),
      keyFigure: o.result === 'pass' ? (o.keyFigure ?? null) : null,
      error: o.result === 'pass' ? null : o.observed,
    })),
  );
}

/** Writes every artifact of the map into dir (replacing an earlier run's k8s/); returns their paths, relative to dir. */
export async function writeReport(dir: string, run: RunReport): Promise<string[]> {
  const written: string[] = [];
  const put = async (file: string, content: string | Buffer) => {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), content);
    written.push(file);
  };
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  const snapshots = run.suites.flatMap((s) => (s.snapshot ? [s.snapshot] : []));
  const section = (s: NamespaceSnapshot, text: string) =>
    `# suite ${s.suite}, namespace ${s.namespace}\n${text.trimEnd()}\n`;
  await rm(path.join(dir, 'k8s'), { recursive: true, force: true });
  await put('REPORT.md', renderReport(run));
  await put('k8s-e2e-results.json', json(scenarioResults(run)));
  await put('k8s/scaling-actions.json', json(snapshots.flatMap((s) => s.scalingActions)));
  await put(
    'k8s/resources.json',
    json({ apiVersion: 'v1', kind: 'List', items: snapshots.flatMap((s) => s.resources) }),
  );
  await put('k8s/resources.txt', snapshots.map((s) => section(s, s.resourcesText)).join('\n'));
  await put('k8s/events.txt', snapshots.map((s) => section(s, s.eventsText)).join('\n'));
  await put('k8s/timeline.txt', renderTimeline(run));
  await put('diagnostics.json', json(run.diagnostics));
  await put(
    'timeline.jsonl',
    run.suites.flatMap((s) => s.timeline.entries.map((e) => JSON.stringify({ suite: s.name, ...e }))).join('\n') + '\n',
  );
  for (const link of podLogLinks(run)) await put(link.file, link.suite.snapshot?.podLogs.get(link.pod) ?? '');
  const monitoring = run.monitoring?.report;
  await rm(path.join(dir, 'plots'), { recursive: true, force: true });
  await rm(path.join(dir, 'monitoring.json'), { force: true });
  if (monitoring) {
    for (const plot of monitoring.plots) await put(plot.file, plot.png);
    await put('monitoring.json', json(monitoring.checks));
  }
  return written;
}
