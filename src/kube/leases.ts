import type { KubeConfig, V1Lease, V1LeaseList } from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { apiStatus } from './api-error.ts';
import { ResilientInformer } from './informer.ts';
import { kubeRequest } from './rest.ts';

/** `signal` aborts the request (the leader's calls end when it steps down). */
export interface RequestOptions {
  signal?: AbortSignal | undefined;
}

/** The Lease calls the gateway makes; a fake in unit tests. Updates carry metadata.resourceVersion (409 on conflict). */
export interface LeaseStore {
  get(name: string, options?: RequestOptions): Promise<V1Lease | undefined>;
  create(lease: V1Lease, options?: RequestOptions): Promise<V1Lease>;
  update(lease: V1Lease, options?: RequestOptions): Promise<V1Lease>;
  delete(name: string, resourceVersion: string | undefined, options?: RequestOptions): Promise<void>;
}

/** Labels every Lease of one gateway group carries, so the replicas can list and watch each other's. */
export const leaseGroupLabel = 'buildkitd-autoscaler/group';
export const leaseRoleLabel = 'buildkitd-autoscaler/role';

/** Lease times are MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class KubeLeaseStore implements LeaseStore {
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;

  constructor(kubeConfig: KubeConfig, namespace: string) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
  }

  async get(name: string, options: RequestOptions = {}): Promise<V1Lease | undefined> {
    try {
      return await kubeRequest<V1Lease>(this.kubeConfig, 'GET', this.path(name), { signal: options.signal });
    } catch (error) {
      if (apiStatus(error) === 404) return undefined;
      throw error;
    }
  }

  create(lease: V1Lease, options: RequestOptions = {}): Promise<V1Lease> {
    return kubeRequest<V1Lease>(this.kubeConfig, 'POST', this.path(), {
      body: this.withKind(lease),
      signal: options.signal,
    });
  }

  update(lease: V1Lease, options: RequestOptions = {}): Promise<V1Lease> {
    return kubeRequest<V1Lease>(this.kubeConfig, 'PUT', this.path(lease.metadata?.name ?? ''), {
      body: this.withKind(lease),
      signal: options.signal,
    });
  }

  async delete(name: string, resourceVersion: string | undefined, options: RequestOptions = {}): Promise<void> {
    try {
      await kubeRequest(this.kubeConfig, 'DELETE', this.path(name), {
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(resourceVersion ? { preconditions: { resourceVersion } } : {}),
        },
        signal: options.signal,
      });
    } catch (error) {
      if (apiStatus(error) !== 404) throw error;
    }
  }

  private withKind(lease: V1Lease): V1Lease {
    return {
      ...lease,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...lease.metadata, namespace: this.namespace },
    };
  }

  private path(name?: string): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }
}

/** Watches the Leases of one gateway group: the leader Lease and every replica's activity Lease. */
export function watchLeases(kubeConfig: KubeConfig, namespace: string, group: string, clock: Clock, emit: EmitEvent) {
  const labelSelector = `${leaseGroupLabel}=${group}`;
  const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
  return new ResilientInformer<V1Lease>(
    {
      resource: `leases/${group}`,
      kubeConfig,
      path,
      list: () => kubeRequest<V1LeaseList>(kubeConfig, 'GET', path, { query: { labelSelector } }),
      labelSelector,
      clock,
    },
    { emit },
  );
}
