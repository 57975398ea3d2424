// Runs the real entry point (dist/main.js, as users do) as a child process.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { runGateway as run, spawnGateway } from '../support/gateway-process.ts';
import { kubeconfigFile } from '../support/kubeconfig.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

test('each kind of invalid input exits 2 with one line naming flag, env var and value', () => {
  const cases: [string[], Record<string, string>, string[]][] = [
    [['--idle-timeout', '2 minutes'], {}, ['--idle-timeout', 'SCALE_DOWN_IDLE_TIMEOUT', '"2 minutes"']],
    [[], { READY_WAIT_TIMEOUT: '5mins' }, ['--ready-wait-timeout', 'READY_WAIT_TIMEOUT', '"5mins"']],
    [['--target-port', '99999'], {}, ['--target-port', 'BUILDKITD_TARGET_PORT', '"99999"']],
    [[], { BUILDKITD_BACKEND_DISCOVERY: 'mdns' }, ['--backend-discovery', 'BUILDKITD_BACKEND_DISCOVERY', '"mdns"']],
    [['--sts-name', ''], {}, ['--sts-name', 'BUILDKITD_STATEFULSET_NAME', '""']],
    [[], { PROXY_LISTEN_ADDR: 'localhost' }, ['--listen-addr', 'PROXY_LISTEN_ADDR', '"localhost"']],
    [['--kubeconfig', '/nonexistent/kubeconfig'], {}, ['--kubeconfig', 'KUBECONFIG_PATH', '"/nonexistent/kubeconfig"']],
    [['--frobnicate'], {}, ['--frobnicate']],
  ];
  for (const [args, env, mentions] of cases) {
    const { code, stderr, stdout } = run(args, env);
    const label = `${args.join(' ')} ${JSON.stringify(env)}`;
    assert.equal(code, 2, label);
    assert.equal(stdout, '', label);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${label}: ${stderr}`);
    for (const mention of mentions) assert.ok(lines[0]!.includes(mention), `${label}: ${stderr}`);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  }
});

test('--print-config shows effective values and where each came from; env wins over flag', () => {
  const { code, stdout } = run(
    ['--print-config', '--idle-timeout', '90s', '--sts-name', 'from-flag', '--target-port', '1234'],
    {
      BUILDKITD_STATEFULSET_NAME: 'from-env',
      READY_WAIT_TIMEOUT: '1m30s',
    },
  );
  assert.equal(code, 0);
  const printed = JSON.parse(stdout) as Record<
    string,
    { value: string | null; source: string; env: string; flag: string }
  >;
  assert.deepEqual(printed['stsName'], {
    flag: '--sts-name',
    env: 'BUILDKITD_STATEFULSET_NAME',
    value: 'from-env',
    source: 'env',
  });
  assert.equal(printed['idleTimeoutMs']?.value, '1m30s');
  assert.equal(printed['idleTimeoutMs']?.source, 'flag');
  assert.equal(printed['readyWaitTimeoutMs']?.value, '1m30s');
  assert.equal(printed['readyWaitTimeoutMs']?.source, 'env');
  assert.equal(printed['targetPort']?.value, '1234');
  assert.equal(printed['listenAddr']?.value, ':8080');
  assert.equal(printed['listenAddr']?.source, 'default');
});

test('the default shutdown grace is 1h: a SIGTERMed gateway keeps an open connection and exits once it closes', async (t) => {
  const printed = JSON.parse(run(['--print-config']).stdout) as Record<
    string,
    { value: string | null; source: string }
  >;
  assert.deepEqual(printed['shutdownGraceMs'], {
    flag: '--shutdown-grace',
    env: 'SHUTDOWN_GRACE_PERIOD',
    value: '1h0m0s',
    source: 'default',
  });
  const [proxyPort, metricsPort] = [await freePort(), await freePort()];
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfigFile(),
    PROXY_LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
    SHUTDOWN_DELAY: '0s',
  });
  // A failed assertion must not leave the gateway running: the test runner would wait on it forever.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  await waitFor('/healthz 200', async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).ok, 15_000);
  await waitFor('proxy listening', () => logs.includes('proxy listening'), 15_000);
  const held = connect({ port: proxyPort, host: '127.0.0.1' });
  held.on('error', () => undefined);
  held.write('hello');
  await waitFor(
    'bka_connections_held 1',
    async () =>
      (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).includes('bka_connections_held 1'),
    15_000,
  );
  child.kill('SIGTERM');
  await waitFor('listener_closed', () => logs.includes('listener_closed'), 15_000);
  const started = logs.split('\n').find((line) => line.includes('"shutdown_started"'));
  assert.equal((JSON.parse(started ?? '{}') as { graceMs?: number }).graceMs, 3_600_000);
  // The grace is an hour: nothing closes the connection but its client.
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(child.exitCode, null, 'still draining the open connection');
  assert.equal(held.destroyed, false);
  const closedAt = Date.now();
  held.destroy();
  const [exitCode] = (await once(child, 'exit')) as [number];
  assert.equal(exitCode, 0);
  assert.ok(Date.now() - closedAt < 10_000, `exits soon after its last connection closed (${Date.now() - closedAt}ms)`);
});

test('SIGTERM: stops accepting, /readyz turns 503, held connections get the grace period, exit 0', async (t) => {
  const [proxyPort, metricsPort] = [await freePort(), await freePort()];
  const child = spawnGateway([], {
    KUBECONFIG_PATH: kubeconfigFile(),
    PROXY_LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
    METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
    SHUTDOWN_GRACE_PERIOD: '1500ms',
    // The delay before the listener closes is proven against a real cluster (sigterm-drain); here it would only slow the test.
    SHUTDOWN_DELAY: '0s',
  });
  // A failed assertion must not leave the gateway running: the test runner would wait on it forever.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  const readyz = await waitFor(
    '/readyz naming BKA_WATCH_FAILED',
    async () => {
      const response = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      const body = (await response.json()) as {
        ready: boolean;
        checks: { name: string; ok: boolean; reason?: string }[];
      };
      return body.checks.some((c) => c.reason?.startsWith('BKA_WATCH_FAILED'))
        ? { status: response.status, body }
        : undefined;
    },
    15_000,
  );
  assert.equal(readyz.status, 503, 'not ready while the API server is unreachable');
  // /readyz answers before the proxy listens (start-up publishes the report first): on a loaded machine long before.
  await waitFor('proxy listening', () => logs.includes('proxy listening'), 15_000);

  const held = connect({ port: proxyPort, host: '127.0.0.1' });
  held.on('error', () => undefined);
  held.write('hello');
  await waitFor(
    'bka_connections_held 1',
    async () =>
      (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).includes('bka_connections_held 1'),
    15_000,
  );

  const termAt = Date.now();
  child.kill('SIGTERM');
  await waitFor(
    '/readyz 503 and shutdown_started',
    async () =>
      (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 503 && logs.includes('shutdown_started'),
    3000,
  );
  const refused = await new Promise<boolean>((resolve) => {
    const late = connect({ port: proxyPort, host: '127.0.0.1' });
    late.on('error', () => resolve(true));
    late.on('connect', () => resolve(false));
  });
  assert.equal(refused, true, 'new connections are refused after SIGTERM');
  const [exitCode] = (await once(child, 'exit')) as [number];
  const tookMs = Date.now() - termAt;
  assert.equal(exitCode, 0);
  assert.ok(tookMs >= 1000, `the held connection was given the grace period (exit after ${tookMs}ms)`);
  assert.equal(held.destroyed || held.readableEnded, true);
  const lines = logs
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { level: string; code?: string; event?: string; closedByForce?: number });
  assert.ok(
    lines
      .filter((l) => l.level === 'warn' || l.level === 'error')
      .every((l) => typeof l.code === 'string' && l.code.startsWith('BKA_')),
    'every warning and error carries a stable code',
  );
  assert.equal(lines.find((l) => l.event === 'shutdown_finished')?.closedByForce, 1);
});
