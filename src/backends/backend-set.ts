import type { BuilderCapacity } from '../capacity.ts';
import { chooseBackends, type Affinity, type BalancerChoice } from './balancer.ts';
import type { Backend, BackendSource } from './source.ts';

/** What the scaler says about routing now: which pods may take new connections, and their loads. */
export interface RoutingView {
  routable: ReadonlySet<string>;
  loads: Readonly<Record<string, number>>;
  atMaximum: boolean;
}

export interface BalancingOptions extends BuilderCapacity {
  affinity: Affinity;
}

/**
 * The backends the router may use: the source's ready pods that the scaler lets take new connections
 * (not being removed, not above what demand needs; see scaler/decide.ts), in the balancer's order. The
 * scaler's answer is derived from shared state, so every gateway replica fences the same pods.
 */
export class BackendSet {
  private listeners = new Set<() => void>();
  private readonly source: BackendSource;
  private readonly routing: (fresh?: boolean) => RoutingView;
  private readonly balancing: BalancingOptions;

  constructor(
    source: BackendSource,
    routing: (fresh?: boolean) => RoutingView,
    balancing: BalancingOptions = {
      affinity: 'none',
      connectionsPerReplica: Number.MAX_SAFE_INTEGER,
      maxConnectionsPerReplica: 0,
    },
  ) {
    this.source = source;
    this.routing = routing;
    this.balancing = balancing;
    source.onChange(() => this.notify());
  }

  ready(): Backend[] {
    const { routable } = this.routing();
    return this.source.current().filter((b) => routable.has(b.podName));
  }

  /**
   * The pods to dial for a client, best first (empty: hold it until a builder has room). The scaler's
   * last answer serves while it has room; without, it decides again counting this connection.
   */
  choose(clientKey: string | (() => string), recentlyFailed: ReadonlySet<string>): BalancerChoice {
    const choice = this.chooseFrom(this.routing(), clientKey, recentlyFailed);
    // No room, or room only by overloading: both depend on demand, which the last decision may not have
    // counted yet (decisions for connections on ready pods are coalesced), so decide again before either.
    return choice.order.length > 0 && !choice.overloads
      ? choice
      : this.chooseFrom(this.routing(true), clientKey, recentlyFailed);
  }

  private chooseFrom(
    view: RoutingView,
    clientKey: string | (() => string),
    recentlyFailed: ReadonlySet<string>,
  ): BalancerChoice {
    const { affinity, connectionsPerReplica, maxConnectionsPerReplica } = this.balancing;
    return chooseBackends(this.routableReady(view.routable), {
      clientKey,
      affinity,
      connectionsPerReplica,
      maxConnectionsPerReplica,
      loads: view.loads,
      atMaximum: view.atMaximum,
      recentlyFailed,
    });
  }

  private readyFrom:
    { current: readonly Backend[]; routable: ReadonlySet<string>; ready: readonly Backend[] } | undefined;
  /** The source's ready pods the scaler lets take connections, kept while neither list changes (both are replaced on change). */
  private routableReady(routable: ReadonlySet<string>): readonly Backend[] {
    const current = this.source.current();
    const last = this.readyFrom;
    if (last && last.current === current && last.routable === routable) return last.ready;
    const ready = current.filter((b) => routable.has(b.podName));
    this.readyFrom = { current, routable, ready };
    return ready;
  }

  /** False once the pod behind `key` no longer exists at all (not merely not ready). */
  stillExists(key: string): boolean {
    return !this.source.tracksExistence || this.source.pods().some((pod) => pod.key === key);
  }

  /** The routable set changed (the scaler decided): held connections look again. */
  routableChanged(): void {
    this.notify();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
