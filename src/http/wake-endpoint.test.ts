import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { ErrorCode, GatewayError } from '../errors.ts';
import type { GatewayEvent } from '../events.ts';
import type { WakeRequest } from '../scaler/types.ts';
import { OpsServer } from './server.ts';
import type { WakeControl } from './wake-endpoint.ts';

const now = Date.parse('2026-01-05T08:00:00.000Z');

/** An ops server on a free port with a fake gateway behind /wake. */
async function serve(t: TestContext, extra: Partial<WakeControl> = {}) {
  const requests: Array<{ replicas: number; forMs: number; client: string }> = [];
  const events: GatewayEvent[] = [];
  let wake: WakeRequest | undefined;
  const control: WakeControl = {
    maxReplicas: 3,
    defaultForMs: 120_000,
    failure: () => undefined,
    request: (replicas, forMs, client) => {
      requests.push({ replicas, forMs, client });
      wake = { replicas, until: now + forMs };
      return wake;
    },
    status: () => ({ wake, readyBuilders: wake ? 1 : 0 }),
    ...extra,
  };
  const server = new OpsServer(
    { address: { host: '127.0.0.1', port: 0 }, registry: new Registry(), wake: control },
    { readiness: () => [], emit: (e) => events.push(e) },
  );
  const { port } = await server.start();
  t.after(() => server.stop());
  const call = async (method: string, path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    const text = await response.text();
    return {
      status: response.status,
      allow: response.headers.get('allow'),
      json:
        text && response.headers.get('content-type') === 'application/json'
          ? (JSON.parse(text) as Record<string, unknown>)
          : undefined,
    };
  };
  return { call, requests };
}

test('POST /wake asks for one builder for the idle timeout by default and answers 202 with what was asked', async (t) => {
  const { call, requests } = await serve(t);
  const answer = await call('POST', '/wake');
  assert.equal(answer.status, 202);
  assert.deepEqual(answer.json, { replicas: 1, for: '2m0s', until: '2026-01-05T08:02:00.000Z' });
  assert.equal(requests.length, 1);
  assert.match(requests[0]!.client, /^127\.0\.0\.1:\d+$/);
});

test('POST /wake?replicas=N&for=D records exactly that; GET /wake reports it and the builders that accept connections', async (t) => {
  const { call, requests } = await serve(t);
  assert.deepEqual((await call('GET', '/wake')).json, { wake: null, readyBuilders: 0, failure: null });
  const answer = await call('POST', '/wake?replicas=3&for=10h');
  assert.equal(answer.status, 202);
  assert.deepEqual(answer.json, { replicas: 3, for: '10h0m0s', until: '2026-01-05T18:00:00.000Z' });
  assert.deepEqual(
    requests.map(({ replicas, forMs }) => ({ replicas, forMs })),
    [{ replicas: 3, forMs: 36_000_000 }],
  );
  assert.deepEqual((await call('GET', '/wake')).json, {
    wake: { replicas: 3, until: '2026-01-05T18:00:00.000Z' },
    readyBuilders: 1,
    failure: null,
  });
});

test('bad input is 400 with the reason, and nothing is recorded', async (t) => {
  const { call, requests } = await serve(t);
  const cases: Array<[string, RegExp]> = [
    ['?for=20', /invalid for "20": not a Go duration/],
    ['?for=soon', /invalid for "soon"/],
    ['?for=0s', /must be positive/],
    ['?for=-1m', /must be positive/],
    ['?for=25h', /at most 24h0m0s/],
    ['?for=', /invalid for ""/],
    ['?replicas=0', /invalid replicas "0": must be a whole number from 1 to 3/],
    ['?replicas=4', /from 1 to 3 \(--max-replicas\)/],
    ['?replicas=1.5', /invalid replicas "1.5"/],
    ['?replicas=two', /invalid replicas "two"/],
    ['?replica=2', /unknown parameter "replica"/],
    ['?for=1m&for=2m', /"for" given more than once/],
  ];
  for (const [query, reason] of cases) {
    const answer = await call('POST', `/wake${query}`);
    assert.equal(answer.status, 400, query);
    assert.match(String(answer.json?.['error']), reason, query);
  }
  assert.equal(requests.length, 0);
});

test('while scaling is failing, POST /wake is 503 with the stable code, and GET /wake shows the failure', async (t) => {
  const failure = new GatewayError(ErrorCode.ScaleForbidden, 'scale up to 1 failed: forbidden');
  const { call, requests } = await serve(t, { failure: () => failure });
  const answer = await call('POST', '/wake?for=1m');
  assert.equal(answer.status, 503);
  assert.deepEqual(answer.json, { error: 'scale up to 1 failed: forbidden', code: 'BKA_SCALE_FORBIDDEN' });
  assert.equal(requests.length, 0);
  assert.deepEqual((await call('GET', '/wake')).json?.['failure'], {
    code: 'BKA_SCALE_FORBIDDEN',
    message: 'scale up to 1 failed: forbidden',
  });
});

test('other methods on /wake are 405 with Allow; the GET-only endpoints are unchanged', async (t) => {
  const { call } = await serve(t);
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    const answer = await call(method, '/wake');
    assert.equal(answer.status, 405, method);
    assert.equal(answer.allow, 'GET, HEAD, POST', method);
  }
  const post = await call('POST', '/metrics');
  assert.equal(post.status, 405);
  assert.equal(post.allow, 'GET, HEAD');
  assert.equal((await call('HEAD', '/wake')).status, 200);
  assert.equal((await call('GET', '/healthz')).status, 200);
});
