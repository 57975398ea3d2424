import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { ManualClock } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import type { PodMetadataPatch, PodWriter } from '../kube/pods.ts';
import {
  busyLabel,
  clusterAutoscalerSafeToEvict,
  karpenterDoNotDisrupt,
  markPatch,
  marksRecordAnnotation,
} from './busy-mark-patches.ts';
import { BusyMarker } from './busy-marks.ts';

/** Pods in memory with merge-patch semantics and resourceVersion preconditions, as the API server applies them. */
class FakePods implements PodWriter {
  readonly pods = new Map<string, V1Pod>();
  writes = 0;
  reads = 0;
  failWith: number | undefined;

  add(name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}): void {
    this.pods.set(name, { metadata: { name, labels, annotations, resourceVersion: '1' } });
  }

  get(name: string): Promise<V1Pod | undefined> {
    this.reads += 1;
    const pod = this.pods.get(name);
    return Promise.resolve(pod && structuredClone(pod));
  }

  patchMetadata(name: string, patch: PodMetadataPatch): Promise<V1Pod> {
    if (this.failWith) return Promise.reject(Object.assign(new Error('forbidden'), { code: this.failWith }));
    const pod = this.pods.get(name);
    if (!pod?.metadata) return Promise.reject(Object.assign(new Error('not found'), { code: 404 }));
    if (patch.resourceVersion !== undefined && patch.resourceVersion !== pod.metadata.resourceVersion)
      return Promise.reject(Object.assign(new Error('conflict'), { code: 409 }));
    for (const [key, value] of Object.entries(patch.labels ?? {})) {
      pod.metadata.labels ??= {};
      if (value === null) delete pod.metadata.labels[key];
      else pod.metadata.labels[key] = value;
    }
    for (const [key, value] of Object.entries(patch.annotations ?? {})) {
      pod.metadata.annotations ??= {};
      if (value === null) delete pod.metadata.annotations[key];
      else pod.metadata.annotations[key] = value;
    }
    pod.metadata.resourceVersion = String(Number(pod.metadata.resourceVersion) + 1);
    this.writes += 1;
    return Promise.resolve(structuredClone(pod));
  }

  /** What the busy-label watch would list now. */
  labelled(): V1Pod[] {
    return [...this.pods.values()]
      .filter((pod) => pod.metadata?.labels?.[busyLabel] !== undefined)
      .map((pod) => structuredClone(pod));
  }
}

function setup(options: { leader?: boolean } = {}) {
  const clock = new ManualClock();
  const pods = new FakePods();
  const events: GatewayEvent[] = [];
  const state = { busy: [] as string[], leader: options.leader ?? true };
  const marker = new BusyMarker(
    {
      busyPods: () => state.busy,
      labelledPods: () => pods.labelled(),
      labelledPodsSynced: () => true,
      isWriter: () => state.leader,
      isBuilder: (name) => /^buildkitd-\d+$/.test(name),
      pods,
      clock,
    },
    { emit: (event) => events.push(event) },
  );
  const pass = async () => {
    marker.requestReconcile();
    for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
  };
  return { clock, pods, events, state, marker, pass };
}

const marksOf = (pod: V1Pod | undefined) => ({
  busy: pod?.metadata?.labels?.[busyLabel],
  karpenter: pod?.metadata?.annotations?.[karpenterDoNotDisrupt],
  autoscaler: pod?.metadata?.annotations?.[clusterAutoscalerSafeToEvict],
});

test('a pod with a connection gets the label and both annotations; once idle they are removed, one write each way', async () => {
  const { pods, state, pass, events } = setup();
  pods.add('buildkitd-0');
  state.busy = ['buildkitd-0'];
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), { busy: 'true', karpenter: 'true', autoscaler: 'false' });
  await pass();
  assert.equal(pods.writes, 1, 'a pod already marked is not written again');
  state.busy = [];
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), {
    busy: undefined,
    karpenter: undefined,
    autoscaler: undefined,
  });
  assert.equal(pods.pods.get('buildkitd-0')?.metadata?.annotations?.[marksRecordAnnotation], undefined);
  assert.equal(pods.writes, 2);
  assert.deepEqual(
    events.map((e) => e.kind),
    ['builder_marked', 'builder_unmarked'],
  );
});

