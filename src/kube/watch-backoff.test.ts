import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { KubeConfig, type V1StatefulSet } from '@kubernetes/client-node';
import { FakeListWatchApi, watchErrors } from '../../test/support/fake-list-watch.ts';
import { ManualClock } from '../clock.ts';
import type { GatewayEvent } from '../events.ts';
import { ResilientInformer, WATCH_STABLE_AFTER_MS } from './informer.ts';

const settle = async () => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

function setup(t: TestContext) {
  // No jitter, so the test reads the nominal delays.
  t.mock.method(Math, 'random', () => 0.5);
  const clock = new ManualClock();
  const events: GatewayEvent[] = [];
  const api = new FakeListWatchApi<V1StatefulSet>();
  const informer = new ResilientInformer<V1StatefulSet>(
    {
      resource: 'statefulset/buildkitd',
      kubeConfig: new KubeConfig(),
      path: '/apis/apps/v1/namespaces/default/statefulsets',
      list: api.list,
      openListWatch: api.open,
      clock,
      backoff: { initialMs: 1000, maxMs: 16_000 },
    },
    { emit: (e) => events.push(e) },
  );
  const retryDelays = () => events.flatMap((e) => (e.kind === 'watch_failed' ? [e.retryInMs] : []));
  /** Lets the pending restart run: the clock moves by the last announced delay. */
  const restart = async () => {
    clock.advance(retryDelays().at(-1) ?? 0);
    await settle();
  };
  t.after(() => informer.stop());
  return { clock, api, informer, retryDelays, restart };
}

test('a watch that fails right after every successful list backs off exponentially up to the cap', async (t) => {
  const { api, informer, retryDelays, restart } = setup(t);
  api.watchError = watchErrors.forbidden();
  informer.start();
  await settle();
  for (let i = 0; i < 7; i += 1) await restart();
  assert.equal(api.lists, 8, 'every restart lists again');
  assert.deepEqual(retryDelays(), [1000, 2000, 4000, 8000, 16_000, 16_000, 16_000, 16_000]);
  assert.equal(informer.state.synced, false);
});

test('only a watch that stayed up for the stable period resets the backoff', async (t) => {
  const { clock, api, informer, retryDelays, restart } = setup(t);
  api.watchError = watchErrors.forbidden();
  informer.start();
  await settle();
  await restart();
  await restart();
  assert.deepEqual(retryDelays(), [1000, 2000, 4000]);

  api.watchError = undefined;
  await restart();
  assert.equal(informer.state.synced, true);
  clock.advance(WATCH_STABLE_AFTER_MS - 1);
  api.current.fail(watchErrors.reset());
  assert.deepEqual(
    retryDelays(),
    [1000, 2000, 4000, 8000],
    'up for less than the stable period: the backoff keeps growing',
  );

  await restart();
  clock.advance(WATCH_STABLE_AFTER_MS);
  api.current.fail(watchErrors.reset());
  assert.deepEqual(
    retryDelays(),
    [1000, 2000, 4000, 8000, 1000],
    'up for the stable period: back to the initial delay',
  );
});
