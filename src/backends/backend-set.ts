export interface Backend {
  /** Identity of the pod instance: the pod UID where known, so a re-created pod of the same name differs. */
  key: string;
  podName: string;
  /** StatefulSet ordinal; the balancer packs onto low ordinals because scale-down removes the highest first. */
  ordinal: number;
  host: string;
  port: number;
}

export interface BackendSource {
  /** Pods that are Ready in the API now, as far as the source knows. */
  current(): readonly Backend[];
  /**
   * Keys of every pod that still exists as far as the source can tell (ready, not ready, terminating, or
   * briefly unlisted). A key that disappears means the pod is gone, and connections to it are dead even if
   * no FIN or RST ever arrives.
   * Undefined when the source cannot tell (connections are then left to TCP keepalive).
   */
  existing?(): ReadonlySet<string>;
  onChange(listener: () => void): () => void;
}

/**
 * The backends the router may use. A scale-down fences every pod that exists when it starts: fenced
 * pods are never used again, and the fence lifts only once they are gone from the API. A connection
 * that arrives while the scale-down lands is therefore never spliced to a pod about to be terminated,
 * and the scaler waits for the fence to lift before waking again (a StatefulSet recreates `<sts>-0`
 * only after the old one is gone; waking earlier could also let the controller skip the deletion and
 * leave the fenced pod in place forever).
 */
export class BackendSet {
  private fenced = new Set<string>();
  private listeners = new Set<() => void>();
  private readonly source: BackendSource;

  constructor(source: BackendSource) {
    this.source = source;
    source.onChange(() => {
      for (const key of this.fenced) if (!this.exists(key)) this.fenced.delete(key);
      this.notify();
    });
  }

  ready(): Backend[] {
    return this.source.current().filter((b) => !this.fenced.has(b.key));
  }

  fence(): void {
    for (const key of this.source.existing?.() ?? this.source.current().map((b) => b.key)) this.fenced.add(key);
    this.notify();
  }

  unfence(): void {
    this.fenced.clear();
    this.notify();
  }

  /** False once the pod behind `key` no longer exists at all (not merely not ready). */
  stillExists(key: string): boolean {
    return this.source.existing?.().has(key) ?? true;
  }

  /** Like stillExists, but a source that cannot tell falls back to "still listed as ready". */
  private exists(key: string): boolean {
    const existing = this.source.existing?.();
    return existing ? existing.has(key) : this.source.current().some((b) => b.key === key);
  }

  get fencedCount(): number {
    return this.fenced.size;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
