// The shipped busy PodDisruptionBudget in a test namespace, and the eviction kubectl drain asks for: what
// the tests of busy marks check a builder's protection with.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadYaml, type V1PodDisruptionBudget } from '@kubernetes/client-node';
import { type Env } from './harness.ts';
import { REPO_ROOT } from '../support/repo-root.ts';
import { waitFor } from '../support/wait.ts';

export const busyLabel = 'buildkitd-autoscaler/busy';

/** The shipped busy budget, selecting the test StatefulSet's pods (label app=buildkitd) instead of the shipped ones. */
export async function applyShippedBusyBudget(env: Env): Promise<void> {
  const budget = loadYaml<V1PodDisruptionBudget>(
    readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', 'buildkitd', 'poddisruptionbudget-busy.yaml'), 'utf8'),
  );
  assert.equal(budget.spec?.maxUnavailable, 0);
  assert.equal(budget.spec?.selector?.matchLabels?.[busyLabel], 'true');
  budget.metadata = { ...budget.metadata, namespace: env.namespace };
  budget.spec = { ...budget.spec, selector: { matchLabels: { app: 'buildkitd', [busyLabel]: 'true' } } };
  const result = await env.cluster.kubectl(['-n', env.namespace, 'apply', '-f', '-'], {
    input: JSON.stringify(budget),
  });
  assert.equal(result.code, 0, result.stderr);
}

/** POST pods/<name>/eviction as kubectl drain does; the HTTP status and the API server's message. */
export async function evict(env: Env, name: string): Promise<{ status: number; message: string }> {
  try {
    await env.core.createNamespacedPodEviction({
      name,
      namespace: env.namespace,
      body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: env.namespace } },
    });
    return { status: 201, message: '' };
  } catch (error) {
    const e = error as { code?: number; body?: string };
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }) : undefined;
    return { status: e.code ?? 0, message: body?.message ?? String(error) };
  }
}

/** Waits until the disruption controller has counted the busy builder: no disruption allowed. */
export async function budgetCountsBusyBuilder(env: Env): Promise<void> {
  await waitFor(
    'the budget counts the busy builder',
    async () => {
      const budget = await env.cluster.kubectl([
        '-n',
        env.namespace,
        'get',
        'pdb',
        'buildkitd-busy',
        '-o',
        'jsonpath={.status.expectedPods}/{.status.disruptionsAllowed}',
      ]);
      return budget.stdout === '1/0';
    },
    60_000,
  );
}
