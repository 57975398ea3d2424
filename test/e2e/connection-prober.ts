// A client that opens a new connection at a fixed interval and checks each one, as CI jobs arriving
// during a gateway rollout would: every connection must be served, none refused or cut.
import type { Endpoint } from './backends.ts';
import type { RoundTrip } from '../support/echo-client.ts';

export interface ProbeResult extends RoundTrip {
  /** When the connection was opened, in the caller's time base. */
  startedAt: number;
}

export interface ProberSummary {
  attempted: number;
  served: number;
  failed: ProbeResult[];
  longestMs: number;
}

export interface ProberOptions {
  endpoint: Endpoint;
  /** Opens one connection and says whether it was served. */
  check(endpoint: Endpoint, timeoutMs: number): Promise<RoundTrip>;
  now(): number;
  intervalMs: number;
  /** How long one connection may take to be served before it counts as failed. */
  timeoutMs: number;
}

export class ConnectionProber {
  readonly results: ProbeResult[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly o: ProberOptions;

  constructor(options: ProberOptions) {
    this.o = options;
  }

  start(): void {
    const open = () => {
      const startedAt = this.o.now();
      const probe = this.o.check(this.o.endpoint, this.o.timeoutMs).then((r) => {
        this.results.push({ ...r, startedAt });
        this.inFlight.delete(probe);
      });
      this.inFlight.add(probe);
    };
    open();
    this.timer = setInterval(open, this.o.intervalMs);
  }

  /** Stops opening connections and waits for the last ones to finish. */
  async stop(): Promise<ProberSummary> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
    const served = this.results.filter((r) => r.ok);
    return {
      attempted: this.results.length,
      served: served.length,
      failed: this.results.filter((r) => !r.ok).sort((a, b) => a.startedAt - b.startedAt),
      longestMs: Math.max(0, ...served.map((r) => r.elapsedMs)),
    };
  }
}
