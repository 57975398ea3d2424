import type { V1Lease } from '@kubernetes/client-node';
import type { LeaseStore } from '../../src/kube/leases.ts';

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/**
 * Leases in memory with the API server's optimistic concurrency (409 on a stale resourceVersion or an
 * existing name), for unit tests at the LeaseStore seam. `gate` holds every call open (an unreachable
 * API server); `failWith` makes every call fail.
 */
export class FakeLeaseStore implements LeaseStore {
  readonly leases: Map<string, V1Lease>;
  private readonly counter: { version: number };
  failWith: number | undefined;
  gate: Promise<void> | undefined;
  writes = 0;

  constructor(shared?: FakeLeaseStore) {
    this.leases = shared?.leases ?? new Map<string, V1Lease>();
    this.counter = shared?.counter ?? { version: 1 };
  }

  /** Another client of the same API server, with its own gate and failures (one replica's view). */
  client(): FakeLeaseStore {
    return new FakeLeaseStore(this);
  }

  async get(name: string): Promise<V1Lease | undefined> {
    await this.enter();
    const lease = this.leases.get(name);
    return lease && structuredClone(lease);
  }

  async create(lease: V1Lease): Promise<V1Lease> {
    await this.enter();
    const name = lease.metadata?.name ?? '';
    if (this.leases.has(name)) throw apiError(409);
    return this.store(lease);
  }

  async update(lease: V1Lease): Promise<V1Lease> {
    await this.enter();
    const current = this.leases.get(lease.metadata?.name ?? '');
    if (!current) throw apiError(404);
    if (current.metadata?.resourceVersion !== lease.metadata?.resourceVersion) throw apiError(409);
    return this.store(lease);
  }

  async delete(name: string, resourceVersion: string | undefined): Promise<void> {
    await this.enter();
    const current = this.leases.get(name);
    if (!current) return;
    if (resourceVersion !== undefined && current.metadata?.resourceVersion !== resourceVersion) throw apiError(409);
    this.leases.delete(name);
  }

  private async enter(): Promise<void> {
    await this.gate;
    if (this.failWith !== undefined) throw apiError(this.failWith);
  }

  private store(lease: V1Lease): V1Lease {
    const stored = structuredClone({ ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.counter.version) } });
    this.leases.set(stored.metadata.name ?? '', stored);
    this.writes += 1;
    return structuredClone(stored);
  }
}
