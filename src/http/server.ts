import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { EmitEvent } from '../events.ts';
import type { ListenAddress } from '../listen-address.ts';
import type { ReadinessCheck } from '../readiness-check.ts';
import { handleWake, type WakeControl } from './wake-endpoint.ts';

export interface OpsServerInputs {
  /** --metrics-addr. */
  address: ListenAddress;
  /** What /metrics serves. */
  registry: Registry;
  /** Serves /wake (pre-wake) when given. */
  wake?: WakeControl;
}

export interface OpsServerCallbacks {
  /** `listening` once the port is bound. */
  emit: EmitEvent;
  /** The checks /readyz answers with; ready only while every one is ok. */
  readiness: () => ReadinessCheck[];
  /** Serves /report (whether this replica writes its report Lease; the others ask it) when given. */
  report?: () => unknown;
  /** Writes out batched log lines before answering, so the log is never behind what /metrics counts. */
  flushLog?: () => void;
}

/** /healthz (process alive), /readyz (may receive traffic, with the failing checks), /metrics, /wake (POST: pre-wake), /report (to the other replicas). */
export class OpsServer {
  private readonly server: Server;
  private readonly address: ListenAddress;
  private readonly emit: EmitEvent;

  constructor(inputs: OpsServerInputs, callbacks: OpsServerCallbacks) {
    const { registry, wake } = inputs;
    this.address = inputs.address;
    this.emit = callbacks.emit;
    this.server = createServer((request, response) => {
      callbacks.flushLog?.();
      const [path, query = ''] = (request.url ?? '/').split('?', 2);
      if (path === '/wake' && wake) {
        handleWake(wake, request, response, new URLSearchParams(query));
      } else if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/healthz' || path === '/livez') {
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const checks = callbacks.readiness();
        const ready = checks.every((check) => check.ok);
        response
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ ready, checks })}\n`);
      } else if (path === '/report' && callbacks.report) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(callbacks.report())}\n`);
      } else if (path === '/metrics') {
        registry.metrics().then(
          (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (error: unknown) => response.writeHead(500).end(String(error)),
        );
      } else {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    });
    this.server.keepAliveTimeout = 5000;
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = this.address;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (error) =>
        reject(
          new GatewayError(ErrorCode.ListenFailed, `cannot listen on ${host ?? ''}:${port}: ${error.message}`, {
            cause: error,
          }),
        ),
      );
      this.server.listen({ host, port }, resolve);
    });
    const address = this.server.address() as AddressInfo;
    this.emit({ kind: 'listening', what: 'metrics', address: address.address, port: address.port });
    return address;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
