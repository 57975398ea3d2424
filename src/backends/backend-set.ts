import type { BuilderCapacity } from '../capacity.ts';
import { chooseBackends, type Affinity, type BalancerChoice } from './balancer.ts';

export interface Backend {
  /** Identity of the pod instance: the pod UID where known, so a re-created pod of the same name differs. */
  key: string;
  podName: string;
  /** StatefulSet ordinal; the StatefulSet controller removes the highest first. */
  ordinal: number;
  host: string;
  port: number;
}

/** A pod that exists as far as the source can tell, whatever its state. */
export interface PodState {
  key: string;
  podName: string;
  ordinal: number;
  ready: boolean;
  terminating: boolean;
  /** The node the pod runs on, where the source knows it (EndpointSlices do). */
  nodeName?: string | undefined;
}

export interface BackendSource {
  /** Pods that are Ready in the API now, as far as the source knows: the same array until the next change. */
  current(): readonly Backend[];
  /**
   * Every pod that still exists as far as the source can tell (ready, not ready, terminating, or briefly
   * unlisted). A pod that disappears is gone, and connections to it are dead even if no FIN or RST ever
   * arrives.
   */
  pods(): readonly PodState[];
  /** Whether the source can tell that a pod is gone (EndpointSlices can; DNS names cannot). */
  readonly tracksExistence: boolean;
  onChange(listener: () => void): () => void;
}

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
