// The third-party and bare Node.js proxies the gateway is compared with, each started with its own config
// under .artifacts/bench/ in front of the same backend pod: one port for the echo server, one for iperf3.
import { readFileSync, writeFileSync } from 'node:fs';
import { transformSync } from 'esbuild';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/support/repo-root.ts';
import { freePort } from '../test/support/net.ts';
import { start, waitListening, type Running } from './child.ts';
import { fdLimit } from './proc.ts';

export const ECHO_PORT = 8273;
export const IPERF_PORT = 5201;

export abstract class ProxyProcess {
  echoPort = 0;
  iperfPort = 0;
  protected readonly backendHost: string;
  protected readonly out: string;
  private running: Running | undefined;
  constructor(backendHost: string, out: string) {
    this.backendHost = backendHost;
    this.out = out;
  }
  /** The process whose CPU and memory (with its children's) are the proxy's cost. */
  get pid(): number {
    return this.running?.child.pid ?? 0;
  }
  protected abstract command(): [string, string[], NodeJS.ProcessEnv?];
  async start(): Promise<void> {
    [this.echoPort, this.iperfPort] = [await freePort(), await freePort()];
    const [command, argv, env] = this.command();
    this.running = start(command, argv, env ? { env } : {});
    await waitListening(this.echoPort);
    await waitListening(this.iperfPort);
  }
  async stop(): Promise<void> {
    if (!this.running || this.running.child.exitCode !== null || this.running.child.signalCode !== null) return;
    this.running.child.kill('SIGTERM');
    await this.running.exited;
  }
}

/** HAProxy in TCP mode with default settings: only mode and timeouts (an hour, so idle connections stay). */
export class HAProxy extends ProxyProcess {
  private readonly threads: number | undefined;
  constructor(backendHost: string, out: string, threads?: number) {
    super(backendHost, out);
    this.threads = threads;
  }
  protected command(): [string, string[]] {
    const cfg = `${this.threads ? `global\n  nbthread ${this.threads}\n` : ''}defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend echo
  bind 127.0.0.1:${this.echoPort}
  default_backend echo
backend echo
  server pod ${this.backendHost}:${ECHO_PORT}
frontend iperf
  bind 127.0.0.1:${this.iperfPort}
  default_backend iperf
backend iperf
  server pod ${this.backendHost}:${IPERF_PORT}
`;
    const file = join(this.out, this.threads ? `haproxy-nbthread${this.threads}.cfg` : 'haproxy.cfg');
    writeFileSync(file, cfg);
    return ['haproxy', ['-db', '-f', file]];
  }
}

/**
 * nginx's stream proxy with one worker under a master (as packaged), half-close forwarded, no access log
 * (HAProxy's default logs nothing either); worker_connections raised to the open-file limit (HAProxy sizes
 * maxconn from it by itself) so ~10,000 proxied idle connections fit.
 */
export class Nginx extends ProxyProcess {
  protected command(): [string, string[]] {
    const cfg = `daemon off;
master_process on;
worker_processes 1;
pid ${join(this.out, 'nginx.pid')};
error_log ${join(this.out, 'nginx-error.log')} warn;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {
  worker_connections ${fdLimit()};
}
stream {
  proxy_half_close on;
  proxy_timeout 1h;
  server {
    listen 127.0.0.1:${this.echoPort};
    proxy_pass ${this.backendHost}:${ECHO_PORT};
  }
  server {
    listen 127.0.0.1:${this.iperfPort};
    proxy_pass ${this.backendHost}:${IPERF_PORT};
  }
}
`;
    const file = join(this.out, 'nginx.conf');
    writeFileSync(file, cfg);
    // -e: the startup error log before the config is read, away from the package's /var/log/nginx.
    return ['nginx', ['-e', join(this.out, 'nginx-error.log'), '-p', this.out, '-c', file]];
  }
}

/** bench/node-pipe.ts with the runtime env the gateway gets (the shipped manifest's NODE_OPTIONS etc.). */
export class NodePipe extends ProxyProcess {
  private readonly runtimeEnv: Record<string, string>;
  constructor(backendHost: string, out: string, runtimeEnv: Record<string, string>) {
    super(backendHost, out);
    this.runtimeEnv = runtimeEnv;
  }
  protected command(): [string, string[], NodeJS.ProcessEnv] {
    // Run as plain JavaScript, as the gateway's bundle is: a .ts entry would load Node's type stripper
    // (~20 MiB resident) and make the floor look higher than it is.
    const script = join(this.out, 'node-pipe.mjs');
    writeFileSync(
      script,
      transformSync(readFileSync(join(REPO_ROOT, 'bench', 'node-pipe.ts'), 'utf8'), { loader: 'ts', format: 'esm' })
        .code,
    );
    return [
      process.execPath,
      [
        script,
        `${this.echoPort}=${this.backendHost}:${ECHO_PORT}`,
        `${this.iperfPort}=${this.backendHost}:${IPERF_PORT}`,
      ],
      { PATH: process.env['PATH'] ?? '', ...this.runtimeEnv },
    ];
  }
}
