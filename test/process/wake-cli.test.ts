// Runs the real entry point (dist/main.js) as CI jobs do: `buildkitd-autoscaler wake ...`.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { runWakeCli as run } from '../support/gateway-process.ts';

/** A stand-in for the gateway's ops port: answers POST /wake and GET /wake as `answer` says. */
async function opsServer(t: TestContext, answer: (method: string, url: string) => { status: number; json: unknown }) {
  const seen: string[] = [];
  const server = createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`);
    const { status, json } = answer(request.method ?? '', request.url ?? '');
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test('bad wake input exits 2 with one line naming the problem, before any request and without gateway configuration', async () => {
  const cases: Array<[string[], string]> = [
    [[], 'missing --url / WAKE_URL'],
    [['--url', 'gateway:9090'], 'not an http(s) URL'],
    [['--url', 'not a url'], 'not a URL'],
    [['--url', 'http://127.0.0.1:9', '--for', '10'], 'not a Go duration: "10"'],
    [['--url', 'http://127.0.0.1:9', '--for', '0s'], '--for must be positive'],
    [['--url', 'http://127.0.0.1:9', '--for', '48h'], 'at most 24h0m0s'],
    [['--url', 'http://127.0.0.1:9', '--replicas', 'two'], "'--replicas <n>' argument 'two' is invalid"],
    [['--url', 'http://127.0.0.1:9', '--timeout', 'forever'], "'--timeout <duration>' argument 'forever'"],
    [['--url', 'http://127.0.0.1:9', '--frobnicate'], "unknown option '--frobnicate'"],
  ];
  for (const [args, mention] of cases) {
    const { code, stdout, stderr } = await run(args, { SCALE_DOWN_IDLE_TIMEOUT: 'not-a-duration' });
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stdout, '');
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0]!.startsWith('buildkitd-autoscaler wake: '), stderr);
    assert.ok(lines[0]!.includes(mention), `${args.join(' ')}: ${stderr}`);
  }
});

test('the gateway refusing the request exits 1 with its reason and code in one line', async (t) => {
  const ops = await opsServer(t, () => ({
    status: 503,
    json: { error: 'scale up to 1 failed: forbidden', code: 'BKA_SCALE_FORBIDDEN' },
  }));
  const { code, stderr } = await run(['--url', ops.url, '--for', '10m']);
  assert.equal(code, 1);
  assert.deepEqual(ops.seen, ['POST /wake?for=10m0s']);
  assert.equal(
    stderr,
    `buildkitd-autoscaler wake: POST ${ops.url}/wake?for=10m0s answered 503: scale up to 1 failed: forbidden (BKA_SCALE_FORBIDDEN)\n`,
  );
});

test('--wait exits 0 once the builders accept connections, and 1 with one line at the timeout', async (t) => {
  let polls = 0;
  const ops = await opsServer(t, (method) =>
    method === 'POST'
      ? { status: 202, json: { replicas: 2, for: '10m0s', until: '2026-01-05T08:10:00.000Z' } }
      : { status: 200, json: { wake: null, readyBuilders: ++polls >= 3 ? 2 : 1, failure: null } },
  );
  const ready = await run(['--url', `${ops.url}/`, '--replicas', '2', '--for', '10m', '--wait']);
  assert.equal(ready.code, 0, ready.stderr);
  assert.match(
    ready.stdout,
    /^wake requested: at least 2 builders for 10m0s, until 2026-01-05T08:10:00.000Z\n2 builders accept connections after /,
  );
  assert.equal(ops.seen[0], 'POST /wake?replicas=2&for=10m0s');

  const never = await opsServer(t, (method) =>
    method === 'POST'
      ? { status: 202, json: { replicas: 1, for: '2m0s', until: '2026-01-05T08:02:00.000Z' } }
      : { status: 200, json: { wake: null, readyBuilders: 0, failure: null } },
  );
  const timedOut = await run(['--url', never.url, '--wait', '--timeout', '2s']);
  assert.equal(timedOut.code, 1);
  assert.equal(
    timedOut.stderr,
    'buildkitd-autoscaler wake: no builder ready within 2s: 0 of 1 builders accept connections\n',
  );
});

test('each wake flag has an environment variable that wins over the flag; a bad one exits 2 naming flag, env var and value', async (t) => {
  const ops = await opsServer(t, (method) =>
    method === 'POST'
      ? { status: 202, json: { replicas: 2, for: '15m0s', until: '2026-01-05T08:15:00.000Z' } }
      : { status: 200, json: { wake: null, readyBuilders: 2, failure: null } },
  );
  const fromEnv = await run(['--url', 'http://127.0.0.1:9', '--for', '1m'], {
    WAKE_URL: ops.url,
    WAKE_REPLICAS: '2',
    WAKE_FOR: '15m',
    WAKE_WAIT: 'true',
    WAKE_TIMEOUT: '30s',
  });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.deepEqual(
    ops.seen,
    ['POST /wake?replicas=2&for=15m0s', 'GET /wake'],
    'URL, replicas and for from the environment; --wait from WAKE_WAIT polls',
  );
  const cases: Array<[Record<string, string>, string]> = [
    [{ WAKE_URL: 'gateway:9090' }, 'invalid value "gateway:9090" for --url / WAKE_URL (from env): not an http(s) URL'],
    [{ WAKE_REPLICAS: 'two' }, 'invalid value "two" for --replicas / WAKE_REPLICAS (from env)'],
    [{ WAKE_FOR: '48h' }, 'invalid value "48h" for --for / WAKE_FOR (from env): at most 24h0m0s'],
    [{ WAKE_WAIT: 'yes' }, 'invalid value "yes" for --wait / WAKE_WAIT (from env): must be true or false'],
    [{ WAKE_TIMEOUT: 'forever' }, 'invalid value "forever" for --timeout / WAKE_TIMEOUT (from env)'],
  ];
  for (const [env, mention] of cases) {
    const { code, stdout, stderr } = await run(['--url', ops.url], env);
    assert.equal(code, 2, `${JSON.stringify(env)}: ${stderr}`);
    assert.equal(stdout, '');
    assert.equal(stderr.trimEnd().split('\n').length, 1, stderr);
    assert.ok(stderr.includes(mention), `${JSON.stringify(env)}: ${stderr}`);
  }
  assert.equal(ops.seen.length, 2, 'no request for bad input');
});
