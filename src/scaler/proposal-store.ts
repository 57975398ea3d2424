import type { ScaleDownProposal } from './types.ts';

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
