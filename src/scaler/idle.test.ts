import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { IdleTracker } from './idle.ts';

function tracker(timeoutMs = 1000) {
  const clock = new ManualClock();
  const fired: number[] = [];
  const idle = new IdleTracker(clock, timeoutMs, () => undefined);
  idle.onIdle = (epoch) => fired.push(epoch);
  return { clock, idle, fired };
}

test('fires once the last connection has been closed for the timeout', () => {
  const { clock, idle, fired } = tracker();
  idle.connectionOpened();
  idle.connectionOpened();
  idle.connectionClosed();
  clock.advance(5000);
  assert.deepEqual(fired, [], 'one connection still open');
  idle.connectionClosed();
  clock.advance(999);
  assert.deepEqual(fired, []);
  clock.advance(1);
  assert.equal(fired.length, 1);
  assert.equal(idle.isStillIdle(fired[0]!), true);
});

test('a new connection cancels the timer, and an epoch taken before it is no longer idle', () => {
  const { clock, idle, fired } = tracker();
  idle.arm();
  const epochBefore = idle.epoch;
  clock.advance(500);
  idle.connectionOpened();
  clock.advance(5000);
  assert.deepEqual(fired, []);
  assert.equal(idle.isStillIdle(epochBefore), false);
  idle.connectionClosed();
  assert.equal(idle.isStillIdle(epochBefore), false, 'a connection came and went: the old decision is stale');
  clock.advance(1000);
  assert.equal(fired.length, 1);
});

test('arm is idempotent and does nothing while connections are open', () => {
  const { clock, idle, fired } = tracker();
  idle.arm();
  idle.arm();
  assert.equal(clock.pendingTimers, 1);
  clock.advance(1000);
  assert.equal(fired.length, 1);
  idle.connectionOpened();
  idle.arm();
  assert.equal(clock.pendingTimers, 0);
});
