import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from './source.ts';
import { chooseBackends, type BalancerInput } from './balancer.ts';

const pods = (n: number): Backend[] =>
  Array.from({ length: n }, (_, i) => ({
    key: `uid-${i}`,
    podName: `buildkitd-${i}`,
    ordinal: i,
    host: `10.0.0.${i}`,
    port: 8273,
  }));
const input = (extra: Partial<BalancerInput> = {}): BalancerInput => ({
  clientKey: '10.1.0.7',
  affinity: 'client-ip',
  loads: {},
  connectionsPerReplica: 8,
  atMaximum: true,
  ...extra,
});
const first = (backends: Backend[], i: BalancerInput) => chooseBackends(backends, i).order[0]?.podName;

test('client-ip: the same client address reaches the same builder every time, whichever replica asks', () => {
  const three = pods(3);
  const chosen = new Set(Array.from({ length: 10 }, () => first(three, input())));
  assert.equal(chosen.size, 1);
  // Another order of the same pods (another replica's list) gives the same answer.
  assert.equal(first([...three].reverse(), input()), [...chosen][0]);
  assert.equal(chooseBackends(three, input()).affinityHit, true);
});

test('client-ip: adding a builder moves only the clients that now prefer it (rendezvous)', () => {
  const clients = Array.from({ length: 300 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
  const before = clients.map((c) => first(pods(3), input({ clientKey: c })));
  const after = clients.map((c) => first(pods(4), input({ clientKey: c })));
  const moved = clients.filter((_, i) => before[i] !== after[i]);
  assert.ok(
    moved.every((_, i) => after[clients.indexOf(moved[i] ?? '')] === 'buildkitd-3'),
    'clients move only to the new builder',
  );
  assert.ok(moved.length > 30 && moved.length < 130, `about a quarter moved: ${moved.length}/300`);
});

test('client-ip: many client addresses spread over the builders within the load bound', () => {
  const three = pods(3);
  const loads: Record<string, number> = {};
  for (let i = 0; i < 24; i += 1) {
    const choice = chooseBackends(three, input({ clientKey: `10.2.0.${i}`, loads, connectionsPerReplica: 100 }));
    const name = choice.order[0]?.podName ?? '';
    loads[name] = (loads[name] ?? 0) + 1;
    const total = Object.values(loads).reduce((a, b) => a + b, 0);
    for (const load of Object.values(loads))
      assert.ok(load <= Math.ceil((1.25 * total) / 3), `bounded: ${JSON.stringify(loads)}`);
  }
});

test('a builder at its connections-per-replica share passes the client to its next choice (a miss)', () => {
  const three = pods(3);
  const own = first(three, input()) ?? '';
  const choice = chooseBackends(
    three,
    input({
      loads: { [own]: 2, ...Object.fromEntries(three.filter((b) => b.podName !== own).map((b) => [b.podName, 1])) },
      connectionsPerReplica: 2,
    }),
  );
  assert.notEqual(choice.order[0]?.podName, own);
  assert.equal(choice.affinityHit, false);
});

test('every builder full: hold (empty) while one can be added, least loaded once at the maximum', () => {
  const two = pods(2);
  const full = { 'buildkitd-0': 2, 'buildkitd-1': 3 };
  assert.deepEqual(chooseBackends(two, input({ loads: full, connectionsPerReplica: 2, atMaximum: false })).order, []);
  assert.deepEqual(
    chooseBackends(two, input({ loads: full, connectionsPerReplica: 2, atMaximum: true })).order.map((b) => b.podName),
    ['buildkitd-0', 'buildkitd-1'],
  );
  assert.deepEqual(
    chooseBackends(two, input({ affinity: 'none', loads: full, connectionsPerReplica: 2, atMaximum: false })).order,
    [],
  );
});

test('none: least connections first, the lowest ordinal on a tie; a pod whose dial failed goes last', () => {
  const three = pods(3);
  const none = (extra: Partial<BalancerInput>) =>
    chooseBackends(three, input({ affinity: 'none', ...extra })).order.map((b) => b.podName);
  assert.deepEqual(none({}), ['buildkitd-0', 'buildkitd-1', 'buildkitd-2']);
  assert.deepEqual(none({ loads: { 'buildkitd-0': 2, 'buildkitd-1': 1 } }), [
    'buildkitd-2',
    'buildkitd-1',
    'buildkitd-0',
  ]);
  assert.deepEqual(none({ recentlyFailed: new Set(['uid-0']) }), ['buildkitd-1', 'buildkitd-2', 'buildkitd-0']);
  assert.equal(chooseBackends(three, input({ affinity: 'none' })).affinityHit, undefined);
});

test('client-ip: the first choice whose dial failed is tried last', () => {
  const three = pods(3);
  const own = chooseBackends(three, input()).order[0];
  const retry = chooseBackends(three, input({ recentlyFailed: new Set([own?.key ?? '']) })).order;
  assert.equal(retry.at(-1)?.podName, own?.podName);
});

test('client-ip: the client address is read only when there is more than one builder to rank', () => {
  let reads = 0;
  const key = () => {
    reads += 1;
    return '10.1.0.7';
  };
  assert.equal(chooseBackends(pods(1), input({ clientKey: key })).order[0]?.podName, 'buildkitd-0');
  assert.equal(reads, 0);
  assert.deepEqual(
    chooseBackends(pods(3), input({ clientKey: key })).order.map((b) => b.podName),
    chooseBackends(pods(3), input()).order.map((b) => b.podName),
  );
  assert.equal(reads, 1);
});

test('a cap at the maximum: overload up to --max-connections-per-replica, then nobody (at capacity: the client queues)', () => {
  const two = pods(2);
  const capped = (extra: Partial<BalancerInput>) =>
    chooseBackends(two, input({ connectionsPerReplica: 2, maxConnectionsPerReplica: 3, ...extra }));
  for (const affinity of ['client-ip', 'none'] as const) {
    const room = capped({ affinity, loads: { 'buildkitd-0': 3, 'buildkitd-1': 2 } });
    assert.deepEqual(
      room.order.map((b) => b.podName),
      ['buildkitd-1'],
      `${affinity}: only the builder below the cap`,
    );
    assert.deepEqual([room.overloads, room.atCapacity], [true, false]);
    const full = capped({ affinity, loads: { 'buildkitd-0': 3, 'buildkitd-1': 3 } });
    assert.deepEqual([full.order, full.atCapacity], [[], true], `${affinity}: every builder at the cap`);
    const growing = capped({ affinity, loads: { 'buildkitd-0': 3, 'buildkitd-1': 3 }, atMaximum: false });
    assert.deepEqual(
      [growing.order, growing.atCapacity],
      [[], false],
      `${affinity}: below the maximum the client is held while a builder is added`,
    );
  }
});

test("a cap below the share bounds affinity too: the client's own builder at the cap passes it on, even with room in its share", () => {
  const three = pods(3);
  const own = first(three, input()) ?? '';
  const choice = chooseBackends(
    three,
    input({ connectionsPerReplica: 8, maxConnectionsPerReplica: 1, loads: { [own]: 1 } }),
  );
  assert.ok(choice.order.length === 2 && choice.order.every((b) => b.podName !== own), JSON.stringify(choice.order));
  assert.equal(choice.affinityHit, false);
  const none = chooseBackends(
    three,
    input({
      affinity: 'none',
      connectionsPerReplica: 8,
      maxConnectionsPerReplica: 1,
      loads: { 'buildkitd-0': 1, 'buildkitd-1': 1, 'buildkitd-2': 1 },
    }),
  );
  assert.deepEqual([none.order, none.atCapacity], [[], true]);
});

test('without a cap (0) the maximum still overloads without limit, as before', () => {
  const choice = chooseBackends(
    pods(1),
    input({ connectionsPerReplica: 2, maxConnectionsPerReplica: 0, loads: { 'buildkitd-0': 50 } }),
  );
  assert.deepEqual(
    [choice.order.map((b) => b.podName), choice.overloads, choice.atCapacity],
    [['buildkitd-0'], true, false],
  );
});
