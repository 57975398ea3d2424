// The E2E report directory holds the seed's artifact map on every run, pass or fail, and REPORT.md links
// each file, so a reviewer (or scripts/ci-report.ts) finds the same things in any run.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDiagnostics } from '../../scripts/ci-report.ts';
import { scalingActionsFromLog, type NamespaceSnapshot } from '../e2e/namespace-snapshot.ts';
import { linePlotSvg, svgToPng } from '../e2e/plot.ts';
import { ARTIFACTS, type ReportSuite, type RunReport, writeReport } from '../e2e/report.ts';
import type { Settings } from '../e2e/scenarios/context.ts';

const SEED_MAP = [
  'REPORT.md',
  'k8s-e2e-results.json',
  'k8s/scaling-actions.json',
  'k8s/resources.json',
  'k8s/resources.txt',
  'k8s/events.txt',
  'k8s/timeline.txt',
];

const settings = (buildkitd: Settings['buildkitd']): Settings => ({
  idleTimeoutS: 15,
  readyWaitS: 120,
  burst: 25,
  discovery: 'endpoints',
  buildkitd,
  install: 'kustomize',
});
const started = new Date('2025-01-01T00:00:00.000Z');
const at = (s: number) => new Date(started.getTime() + s * 1000).toISOString();
const gatewayLog = [
  JSON.stringify({
    level: 'info',
    time: at(10),
    event: 'connection_held',
    id: 1,
    msg: 'connection 1 held until buildkitd is ready',
  }),
  JSON.stringify({
    level: 'info',
    time: at(10.1),
    event: 'scale',
    direction: 'up',
    from: 0,
    to: 1,
    reason: 'connection waiting',
    msg: 'scaled up 0 -> 1 (connection waiting)',
  }),
  JSON.stringify({
    level: 'info',
    time: at(40),
    event: 'scale',
    direction: 'down',
    from: 1,
    to: 0,
    reason: 'idle timeout',
    msg: 'scaled down 1 -> 0 (idle timeout)',
  }),
  JSON.stringify({
    level: 'error',
    time: at(70),
    event: 'scale_failed',
    direction: 'up',
    to: 1,
    code: 'BKA_SCALE_FORBIDDEN',
    error: 'forbidden',
    msg: 'scale up to 1 failed: forbidden',
  }),
  'not json',
].join('\n');

function snapshot(suite: string, namespace: string, pods: Record<string, string>): NamespaceSnapshot {
  const podLogs = new Map(Object.entries(pods));
  return {
    suite,
    namespace,
    resources: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'buildkitd', namespace } }],
    resourcesText: 'NAME                        READY   AGE\nstatefulset.apps/buildkitd   0/0     2m\n',
    eventsText:
      'LAST SEEN   TYPE     REASON     OBJECT                  MESSAGE\n1m          Normal   ScaledUp   statefulset/buildkitd   Scaled up from 0 to 1 replicas\n',
    podLogs,
    scalingActions: [...podLogs].flatMap(([pod, log]) => scalingActionsFromLog(suite, namespace, pod, log)),
  };
}

function suite(
  name: ReportSuite['name'],
  outcomes: ReportSuite['outcomes'],
  pods: Record<string, string>,
): ReportSuite {
  const namespace = `bka-e2e-abc-${name}`;
  return {
    name,
    namespace,
    settings: settings(name),
    outcomes,
    figures: new Map([['install to gateway ready', '3.1s']]),
    timeline: {
      entries: [
        { t: 1000, source: 'scenario', text: '▶ install' },
        { t: 10_200, source: 'statefulset', text: 'replicas=1 ready=0', replicas: 1, readyReplicas: 0 },
      ],
    },
    snapshot: snapshot(name, namespace, pods),
  };
}

