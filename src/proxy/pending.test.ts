import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { ErrorCode, GatewayError } from '../errors.ts';
import { PendingConnections } from './pending.ts';

test('bounded: a full queue refuses, a released place is reused', () => {
  const queue = new PendingConnections({ maxPending: 2, clock: new ManualClock(), maxPendingBytes: 1024 });
  const a = queue.enter(1000);
  const b = queue.enter(1000);
  assert.ok(a && b);
  assert.equal(queue.enter(1000), undefined);
  a.release();
  a.release();
  assert.equal(queue.size, 1);
  assert.ok(queue.enter(1000));
});

test('each held connection expires at its own deadline with BKA_READY_TIMEOUT', async () => {
  const clock = new ManualClock();
  const queue = new PendingConnections({ maxPending: 10, clock, maxPendingBytes: 1024 });
  const early = queue.enter(100)!;
  const late = queue.enter(300)!;
  const results: string[] = [];
  const watch = (name: string, promise: Promise<void>) =>
    promise.then(
      () => results.push(`${name}:woken`),
      (error: GatewayError) => results.push(`${name}:${error.code}`),
    );
  const settledEarly = watch('early', early.wait());
  const settledLate = watch('late', late.wait());
  clock.advance(150);
  await settledEarly;
  assert.deepEqual(results, [`early:${ErrorCode.ReadyTimeout}`]);
  queue.wakeAll();
  await settledLate;
  assert.deepEqual(results, [`early:${ErrorCode.ReadyTimeout}`, 'late:woken']);
});

test('failAll rejects every waiter with the failure', async () => {
  const queue = new PendingConnections({ maxPending: 10, clock: new ManualClock(), maxPendingBytes: 1024 });
  const waits = [queue.enter(1000)!.wait(), queue.enter(1000)!.wait()];
  queue.failAll(new GatewayError(ErrorCode.ScaleForbidden, 'nope'));
  for (const wait of waits) await assert.rejects(wait, { code: ErrorCode.ScaleForbidden });
});

test('early input shares one byte budget: what does not fit is refused and nothing is counted for it', () => {
  const queue = new PendingConnections({ maxPending: 10, clock: new ManualClock(), maxPendingBytes: 100 });
  assert.ok(queue.reserveBytes(60));
  assert.equal(queue.reserveBytes(41), false);
  assert.equal(queue.heldBytes, 60);
  assert.ok(queue.reserveBytes(40));
  queue.releaseBytes(60);
  assert.equal(queue.heldBytes, 40);
});
