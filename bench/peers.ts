// The paths the benchmark compares, in table order: the one list the suite, the table and the JSON use.
export const peers = [
  { id: 'direct', label: 'direct', what: 'the client dials the pod IP itself (no proxy)' },
  { id: 'haproxy', label: 'HAProxy', what: 'HAProxy 2.6 (Debian), TCP mode, default settings (threads = cores)' },
  { id: 'haproxy1', label: 'HAProxy 1t', what: 'the same HAProxy with nbthread 1' },
  { id: 'nginx', label: 'nginx', what: 'nginx 1.22 stream (Debian), one worker, proxy_half_close on' },
  {
    id: 'nodepipe',
    label: 'Node pipe',
    what: 'bench/node-pipe.ts: net.createServer + net.connect + pipe, no logs or metrics',
  },
  { id: 'gateway', label: 'gateway', what: "dist/main.js with the shipped Deployment's runtime env, LOG_LEVEL=info" },
] as const;

export type Peer = (typeof peers)[number]['id'];
/** Every peer but direct runs a proxy process whose CPU and memory the suite reads. */
export type ProxyPeer = Exclude<Peer, 'direct'>;
export const proxyPeers = peers.map((p) => p.id).filter((id): id is ProxyPeer => id !== 'direct');
/** The peers the gateway's ratios are taken against, with their column names. */
export const references = [
  { id: 'haproxy', column: 'gw/HAProxy' },
  { id: 'nginx', column: 'gw/nginx' },
] as const satisfies ReadonlyArray<{ id: Peer; column: string }>;
