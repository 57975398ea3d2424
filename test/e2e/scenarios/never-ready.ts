import assert from 'node:assert/strict';
import { echoRoundTrip } from '../../support/echo-client.ts';
import { metricSum } from '../../support/prom-text.ts';
import { httpGet } from '../clients.ts';
import { STATEFULSET, type Scenario, kubectlOk, seconds } from './context.ts';
import { connectToGateway, waitForLog } from './gateway-pods.ts';
import { payload } from './line-client.ts';

export const neverReady: Scenario = {
  name: 'never-ready',
  promise: 'when buildkitd never becomes ready, a held client is closed at its deadline and the gateway says why',
  async run(ctx) {
    const readyWaitS = 10;
    // A readiness probe on a port nothing listens on: the pod runs but never becomes Ready.
    await kubectlOk(ctx, [
      'patch',
      'statefulset',
      STATEFULSET,
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/template/spec/containers/0/readinessProbe/tcpSocket/port","value":1}]',
    ]);
    await kubectlOk(ctx, ['set', 'env', 'deployment/buildkitd-autoscaler', `READY_WAIT_TIMEOUT=${readyWaitS}s`]);
    ctx.timeline.mark(`READY_WAIT_TIMEOUT=${readyWaitS}s, buildkitd readiness on port 1`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const gw = await connectToGateway(ctx);
    const result = await echoRoundTrip(gw.proxy, payload(), readyWaitS * 1000 + 60_000);
    assert.equal(result.ok, false, 'the client was served by a pod that is not ready');
    assert.notEqual(result.failure, 'timeout', `the client was not closed within ${readyWaitS + 60}s`);
    assert.ok(
      result.elapsedMs >= readyWaitS * 1000 - 500,
      `closed after ${seconds(result.elapsedMs)}, before the ${readyWaitS}s deadline`,
    );
    // The log line may land just after the socket closed (asynchronous logging): give it a moment.
    await waitForLog(ctx, /BKA_READY_TIMEOUT/, 'the cause (BKA_READY_TIMEOUT)');
    const { body } = await httpGet(gw.metrics, '/metrics');
    ctx.figures.set(`never ready: client closed after (deadline ${readyWaitS}s)`, seconds(result.elapsedMs));
    return `client ${result.failure ?? ''} after ${seconds(result.elapsedMs)}; log names BKA_READY_TIMEOUT; bka_errors_total ${metricSum(body, 'bka_errors_total') ?? 'absent'}`;
  },
};
