// Helpers for tests that run several gateway processes (replicas) on one StatefulSet.
import type { Env, Gateway } from './harness.ts';
import { waitFor } from '../support/wait.ts';

/** Short leader-election timings (client-go's rule holds: 4s > 1.2 x 1s) so takeovers fit in a test. */
export const replicaSettings = {
  SCALE_DOWN_IDLE_TIMEOUT: '3s',
  LEADER_ELECTION_LEASE_DURATION: '6s',
  LEADER_ELECTION_RENEW_DEADLINE: '4s',
  LEADER_ELECTION_RETRY_PERIOD: '1s',
} as const;
export const idleTimeoutMs = 3_000;
export const leaseDurationMs = 6_000;

export interface Replica {
  identity: string;
  gateway: Gateway;
}

/** A gateway process with its own identity (POD_NAME), as each gateway pod has, and the short timings. */
export async function startReplica(
  env: Env,
  identity: string,
  extraEnv: Record<string, string> = {},
  options: { mayExit?: boolean } = {},
): Promise<Replica> {
  const gateway = await env.startGateway({ ...replicaSettings, POD_NAME: identity, ...extraEnv }, options);
  return { identity, gateway };
}

export type LoggedEvent = Record<string, unknown>;

export function eventsOf(replica: Replica, kind: string): LoggedEvent[] {
  return replica.gateway.events().filter((e) => e['event'] === kind);
}

/** When the line was logged (the gateway's wall clock: the same machine as the test's). */
export function loggedAt(event: LoggedEvent): number {
  return Date.parse(String(event['time']));
}

export function scaleDowns(replica: Replica): LoggedEvent[] {
  return eventsOf(replica, 'scale').filter((e) => e['direction'] === 'down');
}

export function running(replica: Replica): boolean {
  return replica.gateway.process.exitCode === null && replica.gateway.process.signalCode === null;
}

/**
 * Returns once every line each replica logged so far has been read (an exited one: its output closed): before
 * asserting that a line is absent, or that only one replica wrote it.
 */
export async function logsCaughtUp(replicas: Replica[]): Promise<void> {
  for (const replica of replicas) await (running(replica) ? replica.gateway.logCaughtUp() : replica.gateway.stop());
}

/** The one running replica that says, in /metrics, that it holds the leader Lease. */
export async function leaderAmong(replicas: Replica[], timeoutMs = 60_000): Promise<Replica> {
  return waitFor(
    'exactly one leader',
    async () => {
      const leading: Replica[] = [];
      for (const replica of replicas.filter(running))
        if ((await replica.gateway.metric('bka_leader')) === 1) leading.push(replica);
      return leading.length === 1 ? leading[0] : undefined;
    },
    timeoutMs,
  );
}

/** Every replica reads `count` reports (its own included): each knows about all the others. */
export async function allReporting(replicas: Replica[], count: number, timeoutMs = 60_000): Promise<void> {
  for (const { identity, gateway } of replicas) {
    await waitFor(
      `${identity} reads ${count} reports`,
      async () => (await gateway.metric('bka_gateway_replicas_reporting')) === count,
      timeoutMs,
    );
  }
}

/** Names of the activity report Leases in the API (one per replica that publishes). */
export async function reportLeases(env: Env): Promise<string[]> {
  const result = await env.cluster.kubectl([
    '-n',
    env.namespace,
    'get',
    'leases',
    '-l',
    'buildkitd-autoscaler/role=activity',
    '-o',
    'jsonpath={.items[*].metadata.name}',
  ]);
  if (result.code !== 0) throw new Error(result.stderr);
  return result.stdout.split(' ').filter(Boolean).sort();
}

/** The report Lease of a replica: `<leader lease>-<identity>`, the leader Lease being `<sts>-autoscaler`. */
export const reportLeaseName = (identity: string) => `buildkitd-autoscaler-${identity}`;
