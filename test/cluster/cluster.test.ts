// Smoke test of the local control plane. Run with `npm run cluster:test` (brings the cluster up and runs
// this file inside the cluster netns, where pod IPs are reachable).
import assert from 'node:assert/strict';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AppsV1Api, PatchStrategy, Watch, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node';
import { netnsPath, pidsInNetns } from './internal/common.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { ensureCluster, type Cluster } from './index.ts';

let cluster: Cluster;
let ns = '';
let failed = false;

interface WatchWait<T> {
  /** Resolves once the first watch is established (start the action that should cause the change after it). */
  established: Promise<void>;
  done: Promise<T>;
}

/**
 * Watches `apiPath` until `pred` holds for an event or the deadline passes. The client's watch ends after
 * 30s without data, so it is re-established; `recheck` runs on every (re)establishment to catch a change
 * that happened in between (e.g. a deletion).
 */
function watchFor<T extends KubernetesObject>(
  apiPath: string,
  what: string,
  pred: (type: string, obj: T) => boolean,
  opts: { timeoutMs?: number; recheck?: () => Promise<T | undefined> } = {},
): WatchWait<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  let markEstablished: () => void = () => undefined;
  const established = new Promise<void>((r) => (markEstablished = r));
  const done = new Promise<T>((resolve, reject) => {
    let settled = false;
    let ctrl: AbortController | undefined;
    const finish = (err: Error | undefined, obj?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctrl?.abort();
      markEstablished();
      if (err) reject(err);
      else resolve(obj as T);
    };
    const timer = setTimeout(
      () => finish(new Error(`timed out waiting for ${what}`)),
      Math.max(0, deadline - Date.now()),
    );
    const start = () => {
      if (settled) return;
      new Watch(cluster.kubeConfig())
        .watch(
          apiPath,
          {},
          (type, obj: T) => {
            if (pred(type, obj)) finish(undefined, obj);
          },
          (err) => {
            if (!settled && Date.now() < deadline) setTimeout(start, err ? 200 : 0);
          },
        )
        .then(
          async (c) => {
            ctrl = c;
            if (settled) c.abort();
            markEstablished();
            const r = opts.recheck ? await opts.recheck() : undefined;
            if (r !== undefined) finish(undefined, r);
          },
          () => {
            if (!settled) setTimeout(start, 500);
          },
        );
    };
    start();
  });
  return { established, done };
}

function waitWatch<T extends KubernetesObject>(
  apiPath: string,
  what: string,
  pred: (type: string, obj: T) => boolean,
): Promise<T> {
  return watchFor(apiPath, what, pred).done;
}

function echo(host: string, port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: 10_000 });
    let got = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.end(payload));
    s.on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got));
    s.on('timeout', () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });
}

function connectFails(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 3000 });
    s.on('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('error', (e) => resolve(e.message));
  });
}

