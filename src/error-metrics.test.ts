import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { ErrorCode } from './errors.ts';
import { createEventSink } from './event-sink.ts';
import { createLogger } from './log.ts';
import { createMetrics } from './metrics.ts';

const errorSamples = async (metrics: ReturnType<typeof createMetrics>) =>
  (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('bka_errors_total{'));

test('every error code is on /metrics at 0 before its first error, so an alert on increase() sees the first one', async () => {
  const samples = await errorSamples(createMetrics());
  for (const code of Object.values(ErrorCode))
    assert.ok(samples.includes(`bka_errors_total{code="${code}"} 0`), `${code} missing:\n${samples.join('\n')}`);
});

test('an error counts once on top of the zero, and the other codes stay at 0', async () => {
  const metrics = createMetrics();
  const emit = createEventSink(createLogger('silent', new Writable({ write: (_c, _e, done) => done() })), metrics);
  await errorSamples(metrics);
  emit({ kind: 'wake_gave_up', attempts: 3, error: 'forbidden', code: ErrorCode.WakeGaveUp });
  const samples = await errorSamples(metrics);
  assert.ok(samples.includes('bka_errors_total{code="BKA_WAKE_GAVE_UP"} 1'), samples.join('\n'));
  assert.ok(samples.includes('bka_errors_total{code="BKA_READY_TIMEOUT"} 0'), samples.join('\n'));
});
