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

const endpoint = (conditions: V1Endpoint['conditions'] = { ready: true, serving: true, terminating: false }): V1Endpoint => ({
  addresses: ['10.244.0.10'],
  conditions,
  targetRef: { kind: 'Pod', name: 'buildkitd-0', namespace: 'ci', uid: pod },
});
const slice = (name: string, endpoints: V1Endpoint[]): V1EndpointSlice => ({ metadata: { name }, addressType: 'IPv4', endpoints });

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
  const backends = new BackendSet(new EndpointSliceBackends(slices, 'buildkitd', 8273, clock, graceMs));
  // What the router sees: on every change it closes the connections of pods that no longer exist.
  const seenAtChanges: boolean[] = [];
  backends.onChange(() => seenAtChanges.push(backends.stillExists(pod)));
  slices.put(slice('a', [endpoint()]));
  seenAtChanges.length = 0;
  return { clock, slices, backends, seenAtChanges };
}

test('an endpoint moving between slices, removal first, stays existing: no change closes its connections', () => {
  const { clock, slices, backends, seenAtChanges } = setup();
  slices.put(slice('a', []));
  clock.advance(graceMs - 1);
  slices.put(slice('b', [endpoint()]));
  clock.advance(graceMs * 3);
  assert.deepEqual(seenAtChanges, [true, true]);
  assert.equal(backends.stillExists(pod), true);
  assert.deepEqual(backends.ready().map((b) => b.key), [pod]);
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

test('the scale-down fence holds while the fenced pod moves between slices and lifts once it is gone', () => {
  const { clock, slices, backends } = setup();
  let changes = 0;
  backends.onChange(() => (changes += 1));
  backends.fence();
  slices.put(slice('a', []));
  slices.put(slice('b', [endpoint()]));
  assert.equal(backends.fencedCount, 1);
  assert.deepEqual(backends.ready(), [], 'a fenced pod is never used again, moved or not');
  slices.put(slice('b', []));
  assert.equal(backends.fencedCount, 1, 'absent, but within the grace');
  const before = changes;
  clock.advance(graceMs);
  assert.equal(backends.fencedCount, 0);
  assert.ok(changes > before, 'the fence lifting is announced, so a waiting wake proceeds');
});

test('the fence of a pod seen terminating lifts as soon as it leaves the slices, with no grace', () => {
  const { slices, backends } = setup();
  backends.fence();
  slices.put(slice('a', [endpoint({ ready: false, serving: false, terminating: true })]));
  assert.equal(backends.fencedCount, 1);
  slices.put(slice('a', []));
  assert.equal(backends.fencedCount, 0);
});