test('marks someone else set stay: their values come back when ours go, and keys they changed since are theirs', async () => {
  const { pods, state, pass } = setup();
  pods.add(
    'buildkitd-0',
    { team: 'ci' },
    { [clusterAutoscalerSafeToEvict]: 'true', [karpenterDoNotDisrupt]: 'true', note: 'keep' },
  );
  pods.add('buildkitd-1');
  state.busy = ['buildkitd-0', 'buildkitd-1'];
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), { busy: 'true', karpenter: 'true', autoscaler: 'false' });
  // Someone else's tooling takes over the label on buildkitd-1 while it is busy.
  const other = pods.pods.get('buildkitd-1')!;
  other.metadata!.annotations![karpenterDoNotDisrupt] = 'false';
  other.metadata!.resourceVersion = '99';
  state.busy = [];
  await pass();
  const first = pods.pods.get('buildkitd-0')!.metadata!;
  assert.equal(first.annotations?.[clusterAutoscalerSafeToEvict], 'true', 'their safe-to-evict is restored');
  assert.equal(first.annotations?.[karpenterDoNotDisrupt], 'true', 'their do-not-disrupt was never ours');
  assert.equal(first.annotations?.note, 'keep');
  assert.equal(first.labels?.[busyLabel], undefined);
  assert.equal(first.labels?.team, 'ci');
  assert.equal(
    pods.pods.get('buildkitd-1')!.metadata!.annotations![karpenterDoNotDisrupt],
    'false',
    'a value changed by someone else since is left alone',
  );
});

test('a busy label someone removes while the pod is busy comes back, its record kept; once idle every mark goes', async () => {
  const { pods, state, pass, events } = setup();
  pods.add('buildkitd-0', {}, { [clusterAutoscalerSafeToEvict]: 'true' });
  state.busy = ['buildkitd-0'];
  await pass();
  await pass(); // the watch shows our write
  const pod = pods.pods.get('buildkitd-0')!;
  const record = pod.metadata!.annotations![marksRecordAnnotation];
  delete pod.metadata!.labels![busyLabel];
  pod.metadata!.resourceVersion = '99';
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), { busy: 'true', karpenter: 'true', autoscaler: 'false' });
  assert.equal(pods.pods.get('buildkitd-0')!.metadata!.annotations![marksRecordAnnotation], record);
  state.busy = [];
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), {
    busy: undefined,
    karpenter: undefined,
    autoscaler: 'true',
  });
  assert.deepEqual(
    events.map((e) => e.kind),
    ['builder_marked', 'builder_marked', 'builder_unmarked'],
  );
});

test('a busy label set by someone else, then removed while the pod is busy, comes back and goes with our marks', () => {
  const patch = markPatch({
    metadata: { labels: {}, annotations: { [marksRecordAnnotation]: JSON.stringify({ labels: {}, annotations: {} }) } },
  });
  assert.deepEqual(patch?.labels, { [busyLabel]: 'true' });
  assert.deepEqual(JSON.parse(String(patch?.annotations?.[marksRecordAnnotation])), {
    labels: { [busyLabel]: null },
    annotations: {},
  });
});

test('only the writer writes; a new writer removes marks a lost one left behind', async () => {
  const { pods, state, pass } = setup({ leader: false });
  pods.add('buildkitd-0');
  const patch = markPatch(pods.pods.get('buildkitd-0')!)!;
  await pods.patchMetadata('buildkitd-0', patch);
  const before = pods.writes;
  await pass();
  assert.equal(pods.writes, before, 'a follower never writes');
  state.leader = true;
  await pass();
  assert.equal(marksOf(pods.pods.get('buildkitd-0')).busy, undefined, 'the stale mark is gone once a writer runs');
});

test("another StatefulSet's pods are never touched", async () => {
  const { pods, state, pass } = setup();
  pods.add('buildkitd-arm-0');
  await pods.patchMetadata('buildkitd-arm-0', markPatch(pods.pods.get('buildkitd-arm-0')!)!);
  state.busy = ['buildkitd-arm-0'];
  const before = pods.writes;
  await pass();
  state.busy = [];
  await pass();
  assert.equal(pods.writes, before);
});

test('a failed write is logged with BKA_MARK_FAILED and retried after a backoff, not on every pass', async () => {
  const { pods, state, pass, events, clock } = setup();
  pods.add('buildkitd-0');
  pods.failWith = 403;
  state.busy = ['buildkitd-0'];
  await pass();
  await pass();
  const failed = events.filter((e) => e.kind === 'mark_failed');
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.kind === 'mark_failed' && failed[0].code, ErrorCode.MarkFailed);
  pods.failWith = undefined;
  clock.advance(1_000);
  await pass();
  assert.equal(marksOf(pods.pods.get('buildkitd-0')).busy, 'true');
});

test('a pod changed since the watch showed it (409) is read again and marked', async () => {
  const { pods, state, pass } = setup();
  pods.add('buildkitd-0', { [busyLabel]: 'true' });
  const watched = pods.labelled();
  pods.labelled = () => watched;
  pods.pods.get('buildkitd-0')!.metadata!.resourceVersion = '7';
  state.busy = ['buildkitd-0'];
  await pass();
  assert.deepEqual(marksOf(pods.pods.get('buildkitd-0')), { busy: 'true', karpenter: 'true', autoscaler: 'false' });
  assert.equal(pods.reads, 1, 'one fresh read after the conflict');
});
