import assert from 'node:assert/strict';
import test from 'node:test';
import { Registry, Counter, Gauge } from 'prom-client';
import { metricSum, parsePromText } from './prom-text.ts';

test('parses what prom-client writes: names, escaped label values, sums over matching labels', async () => {
  const registry = new Registry();
  const errors = new Counter({ name: 'bka_errors_total', help: 'h', labelNames: ['code'], registers: [registry] });
  const held = new Gauge({ name: 'bka_connections_held', help: 'h', registers: [registry] });
  errors.inc({ code: 'BKA_A' }, 2);
  errors.inc({ code: 'say "hi"\\\n' }, 3);
  held.set(1);
  const text = await registry.metrics();

  assert.equal(metricSum(text, 'bka_errors_total'), 5);
  assert.equal(metricSum(text, 'bka_errors_total', { code: 'BKA_A' }), 2);
  assert.equal(metricSum(text, 'bka_errors_total', { code: 'say "hi"\\\n' }), 3);
  assert.equal(metricSum(text, 'bka_errors_total', { code: 'BKA_B' }), undefined);
  assert.equal(metricSum(text, 'bka_connections_held'), 1);
  assert.equal(metricSum(text, 'bka_missing'), undefined);
  assert.equal(parsePromText(text).length, 3);
});

test('reads +Inf, NaN and a trailing timestamp', () => {
  const samples = parsePromText('# TYPE x gauge\nx{le="+Inf"} +Inf\ny NaN\nz 4 1700000000000\n');
  assert.deepEqual(
    samples.map((s) => [s.name, [...s.labels], s.value]),
    [
      ['x', [['le', '+Inf']], Number.POSITIVE_INFINITY],
      ['y', [], Number.NaN],
      ['z', [], 4],
    ],
  );
});
