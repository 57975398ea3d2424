// Services for the process kubelet: a userspace "kube-proxy" for ClusterIP Services (each cluster IP is
// added to `lo` of the cluster netns (no dummy module needed), a listener per port splices TCP to a ready endpoint
// of the Service's EndpointSlices) and a small cluster DNS server (A records for
// <svc>.<ns>.svc.cluster.local and <hostname>.<svc>.<ns>.svc.cluster.local) that pods use through their
// /etc/resolv.conf. State arrives through informers; nothing polls the API.
import dgram from 'node:dgram';
import net from 'node:net';
import {
  CoreV1Api,
  DiscoveryV1Api,
  makeInformer,
  type KubeConfig,
  type V1EndpointSlice,
  type V1Service,
} from '@kubernetes/client-node';
import { API_PORT, BRIDGE_IP } from '../internal/common.ts';
import { run } from '../../support/command.ts';

export const CLUSTER_DOMAIN = 'cluster.local';
export const DNS_IP = BRIDGE_IP;
const SVC_DEV = 'lo';

type Log = (msg: string) => void;

interface Listener {
  server: net.Server;
  ip: string;
  port: number;
}

export class Services {
  readonly services = new Map<string, V1Service>();
  /** ns/svc -> slice name -> slice */
  readonly slices = new Map<string, Map<string, V1EndpointSlice>>();
  readonly listeners = new Map<string, Listener>();
  readonly ips = new Set<string>();
  readonly log: Log;
  readonly kc: KubeConfig;
  private rr = 0;
  private stops: (() => Promise<void>)[] = [];
  private reconcileChain: Promise<void> = Promise.resolve();

  constructor(kc: KubeConfig, log: Log) {
    this.kc = kc;
    this.log = log;
  }

