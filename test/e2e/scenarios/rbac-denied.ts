import assert from 'node:assert/strict';
import { echoRoundTrip } from '../../support/echo-client.ts';
import { httpGet } from '../clients.ts';
import { type Scenario, access, kubectlOk, seconds, waitForZero } from './context.ts';
import { waitForLog } from './gateway-pods.ts';
import { payload } from './line-client.ts';

export const rbacDenied: Scenario = {
  name: 'rbac-denied',
  promise:
    'when RBAC forbids the scale write, a held client fails fast (not at READY_WAIT_TIMEOUT), the log names BKA_SCALE_FORBIDDEN and /readyz says why',
  async run(ctx) {
    await waitForZero(ctx, 'buildkitd at 0 before the permission is taken away');
    const role = JSON.parse(await kubectlOk(ctx, ['get', 'role', 'buildkitd-autoscaler', '-o', 'json'])) as {
      rules: { resources?: string[] }[];
    };
    const index = role.rules.findIndex((r) => r.resources?.includes('statefulsets/scale'));
    assert.ok(index >= 0, 'the gateway Role has no statefulsets/scale rule');
    const rule = role.rules[index];
    const subject = `system:serviceaccount:${ctx.namespace}:buildkitd-autoscaler`;
    const canScale = async () =>
      (
        await ctx.backend.kubectl([
          '-n',
          ctx.namespace,
          'auth',
          'can-i',
          'patch',
          'statefulsets',
          '--subresource=scale',
          '--as',
          subject,
        ])
      ).stdout.trim();
    await kubectlOk(ctx, [
      'patch',
      'role',
      'buildkitd-autoscaler',
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'test', path: `/rules/${index}`, value: rule },
        { op: 'remove', path: `/rules/${index}` },
      ]),
    ]);
    ctx.timeline.mark('Role: the statefulsets/scale rule removed');
    try {
      const deadline = Date.now() + 15_000;
      while ((await canScale()) !== 'no') {
        assert.ok(
          Date.now() < deadline,
          'kubectl auth can-i still allows the scale write 15s after the rule was removed',
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const gw = access(ctx);
      const result = await echoRoundTrip(gw.proxy, payload(), ctx.settings.readyWaitS * 1000 + 30_000);
      assert.equal(result.ok, false, 'the client was served although the gateway may not scale');
      assert.notEqual(result.failure, 'timeout', 'the client was not closed');
      assert.ok(
        result.elapsedMs < 15_000,
        `the held client was closed only after ${seconds(result.elapsedMs)} (READY_WAIT_TIMEOUT ${ctx.settings.readyWaitS}s)`,
      );
      await waitForLog(ctx, /BKA_SCALE_FORBIDDEN/, 'BKA_SCALE_FORBIDDEN');
      assert.equal(ctx.timeline.replicas, 0, 'buildkitd was scaled although the write is forbidden');
      // A re-check confirms the failure before /readyz turns red (a one-off 403 must not flap the pod); then it
      // stays. With several replicas the Service may answer from one that never tried to scale: ask each pod
      // whose own log names the failure.
      const failing: string[] = [];
      for (const pod of ctx.gatewayPods) {
        if (/BKA_SCALE_FORBIDDEN/.test(await ctx.backend.containerLog(ctx.namespace, pod, 'gateway')))
          failing.push(pod);
      }
      assert.ok(failing.length > 0, 'no gateway pod logged BKA_SCALE_FORBIDDEN');
      let readyz = { status: 0, body: '' };
      for (const pod of failing) {
        const pa = await ctx.backend.podAccess(ctx.namespace, pod);
        try {
          const readyzDeadline = Date.now() + 30_000;
          readyz = await httpGet(pa.metrics, '/readyz');
          while (!(readyz.status === 503 && readyz.body.includes('BKA_SCALE_FORBIDDEN'))) {
            assert.ok(
              Date.now() < readyzDeadline,
              `/readyz of ${pod} does not report BKA_SCALE_FORBIDDEN 30s after the failure: ${readyz.status} ${readyz.body.trim().slice(0, 200)}`,
            );
            await new Promise((resolve) => setTimeout(resolve, 500));
            readyz = await httpGet(pa.metrics, '/readyz');
          }
        } finally {
          pa.close();
        }
      }
      const readyzSays = `/readyz ${readyz.status} naming BKA_SCALE_FORBIDDEN on ${failing.join(', ')}`;
      ctx.figures.set(
        'RBAC denied: held client closed after',
        `${Math.round(result.elapsedMs)}ms (${result.failure ?? ''}; READY_WAIT_TIMEOUT ${ctx.settings.readyWaitS}s)`,
      );
      return `client ${result.failure ?? ''} after ${Math.round(result.elapsedMs)}ms; log names BKA_SCALE_FORBIDDEN; ${readyzSays}; StatefulSet stayed at 0`;
    } finally {
      await kubectlOk(ctx, [
        'patch',
        'role',
        'buildkitd-autoscaler',
        '--type=json',
        '-p',
        JSON.stringify([{ op: 'add', path: `/rules/${index}`, value: rule }]),
      ]);
      ctx.timeline.mark('Role restored');
    }
  },
};
