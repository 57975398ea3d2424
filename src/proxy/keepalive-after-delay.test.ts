import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { KEEPALIVE_IDLE_MS, KeepaliveAfterDelay } from './keepalive-after-delay.ts';

/** A socket that records when keepalive was turned on, and how. */
function fakeSocket(clock: ManualClock) {
  const socket = {
    destroyed: false,
    keepalive: [] as Array<{ at: number; enable: boolean; idleMs: number }>,
    setKeepAlive(enable: boolean, idleMs: number) {
      socket.keepalive.push({ at: clock.now(), enable, idleMs });
    },
  };
  return socket;
}

test('a socket still open gets the keepalive it always had, before its first probe is due, once', () => {
  const clock = new ManualClock();
  const keepalive = new KeepaliveAfterDelay<ReturnType<typeof fakeSocket>>(clock);
  const sockets = [0, 700, 1_999, 2_000, 13_000].map((after) => {
    clock.advance(after - clock.now());
    const socket = fakeSocket(clock);
    keepalive.add(socket);
    return { socket, addedAt: clock.now() };
  });
  assert.equal(clock.pendingTimers, 1, 'one timer however many sockets wait');
  clock.advance(120_000);
  for (const { socket, addedAt } of sockets) {
    assert.equal(socket.keepalive.length, 1);
    const [set] = socket.keepalive;
    assert.deepEqual([set?.enable, set?.idleMs], [true, KEEPALIVE_IDLE_MS]);
    const age = (set?.at ?? 0) - addedAt;
    assert.ok(
      age > KEEPALIVE_IDLE_MS - 5_000 && age <= KEEPALIVE_IDLE_MS - 2_000,
      `set at age ${age} ms: within a sweep of two before the first probe`,
    );
  }
  assert.equal(keepalive.size, 0);
  assert.equal(clock.pendingTimers, 0, 'no timer once nobody waits');
});

test('a socket that closes before the delay never gets keepalive, nor does one destroyed but not yet closed', () => {
  const clock = new ManualClock();
  const keepalive = new KeepaliveAfterDelay<ReturnType<typeof fakeSocket>>(clock);
  const [short, destroyed, long] = [fakeSocket(clock), fakeSocket(clock), fakeSocket(clock)];
  for (const socket of [short, destroyed, long]) keepalive.add(socket);
  clock.advance(20_000);
  keepalive.forget(short);
  destroyed.destroyed = true;
  clock.advance(20_000);
  assert.deepEqual([short.keepalive.length, destroyed.keepalive.length, long.keepalive.length], [0, 0, 1]);
  assert.equal(keepalive.size, 0);

  clock.advance(60_000);
  const late = fakeSocket(clock);
  keepalive.add(late);
  assert.equal(clock.pendingTimers, 1, 'the timer starts again with the next socket');
  clock.advance(KEEPALIVE_IDLE_MS);
  assert.equal(late.keepalive.length, 1);
});