  async start(): Promise<void> {
    const core = this.kc.makeApiClient(CoreV1Api);
    const disc = this.kc.makeApiClient(DiscoveryV1Api);
    const svcInf = makeInformer<V1Service>(this.kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    const key = (o: { metadata?: { namespace?: string; name?: string } }) =>
      `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const onSvc = (s: V1Service) => {
      this.services.set(key(s), s);
      this.reconcile();
    };
    svcInf.on('add', onSvc);
    svcInf.on('update', onSvc);
    svcInf.on('delete', (s) => {
      this.services.delete(key(s));
      this.reconcile();
    });
    const sliceInf = makeInformer<V1EndpointSlice>(this.kc, '/apis/discovery.k8s.io/v1/endpointslices', () =>
      disc.listEndpointSliceForAllNamespaces(),
    );
    const sliceKey = (s: V1EndpointSlice) =>
      `${s.metadata?.namespace ?? ''}/${s.metadata?.labels?.['kubernetes.io/service-name'] ?? ''}`;
    const onSlice = (s: V1EndpointSlice) => {
      const k = sliceKey(s);
      let m = this.slices.get(k);
      if (!m) this.slices.set(k, (m = new Map<string, V1EndpointSlice>()));
      m.set(s.metadata?.name ?? '', s);
    };
    sliceInf.on('add', onSlice);
    sliceInf.on('update', onSlice);
    sliceInf.on('delete', (s) => this.slices.get(sliceKey(s))?.delete(s.metadata?.name ?? ''));
    for (const [name, inf] of [
      ['services', svcInf],
      ['endpointslices', sliceInf],
    ] as const) {
      inf.on('error', (e: unknown) => {
        this.log(`${name} watch error: ${e instanceof Error ? e.message : String(e)}; restarting in 1s`);
        setTimeout(() => {
          inf.start().catch(() => undefined);
        }, 1000);
      });
      await inf.start();
      this.stops.push(() => inf.stop());
    }
    await this.startDns();
  }

  async stop(): Promise<void> {
    await Promise.all(this.stops.map((s) => s().catch(() => undefined)));
    for (const l of this.listeners.values()) l.server.close();
    this.listeners.clear();
    for (const ip of this.ips) await run('ip', ['addr', 'del', `${ip}/32`, 'dev', SVC_DEV]);
    this.ips.clear();
  }

  /** Ready endpoints (ip, port) of a Service port, by port name (EndpointSlice semantics). */
  endpoints(ns: string, svc: string, portName: string): { ip: string; port: number; hostname?: string }[] {
    const out: { ip: string; port: number; hostname?: string }[] = [];
    for (const s of this.slices.get(`${ns}/${svc}`)?.values() ?? []) {
      if (s.addressType !== 'IPv4') continue;
      const port = s.ports?.find((p) => (p.name ?? '') === portName)?.port;
      if (port === undefined || port === null) continue;
      for (const e of s.endpoints ?? []) {
        if (e.conditions?.ready === false) continue;
        for (const ip of e.addresses) out.push({ ip, port, ...(e.hostname ? { hostname: e.hostname } : {}) });
      }
    }
    return out;
  }

  private reconcile(): void {
    this.reconcileChain = this.reconcileChain
      .then(() => this.reconcileNow())
      .catch((e: unknown) => {
        this.log(`service proxy: ${e instanceof Error ? e.message : String(e)}`);
      });
  }

  private async reconcileNow(): Promise<void> {
    const want = new Map<string, { ns: string; svc: string; ip: string; port: number; portName: string }>();
    for (const s of this.services.values()) {
      const ip = s.spec?.clusterIP;
      if (!ip || ip === 'None' || !net.isIPv4(ip)) continue;
      for (const p of s.spec?.ports ?? []) {
        if ((p.protocol ?? 'TCP') !== 'TCP') continue;
        want.set(`${ip}:${p.port}`, {
          ns: s.metadata?.namespace ?? '',
          svc: s.metadata?.name ?? '',
          ip,
          port: p.port,
          portName: p.name ?? '',
        });
      }
    }
    for (const [k, l] of this.listeners) {
      if (!want.has(k)) {
        l.server.close();
        this.listeners.delete(k);
      }
    }
    const wantIps = new Set([...want.values()].map((w) => w.ip));
    for (const ip of this.ips) {
      if (!wantIps.has(ip)) {
        await run('ip', ['addr', 'del', `${ip}/32`, 'dev', SVC_DEV]);
        this.ips.delete(ip);
      }
    }
    for (const ip of wantIps) {
      if (!this.ips.has(ip)) {
        await run('ip', ['addr', 'add', `${ip}/32`, 'dev', SVC_DEV]);
        this.ips.add(ip);
      }
    }
    for (const [k, w] of want) {
      if (this.listeners.has(k)) continue;
      const server = net.createServer({ allowHalfOpen: true }, (client) =>
        this.splice(client, w.ns, w.svc, w.portName),
      );
      server.on('error', (e) => this.log(`service ${w.ns}/${w.svc} ${k}: ${e.message}`));
      server.listen(w.port, w.ip);
      this.listeners.set(k, { server, ip: w.ip, port: w.port });
    }
  }

  private splice(client: net.Socket, ns: string, svc: string, portName: string): void {
    let eps = this.endpoints(ns, svc, portName);
    // The API server's own Service has no endpoints (--endpoint-reconciler-type=none): serve it directly.
    if (!eps.length && ns === 'default' && svc === 'kubernetes') eps = [{ ip: BRIDGE_IP, port: API_PORT }];
    if (!eps.length) {
      client.resetAndDestroy();
      return;
    }
    const ep = eps[this.rr++ % eps.length] ?? eps[0];
    if (!ep) return;
    const upstream = net.connect({ host: ep.ip, port: ep.port, allowHalfOpen: true });
    client.pipe(upstream);
    upstream.pipe(client);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', () => client.resetAndDestroy());
    client.on('close', () => upstream.end());
  }

  // ---------------------------------------------------------------- DNS
  /** A records for a name; undefined when the name does not exist (NXDOMAIN). */
  resolve(name: string): string[] | undefined {
    const n = name.toLowerCase().replace(/\.$/, '');
    const suffix = `.svc.${CLUSTER_DOMAIN}`;
    if (!n.endsWith(suffix)) return undefined;
    const parts = n.slice(0, -suffix.length).split('.');
    if (parts.length === 2) {
      const [svc, ns] = parts as [string, string];
      const s = this.services.get(`${ns}/${svc}`);
      if (!s) return undefined;
      const ip = s.spec?.clusterIP;
      if (ip && ip !== 'None') return [ip];
      return this.allEndpointIps(ns, svc, s.spec?.publishNotReadyAddresses ?? false);
    }
    if (parts.length === 3) {
      const [host, svc, ns] = parts as [string, string, string];
      const s = this.services.get(`${ns}/${svc}`);
      if (!s) return undefined;
      const ips: string[] = [];
      for (const sl of this.slices.get(`${ns}/${svc}`)?.values() ?? []) {
        for (const e of sl.endpoints ?? []) {
          if (e.hostname !== host) continue;
          if (e.conditions?.ready === false && !s.spec?.publishNotReadyAddresses) continue;
          ips.push(...e.addresses);
        }
      }
      return ips.length ? ips : undefined;
    }
    return undefined;
  }

  private allEndpointIps(ns: string, svc: string, notReady: boolean): string[] {
    const ips = new Set<string>();
    for (const sl of this.slices.get(`${ns}/${svc}`)?.values() ?? []) {
      for (const e of sl.endpoints ?? [])
        if (notReady || e.conditions?.ready !== false) for (const a of e.addresses) ips.add(a);
    }
    return [...ips];
  }

  private startDns(): Promise<void> {
    const sock = dgram.createSocket('udp4');
    sock.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply) sock.send(reply, rinfo.port, rinfo.address);
    });
    this.stops.push(() => new Promise((r) => sock.close(() => r())));
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(53, DNS_IP, () => resolve());
    });
  }

  /** Answers one DNS query (A records only; other types get an empty answer). */
  answer(q: Buffer): Buffer | undefined {
    if (q.length < 12) return undefined;
    const qdcount = q.readUInt16BE(4);
    if (qdcount !== 1) return undefined;
    let off = 12;
    const labels: string[] = [];
    while (off < q.length) {
      const len = q[off] ?? 0;
      off++;
      if (len === 0) break;
      if (len > 63) return undefined;
      labels.push(q.subarray(off, off + len).toString('ascii'));
      off += len;
    }
    if (off + 4 > q.length) return undefined;
    const qtype = q.readUInt16BE(off);
    const question = q.subarray(12, off + 4);
    const name = labels.join('.');
    const ips = this.resolve(name);
    const answers = ips && qtype === 1 ? ips : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(q.readUInt16BE(0), 0);
    const rd = (q[2] ?? 0) & 0x01;
    header[2] = 0x84 | rd; // QR, AA, RD copied
    header[3] = ips === undefined ? 3 : 0; // NXDOMAIN or NOERROR
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const rrs = answers.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(5, 6); // TTL 5s
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
      return rr;
    });
    return Buffer.concat([header, question, ...rrs]);
  }
}

/** /etc/resolv.conf of a pod (dnsPolicy ClusterFirst). */
export function resolvConf(namespace: string): string {
  return `nameserver ${DNS_IP}\nsearch ${namespace}.svc.${CLUSTER_DOMAIN} svc.${CLUSTER_DOMAIN} ${CLUSTER_DOMAIN}\noptions ndots:5\n`;
}
