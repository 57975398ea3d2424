import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from './clock.ts';

test('a timer longer than setTimeout can hold (2^31-1 ms, ~24.8 days) does not fire early', async () => {
  let fired = 0;
  const long = systemClock.setTimer(2 ** 31 + 1_000, () => (fired += 1));
  const short = await new Promise<number>((resolve) => systemClock.setTimer(50, () => resolve(fired)));
  long.cancel();
  assert.equal(short, 0, 'Node fires an overflowing setTimeout after 1 ms; the clock must not');
});
