import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { FirstByteDeadlines } from './first-byte-deadlines.ts';

test('each silent connection expires at its own deadline, with one timer for all of them', () => {
  const clock = new ManualClock();
  const deadlines = new FirstByteDeadlines(1000, clock);
  const expired: string[] = [];
  deadlines.watch(() => expired.push('a'));
  clock.advance(300);
  deadlines.watch(() => expired.push('b'));
  clock.advance(300);
  deadlines.watch(() => expired.push('c'));
  assert.equal(clock.pendingTimers, 1, 'one timer however many connections wait');
  clock.advance(399);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.deepEqual(expired, ['a']);
  clock.advance(300);
  assert.deepEqual(expired, ['a', 'b']);
  clock.advance(300);
  assert.deepEqual(expired, ['a', 'b', 'c']);
  assert.equal(deadlines.size, 0);
  assert.equal(clock.pendingTimers, 0, 'no timer left once nobody waits');
});

test('a connection that spoke in time is never expired, and the next one still is', () => {
  const clock = new ManualClock();
  const deadlines = new FirstByteDeadlines(1000, clock);
  const expired: string[] = [];
  const spoke = deadlines.watch(() => expired.push('spoke'));
  clock.advance(500);
  deadlines.watch(() => expired.push('silent'));
  spoke.cancel();
  clock.advance(1000);
  assert.deepEqual(expired, ['silent']);
  deadlines.watch(() => expired.push('later'));
  clock.advance(1000);
  assert.deepEqual(expired, ['silent', 'later']);
});
