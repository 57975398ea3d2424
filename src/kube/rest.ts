import { HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { fetch } from 'undici';

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
 * One JSON request to the API server with the kubeconfig's credentials, as the client's own Watch makes
 * them. Used instead of the generated API classes: loading those (and the model serializer they pull in)
 * cost ~10 MiB of resident memory for the few calls the gateway makes (README "Performance").
 */
export async function kubeRequest<T>(kubeConfig: KubeConfig, method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, options: { query?: Record<string, string | undefined>; body?: unknown } = {}): Promise<T> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
  const context = new RequestContext(url.toString(), HttpMethod[method]);
  await kubeConfig.applySecurityAuthentication(context);
  const headers: Record<string, string> = { ...context.getHeaders(), accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    dispatcher: context.getDispatcher(),
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (!response.ok) throw new KubeApiError(method, path, response.status, text);
  return JSON.parse(text) as T;
}
