// The kubelet's log endpoint, for `kubectl logs` through the API server.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { BRIDGE_IP } from '../internal/common.ts';
import type { Kubelet } from './main.ts';
import { KUBELET_PORT } from './node.ts';

/**
 * The kubelet's HTTPS endpoint, enough for `kubectl logs [-f] [--tail N]` through the API server:
 * GET /containerLogs/<ns>/<pod>/<container>. Only reachable inside the cluster netns.
 */
export function serveLogs(k: Kubelet): Promise<void> {
  const srv = https.createServer(
    {
      cert: fs.readFileSync(path.join(k.p.pkiDir, 'apiserver.crt')),
      key: fs.readFileSync(path.join(k.p.pkiDir, 'apiserver.key')),
    },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://kubelet');
      const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (req.method !== 'GET' || !m) {
        res.writeHead(404).end('not found: the process kubelet serves only /containerLogs\n');
        return;
      }
      const [ns, pod, ctr] = [m[1] ?? '', m[2] ?? '', m[3] ?? ''].map(decodeURIComponent) as [string, string, string];
      const file = path.join(k.p.podsDir, `${ns}_${pod}`, `${ctr}.log`);
      if (!fs.existsSync(file)) {
        res.writeHead(404).end(`no log for container ${ctr} of pod ${ns}/${pod}\n`);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      const content = fs.readFileSync(file);
      let offset = content.length;
      const tail = url.searchParams.get('tailLines');
      if (tail === null) res.write(content);
      else {
        const lines = content.toString('utf8').split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        const n = Math.max(0, Number(tail) || 0);
        if (n > 0) res.write(lines.slice(-n).join('\n') + '\n');
      }
      if (url.searchParams.get('follow') !== 'true') {
        res.end();
        return;
      }
      // Follow: stream what is appended until the client goes away or the pod is gone.
      const timer = setInterval(() => {
        try {
          const size = fs.statSync(file).size;
          if (size > offset) {
            const fd = fs.openSync(file, 'r');
            const buf = Buffer.alloc(size - offset);
            fs.readSync(fd, buf, 0, buf.length, offset);
            fs.closeSync(fd);
            offset = size;
            res.write(buf);
          }
          const alive = [...k.pods.values()].some((rt) => rt.ns === ns && rt.name === pod);
          if (!alive) {
            clearInterval(timer);
            res.end();
          }
        } catch {
          clearInterval(timer);
          res.end();
        }
      }, 250);
      req.on('close', () => clearInterval(timer));
    },
  );
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(KUBELET_PORT, BRIDGE_IP, () => resolve());
  });
}
