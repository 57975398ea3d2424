import type { Clock } from './clock.ts';
import { ErrorCode, GatewayError } from './errors.ts';
import type { EmitEvent } from './events.ts';

/** What a graceful stop touches; it stops them in the order shutDown gives. */
export interface ShutdownParts {
  clock: Clock;
  emit: EmitEvent;
  signal: string;
  shutdownDelayMs: number;
  shutdownGraceMs: number;
  listener: {
    readonly openConnections: number;
    stopAccepting(): Promise<void>;
    destroyAll(cause: GatewayError): number;
  };
  router: { untilAllLogged(): Promise<void>; destroySpliced(cause: GatewayError): void };
  marker: { finish(): Promise<void> };
  controller: { stop(): void };
  /** With leader election: the report Lease, the leader Lease and the partition check. */
  coordination:
    | {
        publisher: { publishSoon(): void; stop(): Promise<void> };
        elector: { stop(): Promise<void> };
        partition: { stop(): void };
      }
    | undefined;
  watches: ReadonlyArray<{ stop(): Promise<void> }>;
  ops: { stop(): Promise<void> };
}

/**
 * Graceful stop: not ready at once, still accepting for --shutdown-delay (Services keep sending new clients
 * until the endpoint's removal reached every node, and a refused client is a failed build), then the listener
 * closes and open connections run for up to --shutdown-grace. The report keeps being published until the last
 * connection closed, so no other replica scales down under a draining build; then it is deleted.
 */
export async function shutDown(steps: ShutdownParts): Promise<void> {
  const { clock, emit, listener, router, coordination } = steps;
  emit({
    kind: 'shutdown_started',
    signal: steps.signal,
    openConnections: listener.openConnections,
    graceMs: steps.shutdownGraceMs,
  });
  // Published as draining at once: the others must not count this replica's connections as gone.
  coordination?.publisher.publishSoon();
  if (steps.shutdownDelayMs > 0) await new Promise<void>((resolve) => clock.setTimer(steps.shutdownDelayMs, resolve));
  emit({ kind: 'listener_closed', openConnections: listener.openConnections });
  const drained = listener.stopAccepting();
  let closedByForce = 0;
  await new Promise<void>((resolve) => {
    const timer = clock.setTimer(steps.shutdownGraceMs, () => {
      // The cause becomes each connection's recorded error: its access line says closed_by_shutdown.
      const cause = new GatewayError(
        ErrorCode.ShutdownClosed,
        'closed at the end of the shutdown grace period (--shutdown-grace)',
      );
      closedByForce = listener.destroyAll(cause);
      router.destroySpliced(cause);
      resolve();
    });
    // Drained: every client socket closed and every connection's access line emitted.
    void drained
      .then(() => router.untilAllLogged())
      .then(() => {
        timer.cancel();
        resolve();
      });
  });
  await router.untilAllLogged();
  // A lone gateway takes its busy marks off before it exits; the leader's successor takes over the rest.
  await steps.marker.finish();
  steps.controller.stop();
  if (coordination) {
    coordination.partition.stop();
    // The report is written one last time and deleted, then the leader Lease released.
    await coordination.publisher.stop();
    await coordination.elector.stop();
  }
  await Promise.all(steps.watches.map((watch) => watch.stop()));
  emit({ kind: 'shutdown_finished', closedByForce });
  await steps.ops.stop();
}
