import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatGoDuration, parseGoDuration } from './duration.ts';

test('parses the Go duration forms users copy from the Go tool', () => {
  assert.equal(parseGoDuration('2m0s'), 120_000);
  assert.equal(parseGoDuration('90s'), 90_000);
  assert.equal(parseGoDuration('1h2m3.5s'), 3_723_500);
  assert.equal(parseGoDuration('500ms'), 500);
  assert.equal(parseGoDuration('1.5h'), 5_400_000);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('250us'), 0.25);
  assert.equal(parseGoDuration('-1s'), -1000);
});

test('rejects what Go rejects', () => {
  for (const bad of ['', '5', '5x', 'm', '1m-1s', '1 m', 'abc', '1.2.3s', '.s']) {
    assert.throws(() => parseGoDuration(bad), Error, bad);
  }
});

test('formats like Duration.String()', () => {
  assert.equal(formatGoDuration(120_000), '2m0s');
  assert.equal(formatGoDuration(300_000), '5m0s');
  assert.equal(formatGoDuration(3_723_500), '1h2m3.5s');
  assert.equal(formatGoDuration(500), '500ms');
  assert.equal(formatGoDuration(30_000), '30s');
  assert.equal(formatGoDuration(0), '0s');
});

test("accepts up to Go's largest duration and refuses what Go refuses as out of range", () => {
  assert.equal(parseGoDuration('720h'), 720 * 3_600_000);
  assert.equal(parseGoDuration('2562047h'), 2_562_047 * 3_600_000);
  for (const tooLong of ['2562048h', '9223372036855s', '99999999999999999999999h']) {
    assert.throws(() => parseGoDuration(tooLong), /out of range: at most 2562047h47m16.854775807s/, tooLong);
  }
});