/** A failed run with two suites: a terminated buildkitd pod and a replaced gateway pod among the logs. */
const failedRun: RunReport = {
  backend: 'local',
  image: 'buildkitd-autoscaler:0.1.0',
  serverVersion: 'v1.33.13',
  command: 'test/e2e/run.sh --backend local',
  startedAt: started,
  seconds: 300,
  diagnostics: [{ level: 'error', title: 'e2e seed-guide (mock)', message: 'the StatefulSet was never scaled to 1' }],
  suites: [
    suite(
      'mock',
      [
        {
          name: 'install',
          promise: 'installs',
          result: 'pass',
          startedMs: 1000,
          seconds: 8,
          observed: 'ready',
          keyFigure: 'install to gateway ready: 3.1s',
        },
        {
          name: 'seed-guide',
          promise: 'echo at 0',
          result: 'fail',
          startedMs: 9000,
          seconds: 60,
          observed: 'the StatefulSet was never scaled to 1',
        },
      ],
      {
        'buildkitd-autoscaler-7d9f-abcde': gatewayLog,
        'buildkitd-autoscaler-7d9f-fghij': '',
        'buildkitd-0': 'socat\n',
      },
    ),
    suite(
      'real',
      [
        {
          name: 'install',
          promise: 'installs',
          result: 'fail',
          startedMs: 70_000,
          seconds: 30,
          observed: 'kubectl apply: boom',
        },
        {
          name: 'real-build',
          promise: 'builds',
          result: 'skipped',
          startedMs: 100_000,
          seconds: 0,
          observed: 'install failed',
        },
      ],
      { 'buildkitd-0': 'buildkitd log\n' },
    ),
  ],
};

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('the E2E report directory (test/e2e/report.ts)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-report-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('holds every artifact of the map, also when scenarios failed, and REPORT.md links each', async () => {
    const reportDir = path.join(dir, 'failed');
    const written = await writeReport(reportDir, failedRun);
    const files = await listFiles(reportDir);
    assert.deepEqual(files, [...written].sort(), 'the writer lists what it wrote');
    const podLogs = [
      'k8s/logs-mock_buildkitd-0.txt',
      'k8s/logs-mock_buildkitd-autoscaler-7d9f-abcde.txt',
      'k8s/logs-mock_buildkitd-autoscaler-7d9f-fghij.txt',
      'k8s/logs-real_buildkitd-0.txt',
    ];
    for (const file of [...SEED_MAP, ...podLogs, 'diagnostics.json', 'timeline.jsonl'])
      assert.ok(files.includes(file), `${file} is missing (have ${files.join(', ')})`);
    const report = await readFile(path.join(reportDir, 'REPORT.md'), 'utf8');
    for (const file of files) assert.ok(report.includes(`](${file})`), `REPORT.md does not link ${file}`);
    assert.deepEqual(
      ARTIFACTS.map((a) => a.file).filter((f) => SEED_MAP.includes(f)),
      SEED_MAP,
      'the map in report.ts names every seed artifact',
    );
  });

  it('records one result per scenario with its suite, duration, key figure and error', async () => {
    const reportDir = path.join(dir, 'results');
    await writeReport(reportDir, failedRun);
    const results = JSON.parse(await readFile(path.join(reportDir, 'k8s-e2e-results.json'), 'utf8')) as Record<
      string,
      unknown
    >[];
    assert.deepEqual(
      results.map((r) => [r.suite, r.name, r.result]),
      [
        ['mock', 'install', 'pass'],
        ['mock', 'seed-guide', 'fail'],
        ['real', 'install', 'fail'],
        ['real', 'real-build', 'skipped'],
      ],
    );
    assert.deepEqual(results[0], {
      name: 'install',
      suite: 'mock',
      result: 'pass',
      durationSeconds: 8,
      keyFigure: 'install to gateway ready: 3.1s',
      error: null,
    });
    assert.equal(results[1]?.error, 'the StatefulSet was never scaled to 1');
    assert.deepEqual(
      parseDiagnostics(await readFile(path.join(reportDir, 'diagnostics.json'), 'utf8')),
      failedRun.diagnostics,
      'scripts/ci-report.ts still reads the diagnostics',
    );
  });

  it("lists the gateway's scale decisions from its log and puts them on the timeline", async () => {
    const reportDir = path.join(dir, 'scaling');
    await writeReport(reportDir, failedRun);
    const actions = JSON.parse(await readFile(path.join(reportDir, 'k8s/scaling-actions.json'), 'utf8')) as Record<
      string,
      unknown
    >[];
    assert.deepEqual(
      actions.map((a) => [a.kind, a.direction, a.to, a.code]),
      [
        ['scale', 'up', 1, undefined],
        ['scale', 'down', 0, undefined],
        ['scale_failed', 'up', 1, 'BKA_SCALE_FORBIDDEN'],
      ],
    );
    assert.equal(actions[0]?.pod, 'buildkitd-autoscaler-7d9f-abcde');
    const timeline = await readFile(path.join(reportDir, 'k8s/timeline.txt'), 'utf8');
    assert.match(
      timeline,
      /^ +10\.1s {2}gateway +scaled up 0 -> 1 \(connection waiting\) \(buildkitd-autoscaler-7d9f-abcde\)$/m,
    );
    assert.match(timeline, /^seed-guide +fail +9\.0s \+ +60\.0s \|.*▓+.*\|$/m);
  });

  it('carries the PNG plots and the dashboard and alert checks when Prometheus ran, and says why when it did not', async () => {
    const reportDir = path.join(dir, 'monitoring');
    const png = svgToPng(
      linePlotSvg('Builders', '', [
        {
          name: 'statefulset spec',
          points: [
            [0, 0],
            [10, 1],
            [40, 1],
            [55, 0],
          ],
        },
      ]),
    );
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature');
    const checks = [
      {
        kind: 'panel' as const,
        name: 'Builders / desired',
        query: 'max(bka_desired_replicas)',
        result: 'data' as const,
        pass: true,
      },
      {
        kind: 'alert' as const,
        name: 'BuildkitdAutoscalerWatchDown',
        query: 'bka_watch_up',
        result: 'no data' as const,
        pass: false,
      },
    ];
    const written = await writeReport(reportDir, {
      ...failedRun,
      monitoring: { report: { checks, plots: [{ file: 'plots/builders.png', title: 'Builders', png }], scope: 'x' } },
    });
    const files = await listFiles(reportDir);
    assert.deepEqual(files, [...written].sort());
    assert.ok(files.includes('plots/builders.png') && files.includes('monitoring.json'), files.join(', '));
    const report = await readFile(path.join(reportDir, 'REPORT.md'), 'utf8');
    for (const file of files) assert.ok(report.includes(`](${file})`), `REPORT.md does not link ${file}`);
    assert.match(report, /^\| ❌ \| alert: BuildkitdAutoscalerWatchDown \| no data \|/m);
    assert.deepEqual(await readFile(path.join(reportDir, 'plots/builders.png')), png);

    await writeReport(reportDir, { ...failedRun, monitoring: { error: 'prometheus did not start: boom' } });
    assert.deepEqual(
      (await listFiles(reportDir)).filter((f) => f.startsWith('plots/') || f === 'monitoring.json'),
      [],
      "an earlier run's plots and checks are gone",
    );
    assert.match(
      await readFile(path.join(reportDir, 'REPORT.md'), 'utf8'),
      /Not checked: prometheus did not start: boom/,
    );
  });

  it('replaces the k8s/ files of an earlier run in the same directory', async () => {
    const reportDir = path.join(dir, 'rerun');
    await writeReport(reportDir, failedRun);
    const passedRun: RunReport = {
      ...failedRun,
      diagnostics: [],
      suites: [
        suite(
          'mock',
          [{ name: 'install', promise: 'installs', result: 'pass', startedMs: 0, seconds: 5, observed: 'ready' }],
          { 'buildkitd-0': '' },
        ),
      ],
    };
    await writeReport(reportDir, passedRun);
    const files = await listFiles(reportDir);
    assert.deepEqual(
      files.filter((f) => f.startsWith('k8s/logs-')),
      ['k8s/logs-buildkitd-0.txt'],
    );
    assert.match(await readFile(path.join(reportDir, 'REPORT.md'), 'utf8'), /\*\*PASS: 1 passed, 0 failed\*\*/);
  });
});
