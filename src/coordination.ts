import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import { builderShare } from './capacity.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { GatewayError } from './errors.ts';
import type { EmitEvent } from './events.ts';
import { ActivityPublisher } from './ha/activity-publisher.ts';
import { LeaderElector } from './ha/leader-election.ts';
import { LeaderLeaseProposalStore } from './ha/leader-lease-proposals.ts';
import { askPeerOverHttp, PartitionCheck } from './ha/partition-check.ts';
import { ReplicaReports } from './ha/replica-reports.ts';
import { WakeLease } from './ha/wake-lease.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { KubeLeaseStore, leaseGroupLabel, leaseRoleLabel, watchLeases } from './kube/leases.ts';
import { ownerPod } from './owner-pod.ts';
import type { LocalActivity } from './scaler/activity.ts';
import type { WakeRequests } from './scaler/wake-requests.ts';

/** The pieces that exist only with leader election: Leases shared with the other gateway replicas. */
export interface Coordination {
  leases: ResilientInformer<V1Lease>;
  elector: LeaderElector;
  publisher: ActivityPublisher;
  reports: ReplicaReports;
  partition: PartitionCheck;
  wakeLease: WakeLease;
  proposals: LeaderLeaseProposalStore;
  /** Subscribes to leadership changes (for the reconcile triggers and the busy marker). */
  leadership: { onChange(listener: () => void): void };
}

export interface CoordinationInputs {
  config: Config;
  kubeConfig: KubeConfig;
  clock: Clock;
  /** This replica's connections, published in its report. */
  activity: LocalActivity;
  /** Accepted wakes, published too; those of departed replicas and of the wake Lease are adopted on every Lease change. */
  wakes: WakeRequests;
  /** The scale-down proposal this replica fences (ScaleController.acknowledged). */
  acknowledged: () => string | undefined;
  draining: () => boolean;
  /** "ip:port" where the other replicas reach this one's ops server, once it listens. */
  opsAddress: () => string | undefined;
}

export interface CoordinationCallbacks {
  emit: EmitEvent;
  /** Another process took over this identity: the process must leave (exit 3). */
  fatal?: ((error: GatewayError) => void) | undefined;
}

/** Builds the Lease parts: leader election, this replica's report, the others' reports, the wake Lease. */
export function coordinate(inputs: CoordinationInputs, callbacks: CoordinationCallbacks): Coordination {
  const { config, kubeConfig, clock, wakes } = inputs;
  const { emit } = callbacks;
  const ns = config.stsNamespace;
  const group = config.leaderElectionLeaseName;
  const ownLeaseName = `${group}-${config.identity}`;
  const store = new KubeLeaseStore(kubeConfig, ns);
  const labels = { 'app.kubernetes.io/managed-by': 'buildkitd-autoscaler', [leaseGroupLabel]: group };
  const leases = watchLeases(kubeConfig, ns, group, clock, emit);
  const leadershipListeners = new Set<() => void>();
  const elector = new LeaderElector(
    {
      store,
      name: group,
      identity: config.identity,
      labels: { ...labels, [leaseRoleLabel]: 'leader' },
      leaseDurationMs: config.leaderElectionLeaseDurationMs,
      renewDeadlineMs: config.leaderElectionRenewDeadlineMs,
      retryPeriodMs: config.leaderElectionRetryPeriodMs,
      clock,
    },
    { emit, leadershipChanged: () => leadershipListeners.forEach((listener) => listener()) },
  );
  const reports = new ReplicaReports({ leases: () => leases.objects(), ownLeaseName, leaderLeaseName: group, clock });
  const publisher = new ActivityPublisher(
    {
      store,
      leaseName: ownLeaseName,
      identity: config.identity,
      labels: { ...labels, [leaseRoleLabel]: 'activity' },
      leaseDurationMs: config.leaderElectionLeaseDurationMs,
      renewPeriodMs: config.leaderElectionRetryPeriodMs,
      connectionsPerReplica: builderShare(config),
      podCountsRaise: config.maxConnectionsPerReplica > 0,
      clock,
      read: () => ({
        ...inputs.activity.snapshot(),
        ack: inputs.acknowledged(),
        draining: inputs.draining(),
        wake: wakes.current(),
        ops: inputs.opsAddress(),
      }),
      ownerPod: ownerPod({ identity: config.identity, podUid: config.podUid, leaseNamespace: ns }),
    },
    {
      emit,
      // Campaigns for the lead only once its report Lease is its own, so the second of two processes with
      // one identity never leads.
      claimed: () => elector.start(),
      identityConflict: (error) => {
        // The other process owns this identity now: hand it the lead at once, then leave.
        void elector.stop();
        callbacks.fatal?.(error);
      },
    },
  );
  const partition = new PartitionCheck(
    {
      identity: config.identity,
      writtenAt: () => publisher.writtenAt,
      leaseDurationMs: config.leaderElectionLeaseDurationMs,
      probePeriodMs: config.leaderElectionRetryPeriodMs,
      peers: () => reports.peers(),
      askPeer: askPeerOverHttp,
      clock,
    },
    { emit },
  );
  const wakeLease = new WakeLease(
    {
      store,
      name: `${group}-wake`,
      labels: { ...labels, [leaseRoleLabel]: 'wake' },
      leases: () => leases.objects(),
      clock,
    },
    { emit },
  );
  const proposals = new LeaderLeaseProposalStore({ elector, watched: () => reports.proposal(), clock });
  leases.onChange(() => {
    reports.observe();
    const departed = reports.takeDepartedWakes();
    if (departed.length > 0) wakes.adopt(departed);
    // Also those whose every carrier is gone (all replicas replaced at once): the wake Lease kept them.
    wakes.adopt(wakeLease.read());
  });
  const leadership = { onChange: (listener: () => void) => void leadershipListeners.add(listener) };
  return { leases, elector, publisher, reports, partition, wakeLease, proposals, leadership };
}

/** Where the other replicas can ask this one: the address it listens on, or its pod IP when it listens on all. */
export function reachableOpsAddress(listening: string, port: number, podIp: string | undefined): string | undefined {
  const host = listening === '0.0.0.0' || listening === '::' ? podIp : listening;
  if (host === undefined) return undefined;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
