import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ownerPod } from './owner-pod.ts';

test('the report Lease is owned by the gateway pod only when the pod lives in the Leases namespace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'owner-pod-'));
  const namespaceFile = join(dir, 'namespace');
  const pod = { identity: 'gateway-0', podUid: 'uid-1', leaseNamespace: 'builds' };
  writeFileSync(namespaceFile, 'builds\n');
  assert.deepEqual(ownerPod(pod, namespaceFile), { name: 'gateway-0', uid: 'uid-1' });
  writeFileSync(namespaceFile, 'gateways\n');
  assert.equal(ownerPod(pod, namespaceFile), undefined, 'owner references cannot cross namespaces');
  assert.deepEqual(
    ownerPod(pod, join(dir, 'missing')),
    { name: 'gateway-0', uid: 'uid-1' },
    'no service account namespace file: the configured namespace is taken as the pod namespace',
  );
  assert.equal(ownerPod({ ...pod, podUid: undefined }, namespaceFile), undefined, 'no pod UID, no owner');
});
