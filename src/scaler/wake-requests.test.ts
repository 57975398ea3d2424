import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { activeWake, mergeWakeRequests, WakeRequests } from './wake-requests.ts';

test('a shorter request never shortens a longer one, and a covered request is dropped', () => {
  const clock = new ManualClock(1_000_000);
  const now = clock.wallNow();
  const wakes = new WakeRequests({ clock });
  let changes = 0;
  wakes.onChange(() => (changes += 1));
  assert.deepEqual(wakes.request(1, 36_000_000), { replicas: 1, until: now + 36_000_000 });
  wakes.request(1, 600_000);
  wakes.request(3, 600_000);
  assert.equal(changes, 3);
  assert.deepEqual(wakes.current(), [
    { replicas: 3, until: now + 600_000 },
    { replicas: 1, until: now + 36_000_000 },
  ]);
  clock.advance(600_000);
  assert.deepEqual(wakes.current(), [{ replicas: 1, until: 1_000_000 + 36_000_000 }], 'the ended request is gone');
});

test('the active wake is the most replicas in force, then the longest', () => {
  const now = 0;
  assert.equal(activeWake([{ replicas: 4, until: 0 }], now), undefined, 'ended at now');
  assert.deepEqual(
    activeWake(
      [
        { replicas: 1, until: 50 },
        { replicas: 2, until: 10 },
        { replicas: 2, until: 20 },
      ],
      now,
    ),
    { replicas: 2, until: 20 },
  );
  assert.deepEqual(
    mergeWakeRequests(
      [
        { replicas: 2, until: 20 },
        { replicas: 2, until: 10 },
        { replicas: 1, until: 15 },
      ],
      now,
    ),
    [{ replicas: 2, until: 20 }],
  );
});

test('adopted requests merge without shortening and notify only when something changed', () => {
  const clock = new ManualClock(1_000_000);
  const now = clock.wallNow();
  const wakes = new WakeRequests({ clock });
  let changes = 0;
  wakes.onChange(() => (changes += 1));
  wakes.adopt([{ replicas: 1, until: now + 60_000 }]);
  wakes.adopt([{ replicas: 1, until: now + 30_000 }]);
  assert.deepEqual(wakes.current(), [{ replicas: 1, until: now + 60_000 }]);
  assert.equal(changes, 1);
});
