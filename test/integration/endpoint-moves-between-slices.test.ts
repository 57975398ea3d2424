// A build's pod stays put while its endpoint moves from one EndpointSlice of the headless Service to
// another, the removal landing before the addition: the spliced connection keeps echoing, with no
// BKA_BACKEND_LOST. Slices are written by hand under a managed-by of our own, after taking the
// Service's selector away so the EndpointSlice controller no longer writes (or restores) its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DiscoveryV1Api, type V1Endpoint, type V1EndpointSlice } from '@kubernetes/client-node';
import { absenceGraceMs } from '../../src/backends/endpoints.ts';
import { ErrorCode } from '../../src/errors.ts';
import { setup } from './harness.ts';
import { openEcho } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

const service = 'buildkitd-headless';
const controllerSlices = 'endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io';

test('an endpoint moving between EndpointSlices, removal first, does not cut the spliced connection', async (t) => {
  const env = await setup(t, { buildkitd: { kind: 'mock' } });
  const discovery = env.cluster.kubeConfig().makeApiClient(DiscoveryV1Api);
  const namespace = env.namespace;
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: '10m' });
  const connection = await openEcho(gateway.proxyPort);
  const chunk = (fill: string) => Buffer.alloc(16 * 1024, fill);
  assert.equal(Buffer.compare(await connection.roundTrip(chunk('a')), chunk('a')), 0);

  const podEndpoint = await waitFor('the controller lists buildkitd-0 in a slice', async () => {
    const slices = await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: controllerSlices });
    return slices.items
      .flatMap((s) => s.endpoints ?? [])
      .find((e) => e.targetRef?.name === 'buildkitd-0' && e.conditions?.ready !== false);
  });
  const handWritten = (name: string, endpoints: V1Endpoint[]): V1EndpointSlice => ({
    metadata: {
      name,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'bka-test' },
    },
    addressType: 'IPv4',
    ports: [{ name: 'buildkit', port: 8273, protocol: 'TCP' }],
    endpoints,
  });
  await discovery.createNamespacedEndpointSlice({ namespace, body: handWritten('moving-a', [podEndpoint]) });
  const unselected = await env.cluster.kubectl([
    '-n',
    namespace,
    'patch',
    'service',
    service,
    '--type=json',
    '-p',
    '[{"op":"remove","path":"/spec/selector"}]',
  ]);
  assert.equal(unselected.code, 0, unselected.stderr);
  await discovery.deleteCollectionNamespacedEndpointSlice({ namespace, labelSelector: controllerSlices });
  await waitFor('only the hand-written slice lists the pod', async () => {
    const slices = await discovery.listNamespacedEndpointSlice({
      namespace,
      labelSelector: `kubernetes.io/service-name=${service}`,
    });
    return slices.items.length === 1 && slices.items[0]?.metadata?.name === 'moving-a';
  });
  assert.equal(Buffer.compare(await connection.roundTrip(chunk('b')), chunk('b')), 0);

  // The move, removal first: the gateway sees the pod in no slice before it appears in the next one.
  await discovery.replaceNamespacedEndpointSlice({ name: 'moving-a', namespace, body: handWritten('moving-a', []) });
  await waitFor('the gateway saw the removal', async () => (await gateway.metric('bka_ready_backends')) === 0);
  await discovery.createNamespacedEndpointSlice({ namespace, body: handWritten('moving-b', [podEndpoint]) });
  await waitFor('the gateway saw the addition', async () => (await gateway.metric('bka_ready_backends')) === 1);

  assert.equal(Buffer.compare(await connection.roundTrip(chunk('c')), chunk('c')), 0);
  // Past the absence grace too: nothing closes the connection later.
  await sleep(absenceGraceMs + 1000);
  assert.equal(Buffer.compare(await connection.roundTrip(chunk('d')), chunk('d')), 0);
  assert.equal(await gateway.metric('bka_errors_total', { code: ErrorCode.BackendLost }), 0);
  assert.equal(await gateway.metric('bka_connections_open'), 1);
  connection.socket.end();
  await connection.closed;
  // Its closing line is the connection's last: once it is read, a BKA_BACKEND_LOST line would be too.
  await gateway.waitForEvents('connection_closed of the spliced connection', (e) => e['event'] === 'connection_closed');
  assert.deepEqual(
    gateway.events().filter((e) => e['code'] === ErrorCode.BackendLost),
    [],
  );
});
