// Startup, readiness and liveness probes (TCP, HTTP, exec; gRPC as a TCP connect), as the kubelet runs them.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { run } from '../../support/command.ts';
import type { Kubelet } from './main.ts';
import { log, errMsg, type Ctr, type PodRt } from './pod-runtime.ts';
import { markDirty } from './status.ts';
import { killGroup } from './supervision.ts';

export function startProbes(k: Kubelet, rt: PodRt, ctr: Ctr, gen: number): void {
  const c = ctr.spec;
  const live = () => gen === ctr.generation && !rt.terminating && ctr.proc !== undefined;
  const loop = (
    probe: V1Probe,
    kind: 'startup' | 'readiness' | 'liveness',
    onResult: (ok: boolean, st: { succ: number; fail: number }) => boolean,
    delayMs: number,
  ) => {
    const st = { succ: 0, fail: 0 };
    const period = (probe.periodSeconds ?? 10) * 1000;
    const tick = () => {
      if (!live()) return;
      runProbe(k, rt, ctr, probe).then(
        (res) => {
          if (!live()) return;
          if (res.ok) {
            st.succ++;
            st.fail = 0;
          } else {
            st.fail++;
            st.succ = 0;
            if (st.fail === (probe.failureThreshold ?? 3) || kind !== 'readiness') {
              k.event(
                rt,
                'Warning',
                'Unhealthy',
                `${kind[0]?.toUpperCase()}${kind.slice(1)} probe failed: ${res.detail}`,
                `spec.containers{${c.name}}`,
              );
            }
          }
          if (onResult(res.ok, st)) ctr.timers.push(setTimeout(tick, period));
        },
        (e: unknown) => log(`probe ${rt.ns}/${rt.name}/${c.name}: ${errMsg(e)}`),
      );
    };
    ctr.timers.push(setTimeout(tick, delayMs));
  };
  const startMain = () => {
    if (c.readinessProbe) {
      const p = c.readinessProbe;
      loop(
        p,
        'readiness',
        (_ok, st) => {
          if (!ctr.ready && st.succ >= (p.successThreshold ?? 1)) {
            ctr.ready = true;
            markDirty(k, rt);
          } else if (ctr.ready && st.fail >= (p.failureThreshold ?? 3)) {
            ctr.ready = false;
            markDirty(k, rt);
          }
          return true;
        },
        (p.initialDelaySeconds ?? 0) * 1000,
      );
    } else if (!ctr.ready) {
      ctr.ready = true;
      markDirty(k, rt);
    }
    if (c.livenessProbe) {
      const p = c.livenessProbe;
      loop(
        p,
        'liveness',
        (_ok, st) => {
          if (st.fail >= (p.failureThreshold ?? 3)) {
            k.event(
              rt,
              'Normal',
              'Killing',
              `Container ${c.name} failed liveness probe, will be restarted`,
              `spec.containers{${c.name}}`,
            );
            killGroup(ctr, 'SIGKILL');
            return false;
          }
          return true;
        },
        (p.initialDelaySeconds ?? 0) * 1000,
      );
    }
  };
  if (c.startupProbe) {
    const p = c.startupProbe;
    loop(
      p,
      'startup',
      (_ok, st) => {
        if (st.succ >= 1) {
          ctr.started = true;
          markDirty(k, rt);
          startMain();
          return false;
        }
        if (st.fail >= (p.failureThreshold ?? 3)) {
          killGroup(ctr, 'SIGKILL');
          return false;
        }
        return true;
      },
      (p.initialDelaySeconds ?? 0) * 1000,
    );
  } else startMain();
}

export function resolvePort(c: V1Container, port: number | string | undefined): number {
  if (typeof port === 'number') return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const named = c.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`no container port named ${String(port)}`);
  return named.containerPort;
}

export async function runProbe(k: Kubelet, rt: PodRt, ctr: Ctr, p: V1Probe): Promise<{ ok: boolean; detail: string }> {
  const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
  const host = rt.ip ?? '127.0.0.1';
  try {
    if (p.tcpSocket) {
      const port = resolvePort(ctr.spec, p.tcpSocket.port);
      const h = p.tcpSocket.host ?? host;
      return await new Promise((resolve) => {
        const s = net.connect({ host: h, port, timeout: timeoutMs });
        const done = (ok: boolean, detail: string) => {
          s.destroy();
          resolve({ ok, detail });
        };
        s.once('connect', () => done(true, 'connected'));
        s.once('timeout', () => done(false, `dial tcp ${h}:${port}: i/o timeout`));
        s.once('error', (e) => done(false, `dial tcp ${h}:${port}: ${e.message}`));
      });
    }
    if (p.httpGet) {
      const g = p.httpGet;
      const port = resolvePort(ctr.spec, g.port);
      const scheme = (g.scheme ?? 'HTTP').toUpperCase();
      const mod = scheme === 'HTTPS' ? https : http;
      const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.33' };
      for (const hh of g.httpHeaders ?? []) headers[hh.name] = hh.value;
      return await new Promise((resolve) => {
        const req = mod.request(
          {
            host: g.host ?? host,
            port,
            path: g.path ?? '/',
            method: 'GET',
            headers,
            timeout: timeoutMs,
            rejectUnauthorized: false,
          },
          (res) => {
            res.resume();
            const code = res.statusCode ?? 0;
            resolve({ ok: code >= 200 && code < 400, detail: `HTTP probe failed with statuscode: ${code}` });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (e) =>
          resolve({
            ok: false,
            detail: `Get ${scheme.toLowerCase()}://${g.host ?? host}:${port}${g.path ?? '/'}: ${e.message}`,
          }),
        );
        req.end();
      });
    }
    if (p.exec?.command?.length) {
      if (!ctr.pid) return { ok: false, detail: 'container not running' };
      const r = await run('nsenter', ['-t', String(ctr.pid), '-n', '-m', '-u', '--', ...p.exec.command], {
        timeout: timeoutMs,
        env: { PATH: `${k.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
      });
      return {
        ok: r.code === 0,
        detail: `exec ${p.exec.command.join(' ')}: exit ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`.slice(0, 300),
      };
    }
    if (p.grpc) {
      // No gRPC health client here: a TCP connect stands in for it.
      return await runProbe(k, rt, ctr, { ...p, grpc: undefined, tcpSocket: { port: p.grpc.port } });
    }
    return { ok: true, detail: 'no handler' };
  } catch (e) {
    return { ok: false, detail: errMsg(e) };
  }
}
