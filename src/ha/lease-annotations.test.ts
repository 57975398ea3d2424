import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeActivity,
  decodeProposal,
  encodeActivity,
  encodeProposal,
  leaseAnnotation,
  type PublishedActivity,
} from './lease-annotations.ts';

const activity: PublishedActivity = {
  instance: '5d0c7f9e-1',
  open: 3,
  held: 1,
  pods: {
    'buildkitd-0': { open: 2, lastActiveAt: Date.parse('2025-01-02T03:04:05.678Z') },
    'buildkitd-1': { open: 1, lastActiveAt: Date.parse('2025-01-02T03:04:06.000Z') },
  },
  since: Date.parse('2025-01-02T03:00:00.000Z'),
  ack: '2-1-1735786000000',
  draining: true,
};

test('an activity report survives the round trip, and reads well in kubectl (ISO times)', () => {
  const text = encodeActivity(activity);
  assert.deepEqual(decodeActivity(text), activity);
  assert.match(text, /"lastActive":"2025-01-02T03:04:05.678Z"/);
  assert.match(text, /"since":"2025-01-02T03:00:00.000Z"/);
});

test('an idle report leaves out ack and draining, and reads back as none and false', () => {
  const idle = { ...activity, open: 0, held: 0, pods: {}, ack: undefined, draining: false };
  const text = encodeActivity(idle);
  assert.doesNotMatch(text, /ack|draining/);
  assert.deepEqual(decodeActivity(text), idle);
});

test('when a held client last gave up travels as an ISO time; absent or malformed it is simply unknown', () => {
  const gaveUp = { ...activity, lastHeldCloseAt: Date.parse('2025-01-02T03:04:07.000Z') };
  const text = encodeActivity(gaveUp);
  assert.match(text, /"heldClosed":"2025-01-02T03:04:07.000Z"/);
  assert.deepEqual(decodeActivity(text), gaveUp);
  assert.deepEqual(decodeActivity(JSON.stringify({ ...(JSON.parse(text) as object), heldClosed: 'later' })), activity);
});

test('malformed activity annotations decode to undefined (such a report blocks scale-down)', () => {
  const valid = JSON.parse(encodeActivity(activity)) as Record<string, unknown>;
  const cases: Array<[string, string | undefined]> = [
    ['missing', undefined],
    ['not JSON', '{"instance":'],
    ['JSON null', 'null'],
    ['a number', '42'],
    ['no instance', JSON.stringify({ ...valid, instance: undefined })],
    ['negative count', JSON.stringify({ ...valid, open: -1 })],
    ['fractional count', JSON.stringify({ ...valid, held: 0.5 })],
    ['count as text', JSON.stringify({ ...valid, open: '3' })],
    ['bad since', JSON.stringify({ ...valid, since: 'yesterday' })],
    ['pods not an object', JSON.stringify({ ...valid, pods: null })],
    ['pod with bad time', JSON.stringify({ ...valid, pods: { 'buildkitd-0': { open: 1, lastActive: 'soon' } } })],
    [
      'pod with bad count',
      JSON.stringify({ ...valid, pods: { 'buildkitd-0': { open: -2, lastActive: '2025-01-02T03:04:05.678Z' } } }),
    ],
    ['pod entry null', JSON.stringify({ ...valid, pods: { 'buildkitd-0': null } })],
    ['pod entry a number', JSON.stringify({ ...valid, pods: { 'buildkitd-0': 1 } })],
    ['pod time a number', JSON.stringify({ ...valid, pods: { 'buildkitd-0': { open: 1, lastActive: 0 } } })],
  ];
  for (const [name, text] of cases) assert.equal(decodeActivity(text), undefined, name);
});

test('a non-string ack or draining flag is ignored, not trusted', () => {
  const valid = JSON.parse(encodeActivity(activity)) as Record<string, unknown>;
  const decoded = decodeActivity(JSON.stringify({ ...valid, ack: 7, draining: 'yes' }));
  assert.equal(decoded?.ack, undefined);
  assert.equal(decoded?.draining, false);
});

test('a scale-down proposal survives the round trip; malformed ones decode to undefined', () => {
  const proposal = {
    id: '2-1-1735786000000',
    from: 2,
    to: 1,
    pods: { 'buildkitd-1': 'uid-1', 'buildkitd-2': '' },
    proposedAt: Date.parse('2025-01-02T03:04:05.678Z'),
    committed: true,
  };
  const text = encodeProposal(proposal);
  assert.deepEqual(decodeProposal(text), proposal);
  assert.match(text, /"proposedAt":"2025-01-02T03:04:05.678Z"/);
  assert.equal(decodeProposal(encodeProposal({ ...proposal, committed: false }))?.committed, false);
  const valid = JSON.parse(text) as Record<string, unknown>;
  for (const bad of [
    undefined,
    '',
    'nope',
    'null',
    JSON.stringify({ ...valid, id: 1 }),
    JSON.stringify({ ...valid, from: -1 }),
    JSON.stringify({ ...valid, to: 'zero' }),
    JSON.stringify({ ...valid, pods: null }),
    JSON.stringify({ ...valid, pods: { 'buildkitd-1': 7 } }),
    JSON.stringify({ ...valid, proposedAt: 'later' }),
  ]) {
    assert.equal(decodeProposal(bad), undefined, String(bad));
  }
});

test('leaseAnnotation reads one annotation, and tolerates a missing Lease or metadata', () => {
  assert.equal(leaseAnnotation({ metadata: { annotations: { a: 'b' } } }, 'a'), 'b');
  assert.equal(leaseAnnotation({ metadata: {} }, 'a'), undefined);
  assert.equal(leaseAnnotation(undefined, 'a'), undefined);
});

test('wake requests travel in the report; malformed entries are dropped, not the report', () => {
  const woken = { ...activity, wake: [{ replicas: 2, until: Date.parse('2025-01-02T13:00:00.000Z') }] };
  const text = encodeActivity(woken);
  assert.match(text, /"wake":\[\{"replicas":2,"until":"2025-01-02T13:00:00.000Z"\}\]/);
  assert.deepEqual(decodeActivity(text), woken);
  const valid = JSON.parse(encodeActivity(activity)) as Record<string, unknown>;
  for (const wake of [
    'soon',
    42,
    [null],
    [{ replicas: 0, until: '2025-01-02T13:00:00.000Z' }],
    [{ replicas: 1, until: 'later' }],
    [{ replicas: '1', until: '2025-01-02T13:00:00.000Z' }],
  ]) {
    assert.deepEqual(decodeActivity(JSON.stringify({ ...valid, wake })), activity, JSON.stringify(wake));
  }
  const mixed = decodeActivity(
    JSON.stringify({ ...valid, wake: [{ replicas: 1 }, { replicas: 1, until: '2025-01-02T13:00:00.000Z' }] }),
  );
  assert.deepEqual(mixed?.wake, [{ replicas: 1, until: Date.parse('2025-01-02T13:00:00.000Z') }]);
});
