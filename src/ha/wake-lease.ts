import type { V1Lease } from '@kubernetes/client-node';
import { ErrorCode } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { EmitEvent } from '../events.ts';
import { apiMessage, apiStatus } from '../kube/api-error.ts';
import type { LeaseStore } from '../kube/leases.ts';
import type { WakeRequest } from '../scaler/types.ts';
import { mergeWakeRequests } from '../scaler/wake-requests.ts';
import { decodeWake } from './lease-annotations.ts';
import { writerClockShift } from './replica-reports.ts';

export const wakeAnnotation = 'buildkitd-autoscaler/wake';

export interface WakeLeaseInputs {
  store: LeaseStore;
  /** `<lease-name>-wake`: owned by no pod, so it outlives every replica. */
  name: string;
  labels: Record<string, string>;
  /** The group's Leases as the watch last saw them. */
  leases: () => readonly V1Lease[];
  clock: Clock;
}

export interface WakeLeaseCallbacks {
  emit: EmitEvent;
}

/** Conflicting writers (two replicas accepting a wake at once) retry this often before giving up until the next wake. */
const maxAttempts = 5;

/**
 * The wake requests in force, in a Lease of their own. A report Lease goes away with its replica; when every
 * replica that carried a wake is gone at once (all gateway pods deleted, a reinstall) no survivor could adopt
 * it, so each accepted request is also merged into this Lease, which a new replica reads through its watch.
 */
export class WakeLease {
  private readonly inputs: WakeLeaseInputs;
  private readonly callbacks: WakeLeaseCallbacks;
  /** The Lease's requests on our clock, as of the version we last saw and timed when we first saw it. */
  private observed: { resourceVersion: string | undefined; requests: WakeRequest[] } | undefined;

  constructor(inputs: WakeLeaseInputs, callbacks: WakeLeaseCallbacks) {
    this.inputs = inputs;
    this.callbacks = callbacks;
  }

  /** The requests in force recorded in the Lease, as the watch last saw it. */
  read(): WakeRequest[] {
    const lease = this.inputs.leases().find((l) => l.metadata?.name === this.inputs.name);
    return mergeWakeRequests(this.onOurClock(lease), this.inputs.clock.wallNow());
  }

  /** Merges `requests` into the Lease (never shortening one there); expired ones are dropped on the way. */
  async record(requests: readonly WakeRequest[]): Promise<boolean> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const current = await this.inputs.store.get(this.inputs.name);
        const now = this.inputs.clock.wallNow();
        const merged = mergeWakeRequests([...this.onOurClock(current), ...requests], now);
        const annotations = { [wakeAnnotation]: encodeWakeRequests(merged, now) };
        if (!current) {
          await this.inputs.store.create({
            metadata: { name: this.inputs.name, labels: this.inputs.labels, annotations },
          });
        } else {
          await this.inputs.store.update({
            ...current,
            metadata: {
              ...current.metadata,
              labels: { ...current.metadata?.labels, ...this.inputs.labels },
              annotations: { ...current.metadata?.annotations, ...annotations },
            },
          });
        }
        return true;
      } catch (error) {
        const status = apiStatus(error);
        if ((status === 409 || status === 404) && attempt < maxAttempts) continue;
        this.callbacks.emit({
          kind: 'lease_failed',
          lease: this.inputs.name,
          action: 'annotate',
          code: ErrorCode.LeaseFailed,
          error: apiMessage(error),
          status,
        });
        return false;
      }
    }
  }

  /** A version of the Lease is timed when this replica first sees it (watch or GET), so a later look never lengthens a window. */
  private onOurClock(lease: V1Lease | undefined): WakeRequest[] {
    const resourceVersion = lease?.metadata?.resourceVersion;
    if (!this.observed || this.observed.resourceVersion !== resourceVersion) {
      this.observed = {
        resourceVersion,
        requests: decodeWakeRequests(lease?.metadata?.annotations?.[wakeAnnotation], this.inputs.clock.wallNow()),
      };
    }
    return this.observed.requests;
  }
}

/** Each entry carries `writtenAt`, the writer's clock at the write, so a reader needs only durations on it (see writerClockShift). */
function encodeWakeRequests(requests: readonly WakeRequest[], now: number): string {
  const writtenAt = new Date(now).toISOString();
  return JSON.stringify(
    requests.map((request) => ({
      replicas: request.replicas,
      until: new Date(request.until).toISOString(),
      writtenAt,
    })),
  );
}

/** An entry without `writtenAt` (written by a previous version) is read as before: its until on our clock. */
function decodeWakeRequests(text: string | undefined, seenAt: number): WakeRequest[] {
  let entries: unknown;
  try {
    entries = text === undefined ? [] : JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(entries)) return [];
  return (entries as unknown[]).flatMap((entry) => {
    const [request] = decodeWake([entry]);
    if (!request) return [];
    const shift = writerClockShift((entry as { writtenAt?: unknown }).writtenAt, seenAt) ?? 0;
    return [{ replicas: request.replicas, until: request.until + shift }];
  });
}
