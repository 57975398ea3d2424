import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { backendsFromStatefulSet } from './dns.ts';
import { backendsFromEndpointSlices } from './endpoints.ts';
import { dialOrder } from './balancer.ts';

const endpoint = (name: string, ip: string, conditions: { ready?: boolean; terminating?: boolean } = {}) => ({
  addresses: [ip],
  conditions,
  targetRef: { kind: 'Pod', name, namespace: 'ci', uid: `uid-${name}` },
});

test('only ready, non-terminating pods of the StatefulSet become backends, sorted by ordinal', () => {
  const slices: V1EndpointSlice[] = [
    {
      addressType: 'IPv4',
      endpoints: [
        endpoint('buildkitd-2', '10.244.0.12', { ready: true }),
        endpoint('buildkitd-0', '10.244.0.10', {}),
        endpoint('buildkitd-1', '10.244.0.11', { ready: false }),
        endpoint('buildkitd-3', '10.244.0.13', { ready: true, terminating: true }),
        endpoint('other-0', '10.244.0.20', { ready: true }),
      ],
    },
  ];
  const backends = backendsFromEndpointSlices(slices, 'buildkitd', 8273);
  assert.deepEqual(
    backends.map((b) => [b.podName, b.host, b.port, b.key]),
    [
      ['buildkitd-0', '10.244.0.10', 8273, 'uid-buildkitd-0'],
      ['buildkitd-2', '10.244.0.12', 8273, 'uid-buildkitd-2'],
    ],
  );
});

test('the balancer packs onto the lowest ordinal and tries a failed pod last', () => {
  const backends = backendsFromEndpointSlices(
    [{ addressType: 'IPv4', endpoints: [endpoint('buildkitd-1', '10.0.0.2'), endpoint('buildkitd-0', '10.0.0.1')] }],
    'buildkitd',
    8273,
  );
  assert.deepEqual(
    dialOrder(backends).map((b) => b.podName),
    ['buildkitd-0', 'buildkitd-1'],
  );
  assert.deepEqual(
    dialOrder(backends, new Set(['uid-buildkitd-0'])).map((b) => b.podName),
    ['buildkitd-1', 'buildkitd-0'],
  );
});

test('dns mode names pods the Go tool way, only once the status reflects the current spec', () => {
  const naming = {
    statefulSetName: 'buildkitd',
    serviceName: 'buildkitd-headless',
    namespace: 'ci',
    clusterDomain: 'cluster.local',
    port: 8273,
  };
  const sts = {
    metadata: { uid: 'u', generation: 3 },
    spec: { replicas: 2, selector: {}, serviceName: 'x', template: {} },
    status: { replicas: 2, readyReplicas: 2, observedGeneration: 3 },
  };
  assert.deepEqual(
    backendsFromStatefulSet(sts, naming).map((b) => b.host),
    ['buildkitd-0.buildkitd-headless.ci.svc.cluster.local', 'buildkitd-1.buildkitd-headless.ci.svc.cluster.local'],
  );
  assert.deepEqual(backendsFromStatefulSet({ ...sts, status: { ...sts.status, observedGeneration: 2 } }, naming), []);
  assert.deepEqual(backendsFromStatefulSet(undefined, naming), []);
});
