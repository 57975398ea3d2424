import type { V1Lease } from '@kubernetes/client-node';
import type { Clock } from '../../src/clock.ts';
import type { LeaseStore, RequestOptions } from '../../src/kube/leases.ts';

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/**
 * Leases in memory with the API server's optimistic concurrency (409 on a stale resourceVersion or an
 * existing name), for unit tests at the LeaseStore seam. `gate` holds every call open (an unreachable
 * API server); `failWith` makes every call fail, `failNext` only the next one. With `latency` (and a
 * `clock`) each call waits that long before it is applied and again before it answers, as a slow network
 * does. A call whose signal aborts while it waits rejects, as node:https does; the fake records every
 * signal it was given.
 */
export class FakeLeaseStore implements LeaseStore {
  readonly leases: Map<string, V1Lease>;
  private readonly counter: { version: number };
  failWith: number | undefined;
  failNext: number | undefined;
  gate: Promise<void> | undefined;
  latency: (() => number) | undefined;
  clock: Clock | undefined;
  readonly signals: AbortSignal[] = [];
  writes = 0;

  constructor(shared?: FakeLeaseStore) {
    this.leases = shared?.leases ?? new Map<string, V1Lease>();
    this.counter = shared?.counter ?? { version: 1 };
  }

  /** Another client of the same API server, with its own gate and failures (one replica's view). */
  client(): FakeLeaseStore {
    return new FakeLeaseStore(this);
  }

  async get(name: string, options?: RequestOptions): Promise<V1Lease | undefined> {
    await this.enter(options?.signal);
    const lease = this.leases.get(name);
    await this.answer(options?.signal);
    return lease && structuredClone(lease);
  }

  async create(lease: V1Lease, options?: RequestOptions): Promise<V1Lease> {
    await this.enter(options?.signal);
    const name = lease.metadata?.name ?? '';
    if (this.leases.has(name)) throw apiError(409);
    const stored = this.store(lease);
    await this.answer(options?.signal);
    return stored;
  }

  async update(lease: V1Lease, options?: RequestOptions): Promise<V1Lease> {
    await this.enter(options?.signal);
    const current = this.leases.get(lease.metadata?.name ?? '');
    if (!current) throw apiError(404);
    if (current.metadata?.resourceVersion !== lease.metadata?.resourceVersion) throw apiError(409);
    const stored = this.store(lease);
    await this.answer(options?.signal);
    return stored;
  }

  async delete(name: string, resourceVersion: string | undefined, options?: RequestOptions): Promise<void> {
    await this.enter(options?.signal);
    const current = this.leases.get(name);
    if (!current) return;
    if (resourceVersion !== undefined && current.metadata?.resourceVersion !== resourceVersion) throw apiError(409);
    this.leases.delete(name);
  }

  private async enter(signal: AbortSignal | undefined): Promise<void> {
    if (signal) this.signals.push(signal);
    await this.wait(this.gate, signal);
    await this.travel(signal);
    if (this.failNext !== undefined) {
      const status = this.failNext;
      this.failNext = undefined;
      throw apiError(status);
    }
    if (this.failWith !== undefined) throw apiError(this.failWith);
  }

  private answer(signal: AbortSignal | undefined): Promise<void> {
    return this.travel(signal);
  }

  private async travel(signal: AbortSignal | undefined): Promise<void> {
    const ms = this.latency?.() ?? 0;
    if (ms > 0 && this.clock) {
      const clock = this.clock;
      await this.wait(new Promise<void>((resolve) => clock.setTimer(ms, resolve)), signal);
    }
  }

  private wait(promise: Promise<void> | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return Promise.resolve(promise);
    signal.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const aborted = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal.addEventListener('abort', aborted, { once: true });
      void Promise.resolve(promise).then(() => {
        signal.removeEventListener('abort', aborted);
        resolve();
      });
    });
  }

  private store(lease: V1Lease): V1Lease {
    const stored = structuredClone({
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: String(++this.counter.version) },
    });
    this.leases.set(stored.metadata.name ?? '', stored);
    this.writes += 1;
    return structuredClone(stored);
  }
}