async function scale(replicas: number): Promise<void> {
  const apps = cluster.kubeConfig().makeApiClient(AppsV1Api);
  await apps.patchNamespacedStatefulSetScale(
    { name: 'echo', namespace: ns, body: { spec: { replicas } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

interface PodLike extends KubernetesObject {
  status?: {
    podIP?: string;
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}
interface SliceLike extends KubernetesObject {
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
}

/** Marks the run failed (artifacts are collected in after()) when a test body throws. */
function guarded(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  };
}

before(async () => {
  cluster = await ensureCluster({ requireNetns: true });
  ns = await cluster.createNamespace('smoke');
});

after(async () => {
  if (failed && ns) {
    const dir = path.join(REPO_ROOT, '.artifacts', 'cluster-smoke', ns);
    await cluster.collectArtifacts(ns, dir);
    process.stderr.write(`artifacts: ${dir}\n`);
  }
  if (ns && !failed) await cluster.deleteNamespace(ns);
});

void test(
  'StatefulSet of alpine/socat scales 0 -> 1 -> 0 and its pod echoes bytes',
  guarded(async () => {
    const manifest = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  clusterIP: None
  selector: {app: echo}
  ports: [{name: echo, port: 1234, targetPort: 1234}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: echo}
spec:
  replicas: 0
  serviceName: echo
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: socat
        image: alpine/socat:1.8.0.1
        args: ["TCP4-LISTEN:1234,fork,reuseaddr", "EXEC:cat"]
        ports: [{name: echo, containerPort: 1234}]
        readinessProbe:
          tcpSocket: {port: echo}
          periodSeconds: 1
          failureThreshold: 2
`;
    const applied = await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: manifest });
    assert.equal(applied.code, 0, applied.stderr);

    await scale(1);
    const pod = await waitWatch<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod echo-0 Ready',
      (_t, p) =>
        p.metadata?.name === 'echo-0' && !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    const ip = pod.status?.podIP ?? '';
    assert.match(ip, /^10\.244\.0\.\d+$/);

    const slice = await waitWatch<SliceLike>(
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      `a ready endpoint ${ip} in the EndpointSlice of service echo`,
      (_t, s) =>
        s.metadata?.labels?.['kubernetes.io/service-name'] === 'echo' &&
        !!s.endpoints?.some((e) => e.addresses.includes(ip) && e.conditions?.ready === true),
    );
    assert.ok(slice.metadata?.name);

    assert.equal(await echo(ip, 1234, 'hello from the smoke test\n'), 'hello from the smoke test\n');

    // The pod's processes live in its own netns: find them, then check scale-down removes them.
    const podNetns = `${cluster.netns}-${ip.split('.')[3]}`;
    const ino = fs.statSync(netnsPath(podNetns)).ino;
    const pids = pidsInNetns(new Set([ino]));
    assert.ok(
      pids.some((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('TCP4-LISTEN:1234')),
      'a socat process runs in the pod netns',
    );
    assert.ok(fs.existsSync(cluster.podLogPath(ns, 'echo-0', 'socat')), 'container log exists');

    const deleted = watchFor<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod echo-0 deleted',
      (type, p) => type === 'DELETED' && p.metadata?.name === 'echo-0',
      {
        recheck: async () =>
          (await cluster.kubectl(['-n', ns, 'get', 'pod', 'echo-0'])).stderr.includes('NotFound')
            ? { metadata: { name: 'echo-0' } }
            : undefined,
      },
    );
    await deleted.established;
    await scale(0);
    await deleted.done;
    const gone = await cluster.kubectl(['-n', ns, 'get', 'pod', 'echo-0']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /NotFound|not found/);
    for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`), false, `process ${pid} is gone`);
    assert.equal(fs.existsSync(netnsPath(podNetns)), false, 'pod netns deleted');
    assert.ok(await connectFails(ip, 1234), 'nothing listens on the old pod IP');
  }),
);

void test(
  'a ServiceAccount token kubeconfig is denied what its Role does not allow',
  guarded(async () => {
    const rbac = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: limited}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: limited-pod-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: limited}]
`;
    const applied = await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: rbac });
    assert.equal(applied.code, 0, applied.stderr);
    const kubeconfig = await cluster.serviceAccountKubeconfig(ns, 'limited');

    const who = await cluster.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig });
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout, `system:serviceaccount:${ns}:limited`);

    const allowed = await cluster.kubectl(['-n', ns, 'get', 'pods'], { kubeconfig });
    assert.equal(allowed.code, 0, allowed.stderr);

    const secrets = await cluster.kubectl(['-n', ns, 'get', 'secrets'], { kubeconfig });
    assert.notEqual(secrets.code, 0);
    assert.match(secrets.stderr, /Forbidden.*cannot list resource "secrets"/);

    const scaleIt = await cluster.kubectl(['-n', ns, 'scale', 'statefulset', 'echo', '--replicas=1'], { kubeconfig });
    assert.notEqual(scaleIt.code, 0);
    assert.match(scaleIt.stderr, /Forbidden|forbidden/);

    const otherNs = await cluster.kubectl(['-n', 'kube-system', 'get', 'pods'], { kubeconfig });
    assert.notEqual(otherNs.code, 0);
    assert.match(otherNs.stderr, /Forbidden/);
  }),
);

void test(
  'a pod with an image the process kubelet cannot run waits with a clear reason',
  guarded(async () => {
    const r = await cluster.kubectl(['-n', ns, 'run', 'unknown', '--image=nginx:1.27', '--restart=Never']);
    assert.equal(r.code, 0, r.stderr);
    const pod = await waitWatch<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod unknown to report UnsupportedImage',
      (_t, p) =>
        p.metadata?.name === 'unknown' &&
        p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'UnsupportedImage',
    );
    assert.match(
      pod.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '',
      /no command for image "nginx:1.27"/,
    );
    assert.equal(pod.status?.phase, 'Pending');
  }),
);

void test(
  'a pod runs with its ServiceAccount token mounted in a private mount namespace',
  guarded(async () => {
    // Runs after the RBAC test, which made ServiceAccount "limited" (may get/list/watch pods only).
    const manifest = `
apiVersion: v1
kind: Pod
metadata: {name: whoami}
spec:
  serviceAccountName: limited
  restartPolicy: Never
  containers:
  - name: c
    image: alpine/socat:1.8.0.1
    command:
    - sh
    - -c
    - |
      D=/var/run/secrets/kubernetes.io/serviceaccount
      K="kubectl --server=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT --token=$(cat $D/token) --certificate-authority=$D/ca.crt"
      echo "user=$($K auth whoami -o jsonpath={.status.userInfo.username})"
      echo "namespace=$(cat $D/namespace)"
      $K get pods -o name >/dev/null && echo pods=allowed
      $K get secrets 2>&1 | grep -q Forbidden && echo secrets=forbidden
`;
    const applied = await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: manifest });
    assert.equal(applied.code, 0, applied.stderr);
    const pod = await waitWatch<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod whoami to finish',
      (_t, p) => p.metadata?.name === 'whoami' && (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed'),
    );
    const out = fs.readFileSync(cluster.podLogPath(ns, 'whoami', 'c'), 'utf8');
    assert.equal(pod.status?.phase, 'Succeeded', out);
    assert.match(out, new RegExp(`^user=system:serviceaccount:${ns}:limited$`, 'm'));
    assert.match(out, new RegExp(`^namespace=${ns}$`, 'm'));
    assert.match(out, /^pods=allowed$/m);
    assert.match(out, /^secrets=forbidden$/m);
    // `kubectl logs` reaches the process kubelet's log endpoint through the API server.
    const logs = await cluster.kubectl(['-n', ns, 'logs', 'whoami', '--tail=1']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'secrets=forbidden\n');
    // The bind mount is private to the pod's processes.
    assert.equal(fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token'), false);
  }),
);

void test(
  'after an API server restart the process kubelet still runs new pods (its watch resumes)',
  guarded(async () => {
    await cluster.restartComponent('kube-apiserver');
    const r = await cluster.kubectl([
      '-n',
      ns,
      'run',
      'after-restart',
      '--image=alpine/socat:1.8.0.1',
      '--restart=Never',
      '--',
      'TCP4-LISTEN:1234,fork,reuseaddr',
      'EXEC:cat',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pod = await waitWatch<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod after-restart Running',
      (_t, p) => p.metadata?.name === 'after-restart' && p.status?.phase === 'Running' && !!p.status.podIP,
    );
    // No readiness probe: the process may not listen yet when the pod turns Running.
    let got: string | undefined;
    for (let i = 0; i < 50 && got === undefined; i++) {
      got = await echo(pod.status?.podIP ?? '', 1234, 'still here').catch(async () => {
        await new Promise((res) => setTimeout(res, 100));
        return undefined;
      });
    }
    assert.equal(got, 'still here');
  }),
);

void test(
  'a ClusterIP Service is served by the userspace proxy and named by the cluster DNS',
  guarded(async () => {
    const manifest = `
apiVersion: v1
kind: Service
metadata: {name: echo2}
spec:
  selector: {app: echo2}
  ports: [{name: tcp, port: 80, targetPort: 1234}]
---
apiVersion: v1
kind: Service
metadata: {name: echo2-headless}
spec:
  clusterIP: None
  selector: {app: echo2}
  ports: [{name: tcp, port: 1234}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: echo2}
spec:
  replicas: 1
  serviceName: echo2-headless
  selector: {matchLabels: {app: echo2}}
  template:
    metadata: {labels: {app: echo2}}
    spec:
      containers:
      - name: socat
        image: alpine/socat:1.8.0.1
        args: ["TCP4-LISTEN:1234,fork,reuseaddr", "EXEC:cat"]
        readinessProbe: {tcpSocket: {port: 1234}, periodSeconds: 1}
`;
    const applied = await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: manifest });
    assert.equal(applied.code, 0, applied.stderr);
    const pod = await waitWatch<PodLike>(
      `/api/v1/namespaces/${ns}/pods`,
      'pod echo2-0 Ready',
      (_t, p) =>
        p.metadata?.name === 'echo2-0' &&
        !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    await waitWatch<SliceLike>(
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      'echo2 endpoint ready',
      (_t, s) =>
        s.metadata?.labels?.['kubernetes.io/service-name'] === 'echo2' &&
        !!s.endpoints?.some((e) => e.conditions?.ready === true),
    );
    const clusterIP = (await cluster.kubectl(['-n', ns, 'get', 'service', 'echo2', '-o', 'jsonpath={.spec.clusterIP}']))
      .stdout;
    assert.match(clusterIP, /^10\.96\./);
    let got: string | undefined;
    for (let i = 0; i < 50 && got === undefined; i++) {
      got = await echo(clusterIP, 80, 'via cluster ip').catch(async () => {
        await new Promise((res) => setTimeout(res, 100));
        return undefined;
      });
    }
    assert.equal(got, 'via cluster ip');
    const resolver = new dns.promises.Resolver();
    resolver.setServers([cluster.dnsServer]);
    assert.deepEqual(await resolver.resolve4(`echo2.${ns}.svc.cluster.local`), [clusterIP]);
    assert.deepEqual(await resolver.resolve4(`echo2-0.echo2-headless.${ns}.svc.cluster.local`), [pod.status?.podIP]);
    await assert.rejects(resolver.resolve4(`nope.${ns}.svc.cluster.local`), /ENOTFOUND/);
  }),
);

/** The node a pod was bound to, once it has one. */
async function boundNode(name: string): Promise<string> {
  const pod = await waitWatch<PodLike & { spec?: { nodeName?: string } }>(
    `/api/v1/namespaces/${ns}/pods`,
    `pod ${name} bound to a node`,
    (_t, p) => p.metadata?.name === name && !!p.spec?.nodeName,
  );
  return pod.spec?.nodeName ?? '';
}

function socatPod(name: string, spec = ''): string {
  return `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {app: placed}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: socat, image: alpine/socat:1.8.0.1, args: ["TCP4-LISTEN:1234,fork,reuseaddr", "EXEC:cat"]}
${spec}`;
}

void test(
  'pods fill the first node; a cordon, a drain taint or a nodeSelector sends them to the second; kubectl drain honours a PodDisruptionBudget',
  guarded(async () => {
    const [first, second] = cluster.nodes;
    assert.deepEqual(cluster.nodes, ['bka-node', 'bka-node-b']);
    const ready = await cluster.kubectl([
      'get',
      'nodes',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
    ]);
    assert.equal(ready.stdout.trim(), `${first}=True ${second}=True`);
    const apply = async (yaml: string) => {
      const r = await cluster.kubectl(['-n', ns, 'apply', '-f', '-'], { input: yaml });
      assert.equal(r.code, 0, r.stderr);
    };
    const must = async (...args: string[]) => {
      const r = await cluster.kubectl(args);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    try {
      await apply(socatPod('packed'));
      assert.equal(await boundNode('packed'), first);

      await must('cordon', first ?? '');
      await apply(socatPod('while-cordoned'));
      assert.equal(await boundNode('while-cordoned'), second);
      await must('uncordon', first ?? '');

      await must('taint', 'node', first ?? '', 'karpenter.sh/disrupted:NoSchedule');
      await apply(socatPod('while-tainted'));
      await apply(
        socatPod(
          'tolerates-taint',
          '  tolerations: [{key: karpenter.sh/disrupted, operator: Exists, effect: NoSchedule}]',
        ),
      );
      assert.equal(await boundNode('while-tainted'), second);
      assert.equal(await boundNode('tolerates-taint'), first);
      await must('taint', 'node', first ?? '', 'karpenter.sh/disrupted:NoSchedule-');

      await apply(socatPod('selects-second', `  nodeSelector: {kubernetes.io/hostname: ${second}}`));
      assert.equal(await boundNode('selects-second'), second);

      // Nowhere to go: Pending with the scheduler's reason, bound as soon as a node takes it again.
      await must('cordon', first ?? '', second ?? '');
      await apply(socatPod('nowhere'));
      const pending = await waitWatch<PodLike>(
        `/api/v1/namespaces/${ns}/pods`,
        'pod nowhere Unschedulable',
        (_t, p) =>
          p.metadata?.name === 'nowhere' &&
          !!p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False'),
      );
      assert.equal(pending.status?.phase, 'Pending');
      const reason = await must(
        '-n',
        ns,
        'get',
        'pod',
        'nowhere',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}',
      );
      assert.equal(reason, '0/2 nodes are available: 2 node(s) were unschedulable.');
      await must('uncordon', second ?? '');
      assert.equal(await boundNode('nowhere'), second);
      await must('uncordon', first ?? '');

      // kubectl drain evicts through the Eviction API: refused while the PodDisruptionBudget allows no disruption.
      await apply(`
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: drained}
spec:
  replicas: 1
  serviceName: drained
  selector: {matchLabels: {app: drained}}
  template:
    metadata: {labels: {app: drained}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: socat, image: alpine/socat:1.8.0.1, args: ["TCP4-LISTEN:1234,fork,reuseaddr", "EXEC:cat"], readinessProbe: {tcpSocket: {port: 1234}, periodSeconds: 1}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: drained}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: drained}}
