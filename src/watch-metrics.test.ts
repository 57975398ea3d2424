import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { KubeConfig, type V1StatefulSet } from '@kubernetes/client-node';
import { FakeListWatchApi, watchErrors } from '../test/support/fake-list-watch.ts';
import { ManualClock } from './clock.ts';
import { createEventSink } from './event-sink.ts';
import { ResilientInformer } from './kube/informer.ts';
import { createLogger } from './log.ts';
import { createMetrics } from './metrics.ts';

const settle = async () => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

function setup(t: TestContext) {
  const clock = new ManualClock();
  const metrics = createMetrics();
  const log = createLogger('debug', new Writable({ write: (_chunk, _encoding, done) => done() }));
  const api = new FakeListWatchApi<V1StatefulSet>();
  const informer = new ResilientInformer<V1StatefulSet>(
    {
      resource: 'statefulset/buildkitd',
      kubeConfig: new KubeConfig(),
      path: '/apis/apps/v1/namespaces/default/statefulsets',
      list: api.list,
      openListWatch: api.open,
      clock,
    },
    { emit: createEventSink(log, metrics) },
  );
  metrics.observeWatches(() => [informer]);
  /** The bka_watch_* samples as /metrics shows them. */
  const scrape = async () =>
    (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('bka_watch_'));
  t.after(() => informer.stop());
  return { clock, api, informer, scrape };
}

test('a quiet healthy watch reads the same after ten minutes without a change: up, no restarts', async (t) => {
  const { clock, informer, scrape } = setup(t);
  informer.start();
  await settle();
  const atSync = await scrape();
  clock.advance(10 * 60_000);
  await settle();
  assert.deepEqual(await scrape(), atSync);
  assert.ok(atSync.includes('bka_watch_up{resource="statefulset/buildkitd"} 1'), atSync.join('\n'));
  assert.ok(atSync.includes('bka_watch_restarts_total{resource="statefulset/buildkitd"} 0'), atSync.join('\n'));
});

test('a watch that lists but cannot watch reads down, and each restart is counted', async (t) => {
  const { clock, api, informer, scrape } = setup(t);
  api.watchError = watchErrors.forbidden();
  informer.start();
  await settle();
  assert.ok((await scrape()).includes('bka_watch_up{resource="statefulset/buildkitd"} 0'));
  for (let restarts = 1; restarts <= 3; restarts += 1) {
    assert.ok(
      (await scrape()).includes(`bka_watch_restarts_total{resource="statefulset/buildkitd"} ${restarts}`),
      (await scrape()).join('\n'),
    );
    clock.advance(60_000);
    await settle();
  }
  api.watchError = undefined;
  clock.advance(60_000);
  await settle();
  const healthy = await scrape();
  assert.ok(healthy.includes('bka_watch_up{resource="statefulset/buildkitd"} 1'), healthy.join('\n'));
  assert.ok(healthy.includes('bka_watch_restarts_total{resource="statefulset/buildkitd"} 4'), healthy.join('\n'));
});
