// E2E runner: installs the shipped manifests (deploy/kubernetes, through a kustomize overlay that only
// sets the namespace, the image, short timeouts, the discovery mode and, by default, an echo mock for
// buildkitd) on a cluster, runs the scenarios, and writes the report directory (report.ts: REPORT.md,
// k8s-e2e-results.json, k8s/...) on every run. Start it through test/e2e/run.sh, which prepares the backend.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Diagnostic } from '../../scripts/ci-report.ts';
import { builtBinary, CHART_DIR, helm, type Manifest, parseManifests, runTool } from '../deploy/tools.ts';
import { BACKENDS, GATEWAY_SERVICE, HELM_METRICS_SERVICE, makeBackend } from './backends.ts';
import { checkMonitoring } from './monitoring-report.ts';
import { snapshotNamespace } from './namespace-snapshot.ts';
import { type Prometheus, startPrometheus } from './prometheus.ts';
import { type ReportSuite, SUITE_TITLE, type SuiteName, writeReport } from './report.ts';
import { type Context, REAL_SCENARIOS, SCENARIOS, type Settings, STATEFULSET } from './scenarios/index.ts';
import { multiArchPools } from './scenarios/multi-arch.ts';
import { Timeline } from './timeline.ts';
import { REPO_ROOT } from '../support/repo-root.ts';

function splitImage(image: string): [name: string, tag: string] {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
}

/** The kustomize overlay: the example buildkitd (mocked unless real), and the gateway unless Helm installs it. */
function overlay(namespace: string, image: string, settings: Settings, dir: string): string {
  const [name, tag] = splitImage(image);
  const rel = (p: string) => path.relative(dir, path.join(REPO_ROOT, p));
  const mock = settings.buildkitd === 'mock' ? MOCK_PATCH : '';
  if (settings.install === 'helm') {
    return `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${namespace}
resources:
  - ${rel('deploy/kubernetes/buildkitd')}
patches:
${mock}`;
  }
  return `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${namespace}
resources:
  - ${rel('deploy/kubernetes')}
  - ${rel('deploy/kubernetes/buildkitd')}
images:
  - name: buildkitd-autoscaler
    newName: ${name}
    newTag: "${tag}"
patches:
  - target:
      kind: Deployment
      name: buildkitd-autoscaler
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: buildkitd-autoscaler
      spec:
        template:
          spec:
            containers:
              - name: gateway
                imagePullPolicy: IfNotPresent
                env:
                  - name: SCALE_DOWN_IDLE_TIMEOUT
                    value: "${settings.idleTimeoutS}s"
                  - name: READY_WAIT_TIMEOUT
                    value: "${settings.readyWaitS}s"
                  - name: LOG_LEVEL
                    value: debug
                  - name: BUILDKITD_BACKEND_DISCOVERY
                    value: ${settings.discovery}
${mock}`;
}

/** The chart with the E2E settings; fullnameOverride keeps the names the scenarios use. */
function helmArgs(namespace: string, image: string, settings: Settings): string[] {
  const [name, tag] = splitImage(image);
  const set = {
    fullnameOverride: 'buildkitd-autoscaler',
    'image.repository': name,
    'image.tag': tag,
    'gateway.idleTimeout': `${settings.idleTimeoutS}s`,
    'gateway.readyWaitTimeout': `${settings.readyWaitS}s`,
    'gateway.logLevel': 'debug',
    'gateway.backendDiscovery': settings.discovery,
  };
  // The chart's own StatefulSet for real buildkitd; the mocked example StatefulSet otherwise.
  return [
    'install',
    'bka',
    CHART_DIR,
    '--namespace',
    namespace,
    ...Object.entries(set).flatMap(([k, v]) => ['--set-string', `${k}=${v}`]),
    '--set',
    `buildkitd.enabled=${settings.buildkitd === 'real'}`,
  ];
}

const MOCK_PATCH = `  # The mock buildkitd: socat echoing every connection, on the same port, probes and Service.
  - target:
      kind: StatefulSet
      name: buildkitd
    patch: |-
      apiVersion: apps/v1
      kind: StatefulSet
      metadata:
        name: buildkitd
      spec:
        template:
          spec:
            terminationGracePeriodSeconds: 5
            containers:
              - name: buildkitd
                image: alpine/socat:latest
                imagePullPolicy: IfNotPresent
                args: ["TCP-LISTEN:8273,fork,reuseaddr", "EXEC:cat"]
                securityContext:
                  privileged: false
                resources:
                  requests:
                    cpu: 10m
                    memory: 16Mi
                  limits:
                    memory: 64Mi
`;