`);
      assert.equal(await boundNode('drained-0'), first);
      await waitWatch<PodLike>(
        `/api/v1/namespaces/${ns}/pods`,
        'pod drained-0 Ready',
        (_t, p) =>
          p.metadata?.name === 'drained-0' &&
          !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      const drainArgs = [
        'drain',
        first ?? '',
        '--pod-selector=app=drained',
        '--delete-emptydir-data',
        '--ignore-daemonsets',
      ];
      const refused = await cluster.kubectl([...drainArgs, '--timeout=8s']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /Cannot evict pod as it would violate the pod's disruption budget/);
      assert.equal(
        await must('-n', ns, 'get', 'pod', 'drained-0', '-o', 'jsonpath={.spec.nodeName}'),
        first,
        'still running where it was',
      );
      assert.equal(
        await must('get', 'node', first ?? '', '-o', 'jsonpath={.spec.unschedulable}'),
        'true',
        'drain cordoned the node first',
      );

      await must('-n', ns, 'delete', 'poddisruptionbudget', 'drained');
      const drained = await cluster.kubectl([...drainArgs, '--timeout=60s']);
      assert.equal(drained.code, 0, drained.stderr);
      assert.match(drained.stdout, /evicted/);
      assert.match(drained.stdout, new RegExp(`node/${first} drained`));
      const back = await waitWatch<PodLike & { spec?: { nodeName?: string } }>(
        `/api/v1/namespaces/${ns}/pods`,
        'drained-0 back and Ready on the other node',
        (_t, p) =>
          p.metadata?.name === 'drained-0' &&
          p.spec?.nodeName === second &&
          !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      assert.equal(await echo(back.status?.podIP ?? '', 1234, 'moved'), 'moved');
    } finally {
      // Later tests share the cluster: leave both nodes open.
      await cluster.kubectl(['uncordon', first ?? '', second ?? '']);
      await cluster.kubectl(['taint', 'node', first ?? '', 'karpenter.sh/disrupted:NoSchedule-']);
    }
  }),
);
