import type { Clock } from '../clock.ts';
import type { ProposalStore } from '../scaler/proposal-store.ts';
import type { ScaleDownProposal } from '../scaler/types.ts';
import type { LeaderElector } from './leader-election.ts';
import { decodeProposal, encodeProposal, proposalAnnotation } from './lease-annotations.ts';

/**
 * The proposal as an annotation of the leader Lease. The leader reads what it last wrote; the others read
 * the Lease through their watch, so a new leader adopts (and then commits or withdraws) a proposal its
 * predecessor left behind.
 */
export class LeaderLeaseProposalStore implements ProposalStore {
  private readonly elector: LeaderElector;
  private readonly watched: () => ScaleDownProposal | undefined;
  private readonly clock: Clock;
  /** The proposal last seen and when this replica first saw it: its age is judged from then, never from the writer's clock. */
  private sighting: { id: string; at: number } | undefined;

  constructor(inputs: {
    elector: LeaderElector;
    /** The proposal on the leader Lease as this replica's watch last saw it (what a follower reads). */
    watched: () => ScaleDownProposal | undefined;
    clock: Clock;
  }) {
    this.elector = inputs.elector;
    this.watched = inputs.watched;
    this.clock = inputs.clock;
  }

  current(): ScaleDownProposal | undefined {
    const proposal = this.elector.isLeader
      ? decodeProposal(this.elector.annotation(proposalAnnotation))
      : this.watched();
    if (!proposal) return undefined;
    if (this.sighting?.id !== proposal.id) this.sighting = { id: proposal.id, at: this.clock.wallNow() };
    return { ...proposal, proposedAt: this.sighting.at };
  }

  write(proposal: ScaleDownProposal | undefined): Promise<boolean> {
    return this.elector.setAnnotation(proposalAnnotation, proposal && encodeProposal(proposal));
  }
}
