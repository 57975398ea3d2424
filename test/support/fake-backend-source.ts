import type { Backend, BackendSource } from '../../src/backends/backend-set.ts';

/** An in-memory backend source for unit tests at the BackendSource seam. */
export class FakeBackendSource implements BackendSource {
  private backends: Backend[] = [];
  private existingKeys = new Set<string>();
  private listeners = new Set<() => void>();

  current(): readonly Backend[] {
    return this.backends;
  }

  existing(): ReadonlySet<string> {
    return this.existingKeys;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sets the ready pods and, unless given separately, the pods that exist (the same ones). */
  set(backends: Backend[], existing: string[] = backends.map((b) => b.key)): void {
    this.backends = backends;
    this.existingKeys = new Set(existing);
    for (const listener of this.listeners) listener();
  }
}
