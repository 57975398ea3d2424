import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatGoDuration, parseGoDuration } from '../duration.ts';
import type { GatewayError } from '../errors.ts';
import type { WakeRequest } from '../scaler/types.ts';

/** The longest wake one request may ask for: a forgotten loop must not keep builders for days (repeat it instead). */
export const maxWakeForMs = 24 * 3_600_000;

/** What /wake needs from the gateway. */
export interface WakeControl {
  maxReplicas: number;
  /** `for` when the request names none: the idle timeout. */
  defaultForMs: number;
  /** Why scaling cannot work now (a forbidden scale, a missing StatefulSet), or undefined. */
  failure(): GatewayError | undefined;
  /** Records an accepted request (shared through this replica's report) and logs and counts it. */
  request(replicas: number, forMs: number, client: string): WakeRequest;
  status(): WakeStatus;
}

export interface WakeStatus {
  /** The strongest wake request in force over every gateway replica's report. */
  wake: WakeRequest | undefined;
  /** Builders the gateway may route a connection to now (Ready in the API and not being removed). */
  readyBuilders: number;
}

/** What the wake CLI reads from GET /wake. */
export interface WakeStatusJson {
  wake: { replicas: number; until: string } | null;
  readyBuilders: number;
  failure: { code: string; message: string } | null;
}

const allowed = 'GET, HEAD, POST';
const knownParameters = new Set(['replicas', 'for']);

/** POST asks for builders now and keeps them for a while; GET tells what is asked and how many builders accept connections. */
export function handleWake(
  control: WakeControl,
  request: IncomingMessage,
  response: ServerResponse,
  query: URLSearchParams,
): void {
  if (request.method === 'GET' || request.method === 'HEAD') {
    const status = control.status();
    const failure = control.failure();
    const json: WakeStatusJson = {
      wake: status.wake ? { replicas: status.wake.replicas, until: new Date(status.wake.until).toISOString() } : null,
      readyBuilders: status.readyBuilders,
      failure: failure ? { code: failure.code, message: failure.message } : null,
    };
    send(response, 200, json);
    return;
  }
  if (request.method !== 'POST') {
    response.writeHead(405, { allow: allowed }).end();
    return;
  }
  request.resume(); // a body, if any, means nothing here
  const parsed = parseWakeQuery(query, control);
  if ('error' in parsed) {
    send(response, 400, { error: parsed.error });
    return;
  }
  const failure = control.failure();
  if (failure) {
    send(response, 503, { error: failure.message, code: failure.code });
    return;
  }
  const client = `${request.socket.remoteAddress ?? 'unknown'}:${request.socket.remotePort ?? 0}`;
  const recorded = control.request(parsed.replicas, parsed.forMs, client);
  send(response, 202, {
    replicas: recorded.replicas,
    for: formatGoDuration(parsed.forMs),
    until: new Date(recorded.until).toISOString(),
  });
}

/** Validates `replicas` (1..max, default 1) and `for` (a positive Go duration up to 24h, default the idle timeout). */
export function parseWakeQuery(
  query: URLSearchParams,
  limits: Pick<WakeControl, 'maxReplicas' | 'defaultForMs'>,
): { replicas: number; forMs: number } | { error: string } {
  for (const key of new Set(query.keys())) {
    if (!knownParameters.has(key)) return { error: `unknown parameter "${key}" (known: replicas, for)` };
    if (query.getAll(key).length > 1) return { error: `parameter "${key}" given more than once` };
  }
  let replicas = 1;
  const replicasText = query.get('replicas');
  if (replicasText !== null) {
    replicas = /^\d+$/.test(replicasText) ? Number(replicasText) : Number.NaN;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > limits.maxReplicas) {
      return {
        error: `invalid replicas ${JSON.stringify(replicasText)}: must be a whole number from 1 to ${limits.maxReplicas} (--max-replicas)`,
      };
    }
  }
  let forMs = limits.defaultForMs;
  const forText = query.get('for');
  if (forText !== null) {
    try {
      forMs = parseGoDuration(forText);
    } catch (error) {
      return { error: `invalid for ${JSON.stringify(forText)}: ${(error as Error).message}` };
    }
    if (forMs <= 0) return { error: `invalid for ${JSON.stringify(forText)}: must be positive` };
    if (forMs > maxWakeForMs)
      return {
        error: `invalid for ${JSON.stringify(forText)}: at most ${formatGoDuration(maxWakeForMs)} (repeat the request to keep builders longer)`,
      };
  }
  return { replicas, forMs };
}

function send(response: ServerResponse, status: number, json: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(json)}\n`);
}
