import type { Backend, BackendSource, PodState } from '../../src/backends/source.ts';

/** An in-memory backend source for unit tests at the BackendSource seam. */
export class FakeBackendSource implements BackendSource {
  readonly tracksExistence = true;
  private backends: Backend[] = [];
  private existingPods: PodState[] = [];
  private listeners = new Set<() => void>();

  current(): readonly Backend[] {
    return this.backends;
  }

  pods(): readonly PodState[] {
    return this.existingPods;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sets the ready pods and, unless given separately, the pods that exist (the same ones). */
  set(
    backends: Backend[],
    existing: PodState[] = backends.map((b) => ({
      key: b.key,
      podName: b.podName,
      ordinal: b.ordinal,
      ready: true,
      terminating: false,
    })),
  ): void {
    this.backends = backends;
    this.existingPods = existing;
    for (const listener of this.listeners) listener();
  }
}
