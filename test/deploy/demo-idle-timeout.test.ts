// npm run demo --idle-timeout takes the same Go durations as SCALE_DOWN_IDLE_TIMEOUT, the form users
// copy from the shipped manifests (2m0s) and from the Go tool (1m30s).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idleTimeoutMs } from '../../scripts/demo.ts';

test('the demo reads --idle-timeout as a Go duration, as the gateway does', () => {
  assert.equal(idleTimeoutMs('2m0s'), 120_000);
  assert.equal(idleTimeoutMs('1m30s'), 90_000);
  assert.equal(idleTimeoutMs('20s'), 20_000);
  assert.equal(idleTimeoutMs('500ms'), 500);
  assert.equal(idleTimeoutMs('1.5m'), 90_000);
});

test('the demo refuses an --idle-timeout the gateway would refuse', () => {
  for (const bad of ['', 'soon', '20', '1m-', '-5s']) assert.throws(() => idleTimeoutMs(bad), Error, bad);
});