/** `kind.group/name`, as kubectl delete takes it. */
function resourceRef(m: Manifest): string {
  const group = m.apiVersion.includes('/') ? `.${m.apiVersion.split('/')[0]}` : '';
  return `${m.kind.toLowerCase()}${group}/${m.metadata.name}`;
}

interface Suite extends ReportSuite {
  timeline: Timeline;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'local' },
      image: { type: 'string', default: 'buildkitd-autoscaler:0.1.0' },
      'report-dir': { type: 'string', default: 'ci-report' },
      'idle-timeout': { type: 'string', default: '15' },
      'ready-wait': { type: 'string', default: '120' },
      burst: { type: 'string', default: '25' },
      discovery: { type: 'string', default: 'endpoints' },
      buildkitd: { type: 'string' },
      install: { type: 'string', default: 'kustomize' },
      'keep-namespace': { type: 'boolean', default: false },
    },
  });
  const backendName = BACKENDS.find((b) => b === values.backend);
  if (!backendName) throw new Error(`--backend must be one of ${BACKENDS.join(', ')}`);
  // The local cluster has buildctl and runs the real buildkitd, so both suites run there by default.
  const buildkitd = values.buildkitd ?? (backendName === 'local' ? 'all' : 'mock');
  if (buildkitd !== 'mock' && buildkitd !== 'real' && buildkitd !== 'all')
    throw new Error('--buildkitd must be mock, real or all');
  if (values.discovery !== 'endpoints' && values.discovery !== 'dns')
    throw new Error('--discovery must be endpoints or dns');
  if (values.install !== 'kustomize' && values.install !== 'helm')
    throw new Error('--install must be kustomize or helm');
  const suiteNames: SuiteName[] = buildkitd === 'all' ? ['mock', 'real'] : [buildkitd];
  const reportDir = path.resolve(values['report-dir']);
  await mkdir(reportDir, { recursive: true });

  const backend = makeBackend(backendName);
  const startedAt = new Date();
  const origin = performance.now();
  const runId = Math.random().toString(36).slice(2, 8);
  const diagnostics: Diagnostic[] = [];
  const version = await backend.kubectl(['version', '-o', 'json']);
  const serverVersion =
    version.code === 0
      ? ((JSON.parse(version.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion?.gitVersion ?? '?')
      : '?';
  const suites: Suite[] = [];
  const namespaceOf = (suiteName: SuiteName) => `bka-e2e-${runId}${suiteNames.length > 1 ? `-${suiteName}` : ''}`;
  // The local backend runs the built Prometheus in the cluster netns, scraping every suite's gateway pods.
  let prometheus: Prometheus | undefined;
  let monitoringError: string | undefined;
  const prometheusDir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-prometheus-'));
  if (backendName === 'local') {
    try {
      prometheus = await startPrometheus({
        binary: await builtBinary('prometheus'),
        workDir: prometheusDir,
        namespaces: suiteNames.map(namespaceOf),
        kubeconfig: process.env.KUBECONFIG ?? '',
        interval: '2s',
      });
      process.stdout.write(`prometheus at ${prometheus.url}, scraping ${suiteNames.map(namespaceOf).join(', ')}\n`);
    } catch (error) {
      monitoringError = `prometheus did not start: ${error instanceof Error ? error.message : String(error)}`;
      diagnostics.push({ level: 'error', title: 'e2e metrics', message: monitoringError });
    }
  }

  // A harness error ends the suites early but still leaves the report of what ran.
  let harnessError: string | undefined;
  // Each suite's removal of what it installed outside its namespace, run again after a harness error.
  const cleanups: (() => Promise<void>)[] = [];
  try {
    for (const suiteName of suiteNames) {
      const settings: Settings = {
        idleTimeoutS: Number(values['idle-timeout']),
        readyWaitS: Number(values['ready-wait']),
        burst: Number(values.burst),
        discovery: values.discovery,
        buildkitd: suiteName,
        install: values.install,
      };
      const namespace = namespaceOf(suiteName);
      const timeline = new Timeline(origin);
      const figures = new Map<string, string>();
      const suite: Suite = { name: suiteName, namespace, settings, outcomes: [], figures, timeline };
      suites.push(suite);
      const workDir = await mkdtemp(path.join(tmpdir(), 'bka-e2e-'));
      process.stdout.write(`\n== suite ${suiteName} (namespace ${namespace}): ${SUITE_TITLE[suiteName]}\n`);
      const podLogs = await backend.keepPodLogs(namespace);
      // What install() put outside the namespace (the nodes ClusterRole and its binding) is removed at the
      // end of the suite, pass or fail, so the next run on this cluster, either install mode, can install.
      let helmRelease = false;
      let clusterScoped: string[] = [];
      const removeClusterScoped = async () => {
        if (values['keep-namespace']) return;
        const failures: string[] = [];
        if (helmRelease) {
          const r = await runTool(await helm(), ['uninstall', 'bka', '--namespace', namespace]);
          if (r.code === 0) helmRelease = false;
          else failures.push(`helm uninstall: ${r.stderr.trim()}`);
        }
        if (clusterScoped.length > 0) {
          const r = await backend.kubectl(['delete', '--ignore-not-found', ...clusterScoped]);
          if (r.code === 0) clusterScoped = [];
          else failures.push(`kubectl delete ${clusterScoped.join(' ')}: ${r.stderr.trim()}`);
        }
        for (const message of failures) diagnostics.push({ level: 'error', title: 'e2e cleanup', message });
      };
      cleanups.push(removeClusterScoped);

      const ctx: Context = {
        backend,
        namespace,
        timeline,
        settings,
        figures,
        diagnostics,
        served: 0,
        gatewayPods: [],
        async install() {
          if (settings.install === 'helm') {
            const created = await backend.kubectl(['create', 'namespace', namespace]);
            if (created.code !== 0) throw new Error(`kubectl create namespace: ${created.stderr}`);
          }
          if (settings.install === 'kustomize' || settings.buildkitd === 'mock') {
            await writeFile(
              path.join(workDir, 'kustomization.yaml'),
              overlay(namespace, values.image, settings, workDir),
            );
            const rendered = await backend.kubectl(['kustomize', workDir]);
            if (rendered.code !== 0) throw new Error(`kubectl kustomize: ${rendered.stderr}`);
            await writeFile(
              path.join(reportDir, suiteNames.length > 1 ? `applied-${suiteName}.yaml` : 'applied.yaml'),
              rendered.stdout,
            );
            // Kustomize leaves metadata.namespace off cluster-scoped kinds; the Namespace goes with the suite.
            clusterScoped = parseManifests(rendered.stdout)
              .filter((m) => m.kind !== 'Namespace' && m.metadata.namespace === undefined)
              .map(resourceRef);
            // The Namespace comes first in the rendering; the watches need it before the rest exists.
            const applied = await backend.kubectl(['apply', '--server-side', '-f', '-'], rendered.stdout);
            if (applied.code !== 0) throw new Error(`kubectl apply: ${applied.stderr}`);
          }
          if (settings.install === 'helm') {
            helmRelease = true;
            const installed = await runTool(await helm(), helmArgs(namespace, values.image, settings));
            if (installed.code !== 0) throw new Error(`helm install: ${installed.stderr}`);
          }
          await timeline.watch(namespace, STATEFULSET);
          await timeline.until('the StatefulSet in the watch', () => timeline.replicas !== undefined, 30_000);
        },
      };

      // multi-arch-pools relabels a node as arm64: the local cluster's nodes only.
      const scenarios =
        suiteName === 'real' ? [...REAL_SCENARIOS, ...(backendName === 'local' ? [multiArchPools] : [])] : SCENARIOS;
      for (const scenario of scenarios) {
        if (scenario.name !== 'install' && suite.outcomes[0]?.result !== 'pass') {
          suite.outcomes.push({
            name: scenario.name,
            promise: scenario.promise,
            result: 'skipped',
            startedMs: timeline.now(),
            seconds: 0,
            observed: 'install failed',
          });
          continue;
        }
        const t0 = timeline.now();
        const figuresBefore = new Set(figures.keys());
        timeline.mark(`▶ ${scenario.name}`);
        process.stdout.write(`▶ ${scenario.name}: ${scenario.promise}\n`);
        try {
          const observed = await scenario.run(ctx);
          const key = [...figures.keys()].find((k) => !figuresBefore.has(k));
          const keyFigure = key === undefined ? observed : `${key}: ${figures.get(key) ?? ''}`;
          suite.outcomes.push({
            name: scenario.name,
            promise: scenario.promise,
            result: 'pass',
            startedMs: t0,
            seconds: (timeline.now() - t0) / 1000,
            observed,
            keyFigure,
          });
          process.stdout.write(`  ✔ ${observed} (${((timeline.now() - t0) / 1000).toFixed(1)}s)\n`);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          suite.outcomes.push({
            name: scenario.name,
            promise: scenario.promise,
            result: 'fail',
            startedMs: t0,
            seconds: (timeline.now() - t0) / 1000,
            observed: message,
          });
          diagnostics.push({
            level: 'error',
            title: `e2e ${scenario.name}${suiteNames.length > 1 ? ` (${suiteName})` : ''}`,
            message,
          });
          process.stdout.write(`  ✖ ${message}\n`);
        }
        timeline.mark(`■ ${scenario.name}`);
      }

      timeline.stop();
      ctx.access?.close();
      // Before the namespace goes: its objects, Events and every pod's logs, for the report on every run.
      suite.snapshot = await snapshotNamespace((args) => backend.kubectl(args), suiteName, namespace, podLogs).catch(
        (error: unknown) => {
          diagnostics.push({
            level: 'warning',
            title: 'artifacts',
            message: `reading namespace ${namespace} for the report failed: ${String(error)}`,
          });
          return undefined;
        },
      );
      // Before the namespace goes: Helm keeps its release record there.
      await removeClusterScoped();
      // Wait for the namespace to go: the next suite's buildkitd needs the CPU the old pods hold.
      if (!values['keep-namespace'])
        await backend.kubectl([
          'delete',
          'namespace',
          namespace,
          `--wait=${suiteName !== suiteNames.at(-1)}`,
          '--timeout=120s',
        ]);
      await rm(workDir, { recursive: true, force: true });
    }
  } catch (error) {
    harnessError = error instanceof Error ? (error.stack ?? error.message) : String(error);
    diagnostics.push({ level: 'error', title: 'e2e harness', message: harnessError });
    process.stdout.write(`✖ the harness failed: ${harnessError}\n`);
    for (const cleanup of cleanups) await cleanup();
  }

  let monitoring: Awaited<ReturnType<typeof checkMonitoring>> | undefined;
  if (prometheus) {
    try {
      monitoring = await checkMonitoring(prometheus, {
        namespaces: suiteNames.map(namespaceOf),
        // The Service carrying the metrics port names the job: the chart has a Service of its own for it.
        job: values.install === 'helm' ? HELM_METRICS_SERVICE : GATEWAY_SERVICE,
        startS: startedAt.getTime() / 1000,
        endS: Date.now() / 1000,
      });
      const failing = monitoring.checks.filter((c) => !c.pass);
      for (const c of failing)
        diagnostics.push({
          level: 'error',
          title: `e2e metrics: ${c.kind} ${c.name}`,
          message: `${c.result}: ${c.query}`,
        });
      process.stdout.write(
        `metrics: ${monitoring.checks.length - failing.length} of ${monitoring.checks.length} dashboard queries and alerts return data\n`,
      );
    } catch (error) {
      monitoringError = `checking the dashboard and alerts failed: ${error instanceof Error ? error.message : String(error)}`;
      diagnostics.push({ level: 'error', title: 'e2e metrics', message: monitoringError });
    }
    await prometheus.stop();
  }
  await rm(prometheusDir, { recursive: true, force: true });
  const monitoringPassed =
    backendName !== 'local' || (monitoring !== undefined && monitoring.checks.every((c) => c.pass));

  const written = await writeReport(reportDir, {
    backend: backendName,
    image: values.image,
    serverVersion,
    suites,
    command: `test/e2e/run.sh ${process.argv.slice(2).join(' ')}`.trim(),
    diagnostics,
    startedAt,
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    ...(backendName === 'local'
      ? {
          monitoring: {
            ...(monitoring ? { report: monitoring } : {}),
            ...(monitoringError ? { error: monitoringError } : {}),
          },
        }
      : {}),
  });
  process.stdout.write(`wrote ${written.length} files in ${reportDir}\n`);

  const outcomes = suites.flatMap((suite) => suite.outcomes);
  const passed = outcomes.filter((o) => o.result === 'pass').length;
  const failed = outcomes.filter((o) => o.result === 'fail').length;
  const skipped = outcomes.filter((o) => o.result === 'skipped').length;
  process.stdout.write(
    `report: ${path.join(reportDir, 'REPORT.md')}\ne2e: ${passed} passed, ${failed} failed, ${skipped} skipped\n`,
  );
  return failed === 0 && skipped === 0 && harnessError === undefined && monitoringPassed ? 0 : 1;
}

process.exitCode = await main();
