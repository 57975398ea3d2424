import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, medianRatio, perRoundRatios, summary, table, type Figure } from './stats.ts';

test('ratios are taken inside each round, then the median over rounds', () => {
  // Round 2 ran on a loaded machine: both paths slowed alike, so its ratio matches the others.
  const gateway = [100, 50, 102];
  const haproxy = [200, 100, 196];
  assert.deepEqual(perRoundRatios(gateway, haproxy), [0.5, 0.5, 102 / 196]);
  assert.equal(medianRatio(gateway, haproxy), 0.5);
  // The ratio of the medians would mix rounds: 100 / 196.
  assert.notEqual(median(gateway) / median(haproxy), 0.5);
});

test('a round missing for either path, or with a reference at or below zero, is left out of the ratios', () => {
  assert.deepEqual(perRoundRatios([1, NaN, 3, 5], [2, 4, 0, -7]), [0.5]);
  assert.ok(Number.isNaN(medianRatio([1], undefined)));
});

test("the table has a column per peer and the gateway's ratios against HAProxy and nginx", () => {
  const figure: Figure = {
    workload: 'CPU',
    metric: 'per GB client→pod',
    unit: 'CPU-s/GB',
    better: 'lower',
    samples: { haproxy: [2, 4], nginx: [1, 2], gateway: [3, 4] },
  };
  const [header, , row] = table([figure]).split('\n');
  assert.match(header ?? '', /direct.*HAProxy.*HAProxy 1t.*nginx.*Node pipe.*gateway.*gw\/HAProxy.*gw\/nginx/);
  // gw/HAProxy: median of 1.5 and 1.0; gw/nginx: median of 3 and 2.
  assert.match(row ?? '', /\| 1\.25 +\| 2\.50 +\|$/);
  assert.deepEqual(summary(figure).gatewayOver.haproxy, { medianOfPerRound: 1.25, perRound: [1.5, 1] });
});
