import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** A failed API call, shaped like the client's ApiException (`code`, `body`) so apiStatus/apiMessage read it. */
export class KubeApiError extends Error {
  readonly code: number;
  readonly body: string;
  constructor(method: string, path: string, code: number, body: string) {
    super(`${method} ${path}: HTTP ${code}`);
    this.name = 'KubeApiError';
    this.code = code;
    this.body = body;
  }
}

/**
 * Sends one request to the API server with the kubeconfig's credentials (token, client certificate, CA,
 * proxy: the client's applyToHTTPSOptions) over node:https, and settles once the response headers arrive.
 * node:https rather than the client's undici: undici and the HTTP/2 and web-stream modules it loads cost
 * ~4 MiB of the gateway's idle memory (docs/performance.md) for a handful of requests and three watches.
 */
const keepAliveAgents = new WeakMap<HttpsAgent, HttpsAgent>();

/** The client's plain agent closes each connection after one request: a TLS handshake per Lease renewal. */
function withKeepAlive(agent: RequestOptions['agent']): RequestOptions['agent'] {
  if (!(agent instanceof HttpsAgent) || agent.constructor !== HttpsAgent || agent.options.keepAlive) return agent;
  let reused = keepAliveAgents.get(agent);
  if (!reused) {
    reused = new HttpsAgent({ ...agent.options, keepAlive: true });
    keepAliveAgents.set(agent, reused);
  }
  return reused;
}

export async function openKubeRequest(
  kubeConfig: KubeConfig,
  method: string,
  url: URL,
  options: { headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {},
): Promise<IncomingMessage> {
  const requestOptions: RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(requestOptions);
  requestOptions.agent = withKeepAlive(requestOptions.agent);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        ...requestOptions,
        method,
        headers: { ...requestOptions.headers, ...options.headers },
        ...(options.signal ? { signal: options.signal } : {}),
      },
      resolve,
    );
    req.once('error', reject);
    req.end(options.body);
  });
}

/** The whole body as text; rejects when the connection fails or the request's signal aborts mid-body. */
export async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * One JSON request to the API server with the kubeconfig's credentials. Used instead of the generated API
 * classes: loading those (and the model serializer they pull in) cost ~10 MiB of resident memory for the
 * few calls the gateway makes (docs/performance.md).
 */
/**
 * `signal` ends the request early (a leader that stepped down); every request also ends after 30 s. An aborted
 * request may still have reached the API server: writes that matter carry a resourceVersion precondition.
 */
export async function kubeRequest<T>(
  kubeConfig: KubeConfig,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH',
  path: string,
  options: { query?: Record<string, string | undefined>; body?: unknown; signal?: AbortSignal | undefined } = {},
): Promise<T> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  for (const [key, value] of Object.entries(options.query ?? {}))
    if (value !== undefined) url.searchParams.set(key, value);
  const headers: Record<string, string> = { accept: 'application/json' };
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  if (body !== undefined) {
    // PATCH is always a JSON merge patch here: it names only the keys it sets or removes (null).
    headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const response = await openKubeRequest(kubeConfig, method, url, {
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(30_000)])
      : AbortSignal.timeout(30_000),
  });
  const text = await readText(response);
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) throw new KubeApiError(method, path, status, text);
  return JSON.parse(text) as T;
}
