import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapacityQueue } from './capacity-queue.ts';

test('the queue keeps arrival order: a newcomer is behind everyone waiting, a connection that lost its dial gets its turn back', () => {
  const sizes: number[] = [];
  const queue = new CapacityQueue({ onSizeChange: (size) => sizes.push(size) });
  assert.equal(queue.anyoneAhead(1), false, "nobody waits: room is anyone's");
  assert.equal(queue.join(3), true);
  assert.equal(queue.join(5), true);
  assert.equal(queue.join(3), false, 'one place per connection');
  assert.equal(queue.anyoneAhead(7), true, 'a newcomer waits behind them');
  assert.equal(queue.anyoneAhead(3), false, 'the first in line may take room');
  assert.equal(queue.anyoneAhead(5), true);
  assert.equal(queue.join(4), true);
  assert.equal(queue.anyoneAhead(4), true);
  assert.equal(queue.leave(3), true);
  assert.equal(queue.anyoneAhead(4), false, 'an earlier arrival that rejoined is next');
  assert.equal(queue.anyoneAhead(5), true);
  assert.equal(queue.leave(3), false);
  queue.leave(4);
  queue.leave(5);
  assert.equal(queue.size, 0);
  assert.deepEqual(sizes, [1, 2, 3, 2, 1, 0]);
});
