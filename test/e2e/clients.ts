// What the E2E does as a user would besides echoing (test/support/echo-client.ts): scrape the gateway's HTTP
// endpoints and open connections as a gRPC client does.
import { request } from 'node:http';
import { exchangeOnce, type RoundTrip } from '../support/echo-client.ts';
import type { Endpoint } from './backends.ts';

export function httpGet(endpoint: Endpoint, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: endpoint.host, port: endpoint.port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// The client connection preface of HTTP/2 (RFC 9113 §3.4) followed by an empty SETTINGS frame.
const HTTP2_CLIENT_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);
const HTTP2_FRAME_HEADER = 9;
const HTTP2_SETTINGS = 4;

/**
 * One new connection as a gRPC client opens it: sends the HTTP/2 preface and succeeds when the server's
 * SETTINGS frame comes back, i.e. a real buildkitd answered through the gateway (an echo would not parse).
 */
export function http2Handshake(endpoint: Endpoint, timeoutMs: number): Promise<RoundTrip> {
  return exchangeOnce(
    endpoint,
    HTTP2_CLIENT_PREFACE,
    (received) => {
      if (received.length < HTTP2_FRAME_HEADER) return undefined;
      if (received[3] === HTTP2_SETTINGS) return { ok: true };
      return { ok: false, failure: 'mismatch', detail: `first frame type ${received[3] ?? '?'}, not SETTINGS` };
    },
    timeoutMs,
    (received) => `after ${received.length} bytes`,
  );
}
