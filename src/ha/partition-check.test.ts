import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import type { GatewayEvent } from '../events.ts';
import { PartitionCheck } from './partition-check.ts';
import { decodeActivity, encodeActivity } from './lease-annotations.ts';

const leaseDurationMs = 6_000;
const probePeriodMs = 1_000;

function setup(answers: Record<string, boolean | undefined>) {
  const clock = new ManualClock();
  let writtenAt: number | undefined = 0;
  const events: GatewayEvent[] = [];
  const asked: string[] = [];
  const check = new PartitionCheck(
    {
      identity: 'me',
      writtenAt: () => writtenAt,
      leaseDurationMs,
      probePeriodMs,
      peers: () => Object.keys(answers).map((identity) => ({ identity, ops: `10.0.0.${identity.length}:9090` })),
      askPeer: (ops) => {
        asked.push(ops);
        const identity = Object.keys(answers).find((name) => ops === `10.0.0.${name.length}:9090`) ?? '';
        return Promise.resolve(answers[identity]);
      },
      clock,
    },
    { emit: (event) => events.push(event) },
  );
  return {
    clock,
    check,
    events,
    asked,
    written: () => (writtenAt = clock.now()),
    neverWritten: () => (writtenAt = undefined),
    /** Moves time by `ms` in rounds, each round run to its end. */
    async advance(ms: number) {
      for (let moved = 0; moved < ms; moved += probePeriodMs) {
        clock.advance(probePeriodMs);
        await check.round();
      }
    },
  };
}

const kinds = (events: GatewayEvent[]) => events.map((event) => event.kind);

test('a replica that writes its report stays ready and asks nobody', async () => {
  const s = setup({ b: true });
  for (let i = 0; i < 20; i += 1) {
    await s.advance(probePeriodMs);
    s.written();
  }
  assert.deepEqual(s.check.readiness(), { name: 'report', ok: true });
  assert.deepEqual(s.asked, []);
  assert.deepEqual(s.check.status(), { identity: 'me', written: true, msSinceWritten: 0 });
});

test('unwritten for a lease duration while another replica writes its own: steps back, and is ready as soon as a write succeeds', async () => {
  const s = setup({ bb: true, c: false });
  await s.advance(leaseDurationMs - probePeriodMs);
  assert.equal(s.check.readiness().ok, true, 'not yet a lease duration');
  assert.deepEqual(s.asked, []);
  await s.advance(probePeriodMs);
  assert.equal(s.check.readiness().ok, true, 'one confirmation is not enough: its own write may be about to succeed');
  await s.advance(probePeriodMs);
  const stepped = s.check.readiness();
  assert.equal(stepped.ok, false);
  assert.match(
    stepped.reason ?? '',
    /^BKA_PARTITIONED: this replica's report Lease has not been written for 7\.0s while bb writes its own/,
  );
  assert.deepEqual(kinds(s.events), ['partition_stepped_back']);
  assert.deepEqual(s.events[0], {
    kind: 'partition_stepped_back',
    unwrittenMs: 7_000,
    confirmedBy: 'bb',
    code: 'BKA_PARTITIONED',
  });
  assert.deepEqual(s.check.status(), { identity: 'me', written: false, msSinceWritten: 7_000 });

  await s.advance(10 * probePeriodMs);
  assert.equal(s.check.readiness().ok, false, 'stays out while the others keep writing');
  assert.deepEqual(kinds(s.events), ['partition_stepped_back'], 'one line per step back');

  s.clock.advance(300);
  s.written();
  assert.deepEqual(s.check.readiness(), { name: 'report', ok: true }, 'ready on the next /readyz, not a round later');
  await s.check.round();
  assert.deepEqual(kinds(s.events), ['partition_stepped_back', 'partition_recovered']);
});

test('no other replica writes its own (the same outage for all) or none answers: stays ready, says why once', async () => {
  for (const answers of [{ b: false, cc: false }, { b: undefined }, {}]) {
    const s = setup(answers);
    await s.advance(30 * probePeriodMs);
    const check = s.check.readiness();
    assert.equal(check.ok, true, JSON.stringify(answers));
    assert.match(
      check.reason ?? '',
      /^report Lease not written for 30\.0s and no other replica says it writes its own .*staying in the Service$/,
    );
    assert.deepEqual(kinds(s.events), ['report_unwritten'], JSON.stringify(answers));
  }
});

test('a peer that confirms once and then not (its own write failed too): never steps back', async () => {
  const answers: Record<string, boolean | undefined> = { b: true };
  const s = setup(answers);
  await s.advance(leaseDurationMs);
  answers['b'] = false;
  await s.advance(probePeriodMs);
  answers['b'] = true;
  await s.advance(probePeriodMs);
  assert.equal(s.check.readiness().ok, true, 'confirmations must come in a row');
  await s.advance(probePeriodMs);
  assert.equal(s.check.readiness().ok, false);
});

test('stepped back, then the others stop writing too (the outage spread): back in the Service', async () => {
  const answers: Record<string, boolean | undefined> = { b: true };
  const s = setup(answers);
  await s.advance(leaseDurationMs + 2 * probePeriodMs);
  assert.equal(s.check.readiness().ok, false);
  answers['b'] = undefined;
  await s.advance(probePeriodMs);
  assert.equal(s.check.readiness().ok, true);
  assert.deepEqual(kinds(s.events), ['partition_stepped_back', 'partition_recovered', 'report_unwritten']);
});

test('never written since start counts from the start', async () => {
  const s = setup({ b: true });
  s.neverWritten();
  await s.advance(leaseDurationMs + 2 * probePeriodMs);
  assert.equal(s.check.readiness().ok, false);
  assert.deepEqual(s.check.status(), { identity: 'me', written: false, msSinceWritten: null });
});

test('the ops address travels in the report; anything but ip:port is dropped', () => {
  const base = { instance: 'i', open: 0, held: 0, pods: {}, since: 0, ack: undefined, draining: false };
  for (const ops of ['10.244.0.7:9090', '[fd00::7]:9090'])
    assert.equal(decodeActivity(encodeActivity({ ...base, ops }))?.ops, ops);
  for (const ops of [
    'evil.example:80/x',
    'http://10.0.0.1:9090',
    '10.0.0.1',
    '10.0.0.1:0',
    '10.0.0.1:99999',
    '300.1.1.1:80',
  ]) {
    const decoded = decodeActivity(encodeActivity({ ...base, ops }));
    assert.ok(decoded, 'the report itself is kept');
    assert.equal(decoded.ops, undefined, ops);
  }
});
