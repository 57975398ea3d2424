import { hash } from 'node:crypto';
import { builderLimit, builderShare } from '../capacity.ts';
import type { Backend } from './source.ts';

export const Affinity = { clientIp: 'client-ip', none: 'none' } as const;
export type Affinity = (typeof Affinity)[keyof typeof Affinity];

export interface BalancerInput {
  /** Who is connecting: the client address (without port) for affinity; a function when reading it costs a syscall (getpeername), so one builder never asks. */
  clientKey: string | (() => string);
  affinity: Affinity;
  /** Connections on each pod now, over every gateway replica's report. */
  loads: Readonly<Record<string, number>>;
  connectionsPerReplica: number;
  /** No builder is given more than this, even at the maximum (0 or absent: no cap). */
  maxConnectionsPerReplica?: number;
  /** No further builder can be added: overload the least loaded (up to the cap) rather than hold the client. */
  atMaximum: boolean;
  /** Pods whose dial just failed for this connection: tried last. */
  recentlyFailed?: ReadonlySet<string>;
}

export interface BalancerChoice {
  /** Pods to dial, best first; empty: none has room, hold the client while a builder is added. */
  order: Backend[];
  /** With client-ip affinity: whether the first choice is the client's own builder (its cache is warm). */
  affinityHit: boolean | undefined;
  /** Every builder was at its share: the order overloads them, which only `atMaximum` allows. */
  overloads: boolean;
  /** Every builder is at the cap and none can be added: the client waits for a connection to close. */
  atCapacity: boolean;
}

/**
 * Which builder takes a new connection. With client-ip affinity: rendezvous hashing of the client address
 * over pod names (every gateway replica computes the same order without talking), with bounded loads:
 * a builder at its connections-per-replica share, or above ceil(1.25 x the average), passes the client to
 * its next choice. With none: least connections, lowest ordinal first (the StatefulSet removes the highest).
 * At the maximum every builder may be overloaded beyond its share, but never beyond --max-connections-per-replica.
 */
export function chooseBackends(backends: readonly Backend[], input: BalancerInput): BalancerChoice {
  if (backends.length === 0) return { order: [], affinityHit: undefined, overloads: false, atCapacity: false };
  const load = (b: Backend) => input.loads[b.podName] ?? 0;
  const failed = (b: Backend) => (input.recentlyFailed?.has(b.key) ? 1 : 0);
  // Sorted only where it is used: with affinity, most connections never need it (one per connection otherwise).
  const byLoad = () =>
    [...backends].sort((a, b) => failed(a) - failed(b) || load(a) - load(b) || a.ordinal - b.ordinal);
  const capacity = {
    connectionsPerReplica: input.connectionsPerReplica,
    maxConnectionsPerReplica: input.maxConnectionsPerReplica ?? 0,
  };
  const share = builderShare(capacity);
  const limit = builderLimit(capacity);

  if (input.affinity === Affinity.none) {
    const sorted = byLoad();
    const order = sorted.filter((b) => load(b) < share);
    if (order.length > 0 || !input.atMaximum)
      return { order, affinityHit: undefined, overloads: false, atCapacity: false };
    const overloaded = limit === Number.POSITIVE_INFINITY ? sorted : sorted.filter((b) => load(b) < limit);
    return { order: overloaded, affinityHit: undefined, overloads: true, atCapacity: overloaded.length === 0 };
  }
  let total = 0;
  for (const b of backends) total += load(b);
  // Counting the newcomer, so one connection on two idle builders may still go to its first choice.
  const bound = Math.min(share, Math.ceil((1.25 * (total + 1)) / backends.length));
  const ranked =
    backends.length === 1
      ? backends
      : rankFor(typeof input.clientKey === 'string' ? input.clientKey : input.clientKey(), backends, failed);
  const order = ranked.filter((b) => load(b) + 1 <= bound);
  if (order.length === 0) {
    if (!input.atMaximum) return { order: [], affinityHit: undefined, overloads: false, atCapacity: false };
    // Overloading stays within the cap: a builder at it takes nobody, the client's own included.
    const sorted = limit === Number.POSITIVE_INFINITY ? byLoad() : byLoad().filter((b) => load(b) < limit);
    return {
      order: sorted,
      affinityHit: sorted.length > 0 ? sorted[0] === ranked[0] : undefined,
      overloads: true,
      atCapacity: sorted.length === 0,
    };
  }
  return { order, affinityHit: order[0] === ranked[0], overloads: false, atCapacity: false };
}

/** The client's builders, its own first (one builder is everyone's first choice, so callers skip the hashing). */
function rankFor(clientKey: string, backends: readonly Backend[], failed: (b: Backend) => number): Backend[] {
  return backends
    .map((b) => ({ b, score: rendezvousScore(clientKey, b.podName) }))
    .sort((x, y) => failed(x.b) - failed(y.b) || y.score - x.score || x.b.ordinal - y.b.ordinal)
    .map((x) => x.b);
}

/** Highest-random-weight score of a (client, pod) pair: 48 bits of MD5, stable across processes and versions. */
function rendezvousScore(clientKey: string, podName: string): number {
  return Number.parseInt(hash('md5', `${clientKey}\u0000${podName}`).slice(0, 12), 16);
}

/**
 * Order in which to try backends when the scaler's view of loads is not needed (tests, one builder):
 * lowest ordinal first, the ones whose dial just failed last.
 */
export function dialOrder(backends: readonly Backend[], recentlyFailed: ReadonlySet<string> = new Set()): Backend[] {
  return [...backends].sort((a, b) => {
    const failedA = recentlyFailed.has(a.key) ? 1 : 0;
    const failedB = recentlyFailed.has(b.key) ? 1 : 0;
    return failedA - failedB || a.ordinal - b.ordinal;
  });
}
