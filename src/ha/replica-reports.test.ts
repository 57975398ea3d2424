import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import { ManualClock } from '../clock.ts';
import {
  activityAnnotation,
  encodeActivity,
  encodeProposal,
  proposalAnnotation,
  type PublishedActivity,
} from './lease-annotations.ts';
import { ReplicaReports } from './replica-reports.ts';

const wallStart = 1_700_000_000_000;

function activity(overrides: Partial<PublishedActivity> = {}): PublishedActivity {
  return {
    instance: 'i-1',
    open: 0,
    held: 0,
    pods: {},
    since: wallStart,
    ack: undefined,
    draining: false,
    ...overrides,
  };
}

/** renewTime: the writer's wall clock at the write (by default agreeing with ours at the start). */
function reportLease(
  identity: string,
  resourceVersion: string,
  annotation: string | undefined,
  renewTime = new Date(wallStart).toISOString(),
): V1Lease {
  return {
    metadata: {
      name: `bka-${identity}`,
      resourceVersion,
      labels: { 'buildkitd-autoscaler/group': 'bka', 'buildkitd-autoscaler/role': 'activity' },
      ...(annotation === undefined ? {} : { annotations: { [activityAnnotation]: annotation } }),
    },
    spec: { holderIdentity: identity, leaseDurationSeconds: 6, renewTime: renewTime as unknown as Date },
  };
}

function setup() {
  const clock = new ManualClock(wallStart);
  let leases: V1Lease[] = [];
  const reports = new ReplicaReports({
    leases: () => leases,
    ownLeaseName: 'bka-me',
    leaderLeaseName: 'bka',
    clock,
  });
  return { clock, reports, set: (next: V1Lease[]) => (leases = next) };
}

test('a report is fresh from when this replica saw it change, whatever the writer clock says', () => {
  const { clock, reports, set } = setup();
  // The writer's clock says nothing to the reader: this renewTime is decades old on purpose.
  const decadesOld = '2001-01-01T00:00:00.000000Z';
  set([
    reportLease(
      'b',
      '1',
      encodeActivity(activity({ open: 2, pods: { 'buildkitd-0': { open: 2, lastActiveAt: Date.parse(decadesOld) } } })),
      decadesOld,
    ),
  ]);
  reports.observe();
  const [b] = reports.reports();
  assert.equal(b?.identity, 'b');
  assert.equal(b?.fresh, true);
  assert.equal(b?.open, 2);
  assert.deepEqual(b?.pods, { 'buildkitd-0': { open: 2, lastActiveAt: wallStart } });

  // Renewed (a new resourceVersion) every 4 s: fresh for as long as that goes on.
  for (let version = 2; version < 10; version += 1) {
    clock.advance(4_000);
    set([reportLease('b', String(version), encodeActivity(activity({ open: 2 })), decadesOld)]);
    reports.observe();
    assert.equal(reports.reports()[0]?.fresh, true, `after renewal ${version}`);
  }
});

test('a report not renewed for its lease duration goes stale, counting the staleness from then', () => {
  const { clock, reports, set } = setup();
  set([reportLease('b', '1', encodeActivity(activity({ open: 1 })))]);
  reports.observe();
  clock.advance(5_999);
  assert.equal(reports.reports()[0]?.fresh, true);
  assert.equal(reports.reports()[0]?.staleForMs, 0);
  clock.advance(1);
  assert.equal(reports.reports()[0]?.fresh, false, 'stale at the lease duration');
  clock.advance(10_000);
  assert.equal(reports.reports()[0]?.staleForMs, 10_000);
  // It still carries what it last said: a stale report blocks, it is not read as idle.
  assert.equal(reports.reports()[0]?.open, 1);
  // Renewed again: fresh again, from the moment it is seen.
  set([reportLease('b', '2', encodeActivity(activity({ open: 0 })))]);
  assert.equal(reports.reports()[0]?.fresh, true);
});

test('re-reading the same version does not renew it; only an observed change does', () => {
  const { clock, reports, set } = setup();
  const lease = reportLease('b', '7', encodeActivity(activity()));
  set([lease]);
  reports.observe();
  for (let i = 0; i < 7; i += 1) {
    clock.advance(1_000);
    set([structuredClone(lease)]);
    reports.observe();
  }
  assert.equal(reports.reports()[0]?.fresh, false);
});

test('its own report and the leader Lease are not among the others', () => {
  const { reports, set } = setup();
  const leader: V1Lease = {
    metadata: { name: 'bka', resourceVersion: '1', labels: { 'buildkitd-autoscaler/role': 'leader' } },
    spec: { holderIdentity: 'b' },
  };
  set([
    reportLease('me', '1', encodeActivity(activity({ open: 5 }))),
    leader,
    reportLease('b', '2', encodeActivity(activity())),
  ]);
  assert.deepEqual(
    reports.reports().map((r) => r.identity),
    ['b'],
  );
});

