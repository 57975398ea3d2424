// The E2E scenarios, one file per concern, listed here in the order they run: what a user of the gateway is
// promised, checked through the shipped manifests on a real cluster. Each returns one line of what it
// observed; a failed expectation throws. They run in order and build on each other's state.
import { buildxRemoteDriver, mtlsBuild } from './buildkit-clients.ts';
import { concurrentColdStart } from './concurrent-cold-start.ts';
import type { Scenario } from './context.ts';
import { drainOnSigterm } from './drain-on-sigterm.ts';
import { haDeletePodDuringBuild, haRolloutRestartDuringBuild } from './ha-disruption-during-build.ts';
import { idleScaleDown, openConnectionKeepsAwake } from './idle.ts';
import { install } from './install.ts';
import { metrics } from './metrics.ts';
import { neverReady } from './never-ready.ts';
import { nodeDrainDuringBuild } from './node-drain.ts';
import { rbacDenied } from './rbac-denied.ts';
import { realBuild } from './real-build.ts';
import { seedGuide } from './seed-guide.ts';

export type { Context, Scenario, Settings } from './context.ts';
export { STATEFULSET } from './context.ts';

/** The mock suite: buildkitd is socat echo. */
export const SCENARIOS: Scenario[] = [
  install,
  seedGuide,
  openConnectionKeepsAwake,
  idleScaleDown,
  concurrentColdStart,
  metrics,
  drainOnSigterm,
  rbacDenied,
  neverReady,
];

/** The real suite: the example's buildkitd, driven with buildctl and buildx; the mTLS scenario runs last (it leaves buildkitd serving TLS). */
export const REAL_SCENARIOS: Scenario[] = [
  install,
  realBuild,
  idleScaleDown,
  haRolloutRestartDuringBuild,
  haDeletePodDuringBuild,
  nodeDrainDuringBuild,
  buildxRemoteDriver,
  mtlsBuild,
];
