import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { LocalActivity } from './activity.ts';

test('a connection that closes while held records when (the builders woken for it count it as activity)', () => {
  const clock = new ManualClock(1000);
  const activity = new LocalActivity({ clock });
  assert.equal(activity.snapshot().lastHeldCloseAt, undefined, 'none yet');
  const gaveUp = activity.arrive();
  clock.advance(20_000);
  gaveUp.close();
  assert.deepEqual(activity.snapshot(), { open: 0, held: 0, pods: {}, since: 1000, lastHeldCloseAt: 21_000 });
});

test('a connection that closes on its pod counts on that pod, not as a held close', () => {
  const clock = new ManualClock(1000);
  const activity = new LocalActivity({ clock });
  const served = activity.arrive();
  served.assign('buildkitd-0');
  clock.advance(4000);
  served.close();
  assert.deepEqual(activity.snapshot(), {
    open: 0,
    held: 0,
    pods: { 'buildkitd-0': { open: 0, lastActiveAt: 5000 } },
    since: 1000,
  });
});
