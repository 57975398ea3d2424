import type { Clock } from '../clock.ts';

import type { WakeRequest } from './types.ts';

/**
 * The wake requests this replica accepted (POST /wake), published in its activity report so every replica
 * and the leader honour them. Requests that overlap are merged, never shortened: a CronJob's 10-hour wake
 * survives a CI job's 10-minute one, and at most one entry per replica count is kept, so reports stay small.
 */
export class WakeRequests {
  private active: WakeRequest[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly clock: Clock;

  constructor(inputs: { clock: Clock }) {
    this.clock = inputs.clock;
  }

  /** Keeps at least `replicas` builders for `forMs` from now; returns what was recorded. */
  request(replicas: number, forMs: number): WakeRequest {
    const now = this.clock.wallNow();
    const added = { replicas, until: now + forMs };
    this.active = mergeWakeRequests([...this.current(now), added], now);
    for (const listener of this.listeners) listener();
    return added;
  }

  /** Carries on requests another replica accepted before its report went away (no new wake: not counted again). */
  adopt(requests: readonly WakeRequest[]): void {
    const now = this.clock.wallNow();
    const before = JSON.stringify(this.current(now));
    this.active = mergeWakeRequests([...this.active, ...requests], now);
    if (JSON.stringify(this.active) !== before) for (const listener of this.listeners) listener();
  }

  /** The requests still in force, for this replica's report. */
  current(now: number = this.clock.wallNow()): WakeRequest[] {
    this.active = this.active.filter((request) => request.until > now);
    return this.active.map((request) => ({ ...request }));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Drops expired requests and those another one covers (as many replicas or more, as long or longer). */
export function mergeWakeRequests(requests: readonly WakeRequest[], now: number): WakeRequest[] {
  const live = requests
    .filter((request) => request.until > now)
    .sort((a, b) => b.replicas - a.replicas || b.until - a.until);
  const kept: WakeRequest[] = [];
  for (const request of live)
    if (!kept.some((other) => other.replicas >= request.replicas && other.until >= request.until)) kept.push(request);
  return kept;
}

/** The strongest request in force over `requests`: the most replicas, and of those the one lasting longest. */
export function activeWake(requests: readonly WakeRequest[], now: number): WakeRequest | undefined {
  return mergeWakeRequests(requests, now)[0];
}
