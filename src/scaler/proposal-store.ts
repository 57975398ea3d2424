import type { Clock } from '../clock.ts';
import { encodeProposal, decodeProposal, proposalAnnotation } from '../ha/activity-lease.ts';
import type { LeaderElector } from '../ha/leader-election.ts';
import type { ScaleDownProposal } from './decide.ts';

/** Where the scale-down proposal lives: shared state every replica reads, written only by the leader. */
export interface ProposalStore {
  current(): ScaleDownProposal | undefined;
  /** Writes (or with undefined removes) the proposal; false if it did not land (no longer the leader). */
  write(proposal: ScaleDownProposal | undefined): Promise<boolean>;
}

/** A lone gateway without leader election: the proposal is this process's own business. */
export class LocalProposalStore implements ProposalStore {
  private proposal: ScaleDownProposal | undefined;

  current(): ScaleDownProposal | undefined {
    return this.proposal;
  }

  write(proposal: ScaleDownProposal | undefined): Promise<boolean> {
    this.proposal = proposal;
    return Promise.resolve(true);
  }
}

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

  constructor(elector: LeaderElector, watched: () => ScaleDownProposal | undefined, clock: Clock) {
    this.elector = elector;
    this.watched = watched;
    this.clock = clock;
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
