import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.ts';
import type { ScaleDownProposal } from '../scaler/types.ts';
import { LeaderLeaseProposalStore } from './leader-lease-proposals.ts';
import type { LeaderElector } from './leader-election.ts';

test("a proposal's age runs from when this replica first saw it, not from the leader's clock", () => {
  const clock = new ManualClock(1_000_000);
  // A follower: the proposal comes from the leader Lease through its watch.
  const follower = { isLeader: false, annotation: () => undefined } as unknown as LeaderElector;
  let watched: ScaleDownProposal | undefined;
  const store = new LeaderLeaseProposalStore({ elector: follower, watched: () => watched, clock });
  assert.equal(store.current(), undefined);
  for (const leaderSkewMs of [600_000, -600_000]) {
    const id = `p${leaderSkewMs}`;
    watched = {
      id,
      from: 2,
      to: 1,
      pods: { 'buildkitd-1': 'uid-1' },
      proposedAt: clock.wallNow() + leaderSkewMs,
      committed: false,
    };
    const seenAt = clock.wallNow();
    assert.equal(store.current()?.proposedAt, seenAt, `seen now (leader ${leaderSkewMs} ms off)`);
    clock.advance(5_000);
    assert.equal(store.current()?.proposedAt, seenAt, 'the same proposal keeps its first sighting');
    assert.equal(store.current()?.id, id);
  }
});
