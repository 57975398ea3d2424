// When is a pod gone? Not when its endpoint merely leaves one EndpointSlice: a move between slices can
// land as a removal before the addition. Only the pod's own termination, or absence for a grace, counts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Endpoint, V1EndpointSlice } from '@kubernetes/client-node';
import { ManualClock } from '../clock.ts';
import { BackendSet } from './backend-set.ts';
import { EndpointSliceBackends } from './endpoints.ts';

const graceMs = 5000;
const pod = 'uid-buildkitd-0';

const endpoint = (
  conditions: V1Endpoint['conditions'] = { ready: true, serving: true, terminating: false },
): V1Endpoint => ({
  addresses: ['10.244.0.10'],
  conditions,
  targetRef: { kind: 'Pod', name: 'buildkitd-0', namespace: 'ci', uid: pod },
});
const slice = (name: string, endpoints: V1Endpoint[]): V1EndpointSlice => ({
  metadata: { name },
  addressType: 'IPv4',
  endpoints,
});

/** The informer seam: slices are replaced one API event at a time, as a watch delivers them. */
class SliceEvents {
  private slices = new Map<string, V1EndpointSlice>();
  private listeners = new Set<() => void>();
  objects(): readonly V1EndpointSlice[] {
    return [...this.slices.values()];
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  put(s: V1EndpointSlice): void {
    this.slices.set(s.metadata?.name ?? '', s);
    for (const listener of this.listeners) listener();
  }
}

function setup() {
  const clock = new ManualClock();
  const slices = new SliceEvents();
  const source = new EndpointSliceBackends(slices, 'buildkitd', 8273, clock, graceMs);
  const backends = new BackendSet(source, () => ({ routable: new Set(['buildkitd-0']), loads: {}, atMaximum: true }));
  // What the router sees: on every change it closes the connections of pods that no longer exist.
  const seenAtChanges: boolean[] = [];
  backends.onChange(() => seenAtChanges.push(backends.stillExists(pod)));
  slices.put(slice('a', [endpoint()]));
  seenAtChanges.length = 0;
  return { clock, slices, source, backends, seenAtChanges };
}

test('an endpoint moving between slices, removal first, stays existing: no change closes its connections', () => {
  const { clock, slices, backends, seenAtChanges } = setup();
  slices.put(slice('a', []));
  clock.advance(graceMs - 1);
  slices.put(slice('b', [endpoint()]));
  clock.advance(graceMs * 3);
  assert.deepEqual(seenAtChanges, [true, true]);
  assert.equal(backends.stillExists(pod), true);
  assert.deepEqual(
    backends.ready().map((b) => b.key),
    [pod],
  );
});

test('an endpoint absent from every slice for the grace is gone, without waiting for another slice event', () => {
  const { clock, slices, backends, seenAtChanges } = setup();
  slices.put(slice('a', []));
  clock.advance(graceMs - 1);
  assert.equal(backends.stillExists(pod), true);
  clock.advance(1);
  assert.equal(backends.stillExists(pod), false);
  assert.deepEqual(seenAtChanges, [true, false], 'the grace ending is itself a change');
});

test('a terminating endpoint keeps its connections but takes no new ones; its removal is gone at once', () => {
  const { slices, backends, seenAtChanges } = setup();
  slices.put(slice('a', [endpoint({ ready: false, serving: true, terminating: true })]));
  assert.equal(backends.stillExists(pod), true, 'a draining pod may still be finishing a build');
  assert.deepEqual(backends.ready(), []);
  slices.put(slice('a', []));
  assert.equal(backends.stillExists(pod), false, 'the pod was seen being deleted: its absence is final');
  assert.deepEqual(seenAtChanges, [true, false]);
});

// The scale-down fence (scaler/decide.ts) lasts while the removed pod exists: it must outlive a move.
test('a pod moving between slices stays listed as existing (not ready) through the move, so a scale-down fence on it holds', () => {
  const { clock, slices, source } = setup();
  let changes = 0;
  source.onChange(() => (changes += 1));
  slices.put(slice('a', []));
  assert.deepEqual(
    source.pods().map((p) => [p.podName, p.ready]),
    [['buildkitd-0', false]],
    'absent, within the grace',
  );
  slices.put(slice('b', [endpoint()]));
  assert.deepEqual(
    source.pods().map((p) => [p.podName, p.ready]),
    [['buildkitd-0', true]],
  );
  slices.put(slice('b', []));
  const before = changes;
  clock.advance(graceMs);
  assert.deepEqual(source.pods(), []);
  assert.ok(changes > before, 'the pod leaving is announced, so a waiting wake proceeds');
});

test('a pod seen terminating leaves the existing pods as soon as it leaves the slices, with no grace', () => {
  const { slices, source } = setup();
  slices.put(slice('a', [endpoint({ ready: false, serving: false, terminating: true })]));
  assert.deepEqual(
    source.pods().map((p) => [p.podName, p.terminating]),
    [['buildkitd-0', true]],
  );
  slices.put(slice('a', []));
  assert.deepEqual(source.pods(), []);
});
