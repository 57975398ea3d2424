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
}

export interface BackendSource {
  /** Pods that are Ready in the API now, as far as the source knows. */
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

/**
 * The backends the router may use: the source's ready pods that the scaler lets take new connections
 * (not being removed, not above what demand needs; see scaler/decide.ts). The scaler's answer is derived
 * from shared state, so every gateway replica fences the same pods.
 */
export class BackendSet {
  private listeners = new Set<() => void>();
  private readonly source: BackendSource;
  private readonly routable: () => ReadonlySet<string>;

  constructor(source: BackendSource, routable: () => ReadonlySet<string>) {
    this.source = source;
    this.routable = routable;
    source.onChange(() => this.notify());
  }

  ready(): Backend[] {
    const routable = this.routable();
    return this.source.current().filter((b) => routable.has(b.podName));
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
