// Runs the real entry point (dist/main.js) against a local HTTP endpoint that answers the two lists, accepts
// the watches, then ends them as an API server does at its watch timeout. The client's ListWatch reconnects
// from inside the Watch's done callback and drops that promise; if the kubeconfig's certificate-authority
// file is unreadable at that moment (a rotated or unmounted credential file: client-node reads it on every
// request), the reconnect rejects with nobody listening. Node 24 then ends the process, cutting every build.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnGateway } from '../support/gateway-process.ts';
import { freePort } from '../support/net.ts';
import { metricSum } from '../support/prom-text.ts';
import { waitFor } from '../support/wait.ts';

/** A self-signed serving certificate for 127.0.0.1; it is also the kubeconfig's certificate-authority. */
function servingCertificate(dir: string): { certFile: string; keyFile: string } {
  const [certFile, keyFile] = [join(dir, 'ca.crt'), join(dir, 'serving.key')];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}

/** Lists with one StatefulSet and no EndpointSlices; watches stay open until `endWatches`. */
async function watchEndpoint(tls: { certFile: string; keyFile: string }) {
  const openWatches = new Set<ServerResponse>();
  let watchesStarted = 0;
  const server = createServer(
    { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
    (request, response) => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      if (request.method === 'GET' && url.searchParams.get('watch') === 'true') {
        watchesStarted += 1;
        openWatches.add(response);
        response.on('close', () => openWatches.delete(response));
        response.writeHead(200, { 'content-type': 'application/json' });
        response.flushHeaders();
        return;
      }
      const statefulSets = url.pathname.endsWith('/statefulsets');
      const items = statefulSets
        ? [
            {
              metadata: { name: 'buildkitd', namespace: 'ns', uid: 'u1', resourceVersion: '10' },
              spec: { replicas: 0 },
              status: {},
            },
          ]
        : [];
      if (request.method === 'GET' && (statefulSets || url.pathname.endsWith('/endpointslices'))) {
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ metadata: { resourceVersion: '10' }, items }));
        return;
      }
      response
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"kind":"Status","code":404,"message":"not here"}');
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    openWatches: () => openWatches.size,
    watchesStarted: () => watchesStarted,
    endWatches: () => {
      for (const response of openWatches) response.end();
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

test('a watch reconnect that fails inside the Kubernetes client is logged with a code and counted; the process keeps running and the watch recovers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bka-reconnect-'));
  const tls = servingCertificate(dir);
  const caFile = tls.certFile;
  const api = await watchEndpoint(tls);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${api.port}", certificate-authority: "${caFile}"}}]
users: [{name: u, user: {token: "t"}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]
current-context: x
`,
  );
  const [proxyPort, metricsPort] = [await freePort(), await freePort()];
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfig,
    BUILDKITD_STATEFULSET_NAMESPACE: 'ns',
    // This endpoint serves the two watches only; Leases are not what this test is about.
    LEADER_ELECTION: 'false',
    PROXY_LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
  });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const gatewayExited = () =>
    child.exitCode !== null || child.signalCode !== null
      ? `the gateway exited (${child.exitCode ?? child.signalCode}); log tail:\n${logs.trim().split('\n').slice(-3).join('\n')}`
      : undefined;
  const base = `http://127.0.0.1:${metricsPort}`;
  const errorsCounted = async (code: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return metricSum(text, 'bka_errors_total', { code }) ?? 0;
  };
  try {
    await waitFor('both watches open', () => api.openWatches() === 2, 30_000, 100, gatewayExited);
    await waitFor(
      '/readyz 200',
      async () => (await fetch(`${base}/readyz`)).status === 200,
      30_000,
      100,
      gatewayExited,
    );
    const watchesBefore = api.watchesStarted();

    renameSync(caFile, `${caFile}.away`); // the credential file is gone...
    api.endWatches(); // ...when the API server ends the watches and the client reconnects

    const failureLine = () =>
      logs
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { code?: string; error?: string; level?: string })
        .find(
          (line) =>
            line.level !== 'fatal' &&
            typeof line.code === 'string' &&
            line.code.startsWith('BKA_') &&
            line.error?.includes('ENOENT'),
        );
    await waitFor(
      'a log line with a code naming the failed reconnect',
      () => failureLine() !== undefined,
      30_000,
      100,
      gatewayExited,
    );
    const code = failureLine()?.code ?? '';
    assert.equal(code, 'BKA_WATCH_FAILED', 'caught where the client drops it, as a failed watch');
    assert.ok((await errorsCounted(code)) >= 1, `bka_errors_total{code="${code}"} counts it`);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the process still answers /healthz');
    const readyz = (await (await fetch(`${base}/readyz`)).json()) as {
      checks: { name: string; ok: boolean; reason?: string }[];
    };
    // A watch failing after its first sync is named in /readyz's body and in bka_watch_up, without taking
    // the pod out of the Service (every replica would see the same API outage; issue #9).
    assert.ok(
      readyz.checks.some((c) => c.reason?.startsWith('BKA_WATCH_FAILED')),
      `/readyz says the watch is down: ${JSON.stringify(readyz)}`,
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /bka_watch_up\{resource="statefulset\/buildkitd"\} 0/);

    renameSync(`${caFile}.away`, caFile);
    await waitFor(
      'the watches reconnect once the file is back',
      () => api.watchesStarted() >= watchesBefore + 2 && api.openWatches() === 2,
      30_000,
      100,
      gatewayExited,
    );
    await waitFor(
      '/readyz 200 again',
      async () => (await fetch(`${base}/readyz`)).status === 200,
      30_000,
      100,
      gatewayExited,
    );
  } finally {
    child.kill('SIGKILL');
    api.close();
  }
});
