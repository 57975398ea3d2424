import type { Clock, Timer } from '../clock.ts';
import { ErrorCode } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import type { ReadinessCheck } from '../readiness-check.ts';

export interface PartitionCheckInputs {
  identity: string;
  /** When this replica's own report was last written (monotonic ms); undefined before the first write. */
  writtenAt: () => number | undefined;
  /** Unwritten this long, the others count the report as stale: from then on this replica asks them. */
  leaseDurationMs: number;
  /** Between two rounds of asking, and each peer's deadline to answer. */
  probePeriodMs: number;
  /** The other replicas and their ops address, as last read from their reports. */
  peers: () => ReadonlyArray<{ identity: string; ops: string }>;
  /** Whether a peer writes its own report now: true or false, undefined when it did not answer. */
  askPeer: (ops: string, timeoutMs: number) => Promise<boolean | undefined>;
  clock: Clock;
}

export interface PartitionCheckCallbacks {
  emit: EmitEvent;
}

/** What GET /report answers a peer: whether this replica's own report Lease is being written. */
export interface ReportStatus {
  identity: string;
  written: boolean;
  msSinceWritten: number | null;
}

/** Rounds in a row a peer must confirm: a replica whose own write is about to succeed (an outage ending) stays in. */
const confirmationsToStepBack = 2;

/**
 * Steps this replica out of the Service (/readyz 503) when it alone cannot write its report: unwritten for a
 * lease duration while another replica says it writes its own. When no other replica writes either (the API
 * server is down for all, the shared outage) or none answers, it stays ready: taking every replica out at
 * once would turn a control-plane outage into a build outage. Spliced connections are never touched.
 */
export class PartitionCheck {
  private readonly inputs: PartitionCheckInputs;
  private readonly callbacks: PartitionCheckCallbacks;
  private readonly startedAt: number;
  private timer: Timer | undefined;
  private stopped = false;
  private confirmations = 0;
  private steppedBack: { since: number; confirmedBy: string } | undefined;
  private unconfirmedSince: number | undefined;

  constructor(inputs: PartitionCheckInputs, callbacks: PartitionCheckCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
    this.startedAt = inputs.clock.now();
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Milliseconds since the own report was last written (since start, before the first write). */
  unwrittenMs(): number {
    return this.inputs.clock.now() - (this.inputs.writtenAt() ?? this.startedAt);
  }

  status(): ReportStatus {
    const writtenAt = this.inputs.writtenAt();
    return {
      identity: this.inputs.identity,
      written: writtenAt !== undefined && this.unwrittenMs() < this.inputs.leaseDurationMs,
      msSinceWritten: writtenAt === undefined ? null : Math.round(this.unwrittenMs()),
    };
  }

  /** Judged on every request, so a replica whose write just succeeded is ready at once, not a round later. */
  readiness(): ReadinessCheck {
    const unwrittenMs = this.unwrittenMs();
    if (unwrittenMs < this.inputs.leaseDurationMs) return { name: 'report', ok: true };
    const seconds = (unwrittenMs / 1000).toFixed(1);
    if (this.steppedBack) {
      return {
        name: 'report',
        ok: false,
        reason:
          `${ErrorCode.Partitioned}: this replica's report Lease has not been written for ${seconds}s while ` +
          `${this.steppedBack.confirmedBy} writes its own: this replica alone is cut off from the API server; ` +
          'it takes no new connections until a write succeeds (open ones keep flowing)',
      };
    }
    return {
      name: 'report',
      ok: true,
      reason:
        `report Lease not written for ${seconds}s and no other replica says it writes its own ` +
        '(the API server is out for all, or no replica answers): staying in the Service',
    };
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.inputs.clock.setTimer(
      this.inputs.probePeriodMs,
      () => void this.round().finally(() => this.schedule()),
    );
  }

  /** One round: written recently -> back in; otherwise ask every peer at once. */
  async round(): Promise<void> {
    if (this.unwrittenMs() < this.inputs.leaseDurationMs) {
      this.confirmations = 0;
      this.unconfirmedSince = undefined;
      this.stepForward('its report Lease is written again');
      return;
    }
    const peers = this.inputs.peers();
    const answers = await Promise.all(
      peers.map(async (peer) => ({
        peer,
        writes: await this.inputs.askPeer(peer.ops, this.inputs.probePeriodMs).catch(() => undefined),
      })),
    );
    // The write may have succeeded while the peers were being asked.
    if (this.stopped || this.unwrittenMs() < this.inputs.leaseDurationMs) return;
    const confirmedBy = answers.find((answer) => answer.writes === true)?.peer.identity;
    if (confirmedBy === undefined) {
      this.confirmations = 0;
      this.stepForward(
        'no other replica says it writes its own report any more (the API server is out for all, or no replica answers)',
      );
      if (this.unconfirmedSince === undefined) {
        this.unconfirmedSince = this.inputs.clock.now();
        const answered = answers.filter((answer) => answer.writes !== undefined).length;
        this.callbacks.emit({
          kind: 'report_unwritten',
          unwrittenMs: Math.round(this.unwrittenMs()),
          peersAsked: peers.length,
          peersAnswered: answered,
        });
      }
      return;
    }
    this.unconfirmedSince = undefined;
    this.confirmations += 1;
    if (this.confirmations >= confirmationsToStepBack && !this.steppedBack) {
      this.steppedBack = { since: this.inputs.clock.now(), confirmedBy };
      this.callbacks.emit({
        kind: 'partition_stepped_back',
        unwrittenMs: Math.round(this.unwrittenMs()),
        confirmedBy,
        code: ErrorCode.Partitioned,
      });
    }
  }

  private stepForward(reason: string): void {
    if (!this.steppedBack) return;
    const steppedBackMs = Math.round(this.inputs.clock.now() - this.steppedBack.since);
    this.steppedBack = undefined;
    this.callbacks.emit({ kind: 'partition_recovered', steppedBackMs, reason });
  }
}

/** Asks a peer's ops server (GET /report) whether it writes its own report. */
export async function askPeerOverHttp(ops: string, timeoutMs: number): Promise<boolean | undefined> {
  try {
    const response = await fetch(`http://${ops}/report`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return undefined;
    const body = (await response.json()) as Partial<ReportStatus>;
    return typeof body.written === 'boolean' ? body.written : undefined;
  } catch {
    return undefined;
  }
}