test('a missing or malformed annotation block scale-down like a silent replica (nothing is known)', () => {
  const { clock, reports, set } = setup();
  const malformed = [
    'not json',
    '{"instance":"x"}',
    JSON.stringify({ instance: 'x', open: -1, held: 0, pods: {}, since: new Date(wallStart).toISOString() }),
    // Used to throw a TypeError inside the reconcile loop.
    JSON.stringify({
      instance: 'x',
      open: 0,
      held: 0,
      pods: { 'buildkitd-0': null },
      since: new Date(wallStart).toISOString(),
    }),
  ];
  set([
    reportLease('none', '1', undefined),
    ...malformed.map((text, i) => reportLease(`bad${i}`, String(i + 2), text)),
  ]);
  reports.observe();
  const all = reports.reports();
  assert.equal(all.length, 5);
  for (const report of all) {
    assert.equal(report.fresh, false, report.identity);
    assert.equal(report.open + report.held, 0);
    assert.equal(report.ack, undefined);
  }
  clock.advance(6_000 + 2_500);
  assert.deepEqual(
    reports.reports().map((r) => r.staleForMs),
    [2_500, 2_500, 2_500, 2_500, 2_500],
  );
});

test('the scale-down proposal is read from the leader Lease; a malformed one is none', () => {
  const { reports, set } = setup();
  const proposal = {
    id: '1-0-5',
    from: 1,
    to: 0,
    pods: { 'buildkitd-0': 'uid-0' },
    proposedAt: wallStart,
    committed: false,
  };
  // Every change of a Lease carries a new resourceVersion, as the API server gives it.
  const leader = (text: string, resourceVersion: string): V1Lease => ({
    metadata: { name: 'bka', resourceVersion, annotations: { [proposalAnnotation]: text } },
  });
  set([leader(encodeProposal(proposal), '1')]);
  assert.deepEqual(reports.proposal(), proposal);
  set([leader('{"id":1}', '2')]);
  assert.equal(reports.proposal(), undefined);
  set([]);
  assert.equal(reports.proposal(), undefined);
});

test('a replica that drained and deleted its report leaves when its pods were last busy', () => {
  const { clock, reports, set } = setup();
  const closedAt = wallStart + 2_000;
  set([
    reportLease(
      'old',
      '1',
      encodeActivity(activity({ pods: { 'buildkitd-0': { open: 0, lastActiveAt: closedAt } }, draining: true })),
    ),
    reportLease(
      'cut',
      '2',
      encodeActivity(activity({ open: 1, pods: { 'buildkitd-1': { open: 1, lastActiveAt: wallStart } } })),
    ),
  ]);
  reports.observe();
  assert.equal(reports.departedActivity().size, 0);
  clock.advance(3_000);
  set([]);
  assert.equal(reports.reports().length, 0, 'gone from the reports');
  // The last close it published; a pod it still had open in the last version seen counts as busy until now.
  assert.deepEqual(Object.fromEntries(reports.departedActivity()), {
    'buildkitd-0': closedAt,
    'buildkitd-1': wallStart + 3_000,
  });
});

test("a departed replica's wake requests in force are handed over once, so a rollout does not end them", () => {
  const { clock, reports, set } = setup();
  const now = wallStart;
  const wake = [
    { replicas: 1, until: now + 36_000_000 },
    { replicas: 2, until: now + 1_000 },
  ];
  set([reportLease('b', '1', encodeActivity(activity({ wake })))]);
  reports.observe();
  assert.deepEqual(reports.reports()[0]?.wake, wake, 'counted while the report exists');
  assert.deepEqual(reports.takeDepartedWakes(), []);
  clock.advance(2_000);
  set([]);
  assert.deepEqual(
    reports.takeDepartedWakes(),
    [{ replicas: 1, until: now + 36_000_000 }],
    'the ended one is not carried on',
  );
  assert.deepEqual(reports.takeDepartedWakes(), [], 'handed over once');
});

test("a report's times are moved onto this replica's clock by their age at the write, whatever the writer's clock says", () => {
  for (const skewMs of [600_000, -600_000, 30_000, 0]) {
    const { clock, reports, set } = setup();
    clock.advance(50_000);
    const ours = wallStart + 50_000;
    // On the writer's clock (ours + skew): a close 4 s before its write, a start 40 s before, a wake for 10 more minutes.
    const writer = ours + skewMs;
    const written = activity({
      pods: { 'buildkitd-0': { open: 0, lastActiveAt: writer - 4_000 } },
      since: writer - 40_000,
      lastHeldCloseAt: writer - 1_000,
      wake: [{ replicas: 2, until: writer + 600_000 }],
    });
    set([reportLease('b', '1', encodeActivity(written), new Date(writer).toISOString().replace('Z', '000Z'))]);
    reports.observe();
    clock.advance(3_000); // read later: the times stay where they were when the report was seen
    const [b] = reports.reports();
    const label = `writer ${skewMs} ms off`;
    assert.deepEqual(b?.pods, { 'buildkitd-0': { open: 0, lastActiveAt: ours - 4_000 } }, label);
    assert.equal(b?.since, ours - 40_000, label);
    assert.equal(b?.lastHeldCloseAt, ours - 1_000, label);
    assert.deepEqual(b?.wake, [{ replicas: 2, until: ours + 600_000 }], label);
    // The same, through the departed report a drained replica leaves behind.
    set([]);
    assert.deepEqual(Object.fromEntries(reports.departedActivity()), { 'buildkitd-0': ours - 4_000 }, label);
    assert.deepEqual(reports.takeDepartedWakes(), [{ replicas: 2, until: ours + 600_000 }], label);
  }
});

test('renewTime as the API client decodes it (a Date) moves the times alike', () => {
  const { reports, set } = setup();
  const lease = reportLease('b', '1', encodeActivity(activity({ since: wallStart + 600_000 - 5_000 })));
  lease.spec!.renewTime = new Date(wallStart + 600_000);
  set([lease]);
  assert.equal(reports.reports()[0]?.since, wallStart - 5_000);
});
