// The shipped manifests and the chart against a real API server (test/cluster): every rendering is
// accepted (strict field validation), the gateway's ServiceAccount can do exactly what the gateway needs,
// both gateways started from the shipped manifests report ready, elect a leader and publish their reports
// with those rights, and `helm upgrade`
// leaves a running build farm's replica count alone. Run inside the cluster netns:
//   npm run test:deploy:cluster
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Lease, V1Pod } from '@kubernetes/client-node';
import { ensureCluster, type Cluster } from '../../cluster/index.ts';
import { CASES, withValue } from '../chart-cases.ts';
import { CHART_DIR, helm, helmTemplateRaw, KUSTOMIZE_BUILDKITD_DIR, KUSTOMIZE_DIR, runTool } from '../tools.ts';
import { waitFor } from '../../support/wait.ts';
import { installPrometheusOperatorCrds } from './prometheus-operator-crds.ts';

const ARTIFACTS = path.join(import.meta.dirname, '../../../.artifacts/deploy-cluster');

let cluster: Cluster;
let workDir: string;
const namespaces: string[] = [];

async function namespace(prefix: string): Promise<string> {
  const name = await cluster.createNamespace(prefix);
  namespaces.push(name);
  return name;
}

async function mustKubectl(args: readonly string[], input?: string): Promise<string> {
  const result = await cluster.kubectl(args, input === undefined ? {} : { input });
  assert.equal(result.code, 0, `kubectl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** The two kustomizations moved into namespace `ns` by an overlay, as a user would. */
async function kustomizeInto(ns: string): Promise<string> {
  const overlay = await mkdtemp(path.join(workDir, 'overlay-'));
  await writeFile(
    path.join(overlay, 'kustomization.yaml'),
    `namespace: ${ns}\nresources:\n  - ${path.relative(overlay, KUSTOMIZE_DIR)}\n  - ${path.relative(overlay, KUSTOMIZE_BUILDKITD_DIR)}\n`,
  );
  return mustKubectl(['kustomize', overlay]);
}

async function canI(
  ns: string,
  serviceAccount: string,
  verb: string,
  resource: string,
  subresource?: string,
): Promise<boolean> {
  const args = ['auth', 'can-i', verb, resource, '-n', ns, '--as', `system:serviceaccount:${ns}:${serviceAccount}`];
  if (subresource) args.push('--subresource', subresource);
  const result = await cluster.kubectl(args);
  const answer = result.stdout.trim();
  assert.ok(answer === 'yes' || answer === 'no', `kubectl auth can-i: ${result.stdout}${result.stderr}`);
  return answer === 'yes';
}

before(async () => {
  cluster = await ensureCluster({ requireNetns: true });
  workDir = await mkdtemp(path.join(tmpdir(), 'bka-deploy-cluster-'));
  // The metrics.* values render prometheus-operator objects: the dry runs check them against its CRDs.
  await installPrometheusOperatorCrds(cluster);
});

after(async () => {
  for (const ns of namespaces) {
    await cluster.collectArtifacts(ns, path.join(ARTIFACTS, ns)).catch(() => undefined);
    await cluster.deleteNamespace(ns).catch(() => undefined);
  }
  await rm(workDir, { recursive: true, force: true });
  await cluster.stop();
});

describe('deploy/kubernetes on a real API server', () => {
  let ns: string;
  before(async () => {
    ns = await namespace('deploy-kust');
    await mustKubectl(['apply', '--server-side', '-f', '-'], await kustomizeInto(ns));
  });

  it('grants the gateway exactly what it needs on its StatefulSet, and nothing else', async () => {
    const sa = 'buildkitd-autoscaler';
    const allowed: [string, string, string?][] = [
      ['get', 'statefulsets/buildkitd'],
      ['list', 'statefulsets/buildkitd'],
      ['watch', 'statefulsets/buildkitd'],
      ['get', 'statefulsets/buildkitd', 'scale'],
      ['patch', 'statefulsets/buildkitd', 'scale'],
      ['update', 'statefulsets/buildkitd', 'scale'],
      ['list', 'endpointslices.discovery.k8s.io'],
      ['watch', 'endpointslices.discovery.k8s.io'],
      ['create', 'events'],
      // Leader election and the replicas' activity reports (LEADER_ELECTION=true, the default).
      ['get', 'leases.coordination.k8s.io'],
      ['list', 'leases.coordination.k8s.io'],
      ['watch', 'leases.coordination.k8s.io'],
      ['create', 'leases.coordination.k8s.io'],
      ['update', 'leases.coordination.k8s.io'],
      ['delete', 'leases.coordination.k8s.io'],
      // Builders on draining nodes (WATCH_NODES=true): read-only, through the ClusterRole.
      ['get', 'nodes'],
      ['list', 'nodes'],
      ['watch', 'nodes'],
      // Busy marks: read a builder, merge-patch its labels and annotations, watch the labelled ones.
      ['get', 'pods'],
      ['list', 'pods'],
      ['watch', 'pods'],
      ['patch', 'pods'],
    ];
    const denied: [string, string, string?][] = [
      ['patch', 'nodes'],
      ['patch', 'statefulsets/buildkitd'], // the pod template stays out of reach
      ['delete', 'statefulsets/buildkitd'],
      ['patch', 'statefulsets/other', 'scale'],
      ['list', 'statefulsets'], // only by name
      ['get', 'secrets'],
      ['delete', 'pods'], // marks are metadata: the gateway never removes or evicts a builder itself
      ['create', 'pods', 'eviction'],
      ['patch', 'pods', 'status'],
      ['patch', 'leases.coordination.k8s.io'], // the gateway replaces Leases with optimistic concurrency
    ];
    for (const [verb, resource, sub] of allowed)
      assert.equal(await canI(ns, sa, verb, resource, sub), true, `${verb} ${resource} ${sub ?? ''}`);
    for (const [verb, resource, sub] of denied)
      assert.equal(await canI(ns, sa, verb, resource, sub), false, `${verb} ${resource} ${sub ?? ''}`);
  });

  it('creates buildkitd asleep, with a headless Service the EndpointSlice controller serves', async () => {
    assert.equal(
      await mustKubectl(['-n', ns, 'get', 'statefulset', 'buildkitd', '-o', 'jsonpath={.spec.replicas}']),
      '0',
    );
    await waitFor(
      'the EndpointSlice of buildkitd-headless',
      async () => {
        const out = await mustKubectl([
          '-n',
          ns,
          'get',
          'endpointslices',
          '-l',
          'kubernetes.io/service-name=buildkitd-headless',
          '-o',
          'name',
        ]);
        return out.trim() || undefined;
      },
      120_000,
      500,
    );
  });

  it('runs both gateways from the shipped manifests until they are Ready, one leading, each reporting in a Lease its pod owns', async () => {
    const pods = await waitFor(
      'both gateway pods to be Ready',
      async () => {
        const out = await mustKubectl([
          '-n',
          ns,
          'get',
          'pods',
          '-l',
          'app.kubernetes.io/name=buildkitd-autoscaler',
          '-o',
          'json',
        ]);
        const items = (JSON.parse(out) as { items: V1Pod[] }).items;
        const ready = items.filter(
          (p) =>
            !p.metadata?.deletionTimestamp &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length === 2 ? ready : undefined;
      },
      180_000,
      500,
    );
    const byName = new Map(pods.map((p) => [p.metadata?.name ?? '', p.metadata?.uid ?? '']));
    const leader = await waitFor(
      'a leader in the Lease buildkitd-autoscaler',
      async () => {
        const result = await cluster.kubectl([
          '-n',
          ns,
          'get',
          'lease',
          'buildkitd-autoscaler',
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ]);
        return result.code === 0 && result.stdout.trim() ? result.stdout.trim() : undefined;
      },
      120_000,
      500,
    );
    assert.ok(byName.has(leader), `the leader ${leader} is one of the gateway pods ${[...byName.keys()].join(', ')}`);
    const reports = await waitFor(
      'a report Lease from each gateway pod',
      async () => {
        const out = await mustKubectl([
          '-n',
          ns,
          'get',
          'leases',
          '-l',
          'buildkitd-autoscaler/group=buildkitd-autoscaler,buildkitd-autoscaler/role=activity',
          '-o',
          'json',
        ]);
        const items = (JSON.parse(out) as { items: V1Lease[] }).items;
        return items.length === 2 ? items : undefined;
      },
      120_000,
      500,
    );
    for (const report of reports) {
      const holder = report.spec?.holderIdentity ?? '';
      assert.equal(report.metadata?.name, `buildkitd-autoscaler-${holder}`, 'a report is named after its replica');
      assert.deepEqual(
        report.metadata?.ownerReferences?.map((o) => ({ kind: o.kind, name: o.name, uid: o.uid })),
        [{ kind: 'Pod', name: holder, uid: byName.get(holder) }],
        'the garbage collector deletes a report with its pod',
      );
    }
  });
});

describe('helm chart on a real API server', () => {
  it('every value rendering is accepted by server-side dry run with strict field validation', async () => {
    const ns = await namespace('deploy-chart');
    const farm = await namespace('deploy-farm');
    for (const [dotted, valueCase] of Object.entries(CASES)) {
      // Values naming another namespace get one that exists.
      const set =
        dotted === 'buildkitd.namespace' || dotted === 'metrics.grafanaDashboard.namespace' ? farm : valueCase.set;
      const file = path.join(workDir, `dry-run-${dotted}.json`);
      await writeFile(file, JSON.stringify(withValue(valueCase.context, dotted, set)));
      const rendered = await helmTemplateRaw(file, { namespace: ns });
      assert.equal(rendered.code, 0, rendered.stderr);
      const result = await cluster.kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], {
        input: rendered.stdout,
      });
      assert.equal(result.code, 0, `${dotted}: the API server refused the rendering: ${result.stderr}`);
    }
  });

  it('helm upgrade keeps the replica count the gateway set on the live StatefulSet', async () => {
    const ns = await namespace('deploy-helm');
    // Images the process kubelet does not run: this is about the API objects, not the pods.
    const base = [
      '--namespace',
      ns,
      '--set',
      'image.repository=example/not-run',
      '--set',
      'buildkitd.image.repository=example/not-run',
    ];
    const kubeconfig = ['--kubeconfig', cluster.kubeconfigPath];
    const install = await runTool(await helm(), ['install', 'bka', CHART_DIR, ...base, ...kubeconfig]);
    assert.equal(install.code, 0, install.stderr);
    assert.equal(
      await mustKubectl(['-n', ns, 'get', 'statefulset', 'buildkitd', '-o', 'jsonpath={.spec.replicas}']),
      '0',
    );

    // What the gateway does on a wake-up: a write through the scale subresource.
    await mustKubectl([
      '-n',
      ns,
      'patch',
      'statefulset',
      'buildkitd',
      '--subresource=scale',
      '--type=merge',
      '-p',
      '{"spec":{"replicas":2}}',
    ]);

    const upgrade = await runTool(await helm(), [
      'upgrade',
      'bka',
      CHART_DIR,
      ...base,
      '--set',
      'buildkitd.terminationGracePeriodSeconds=61',
      ...kubeconfig,
    ]);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    const spec = JSON.parse(
      await mustKubectl(['-n', ns, 'get', 'statefulset', 'buildkitd', '-o', 'jsonpath={.spec}']),
    ) as {
      replicas: number;
      template: { spec: { terminationGracePeriodSeconds: number } };
    };
    assert.equal(spec.template.spec.terminationGracePeriodSeconds, 61, 'the upgrade was applied');
    assert.equal(spec.replicas, 2, 'the upgrade left the live replica count alone');

    const uninstall = await runTool(await helm(), ['uninstall', 'bka', '--namespace', ns, ...kubeconfig]);
    assert.equal(uninstall.code, 0, uninstall.stderr);
  });
});
