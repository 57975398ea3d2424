import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { isoTime } from './log.ts';

test('the time of a log line is ISO with milliseconds, as pino writes it, also across second boundaries', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 0, 2, 3, 4, 5, 7) });
  for (const step of [0, 1, 92, 900, 1, 999, 1000, 3_600_000 * 25 + 40]) {
    t.mock.timers.tick(step);
    assert.equal(isoTime(), pino.stdTimeFunctions.isoTime());
  }
  assert.equal(isoTime(), ',"time":"2026-01-03T04:04:08.040Z"');
});
