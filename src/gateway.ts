import { readFileSync } from 'node:fs';
import type { KubeConfig, V1EndpointSlice, V1Lease, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { BackendSet, type BackendSource } from './backends/backend-set.ts';
import { DnsBackends } from './backends/dns.ts';
import { DrainingNodes } from './backends/draining-nodes.ts';
import { EndpointSliceBackends } from './backends/endpoints.ts';
import { builderShare } from './capacity.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import { ErrorCode, GatewayError } from './errors.ts';
import { createEventSink, type EmitEvent } from './events.ts';
import { ActivityPublisher } from './ha/activity-publisher.ts';
import { LeaderElector } from './ha/leader-election.ts';
import { LeaderLeaseProposalStore } from './ha/leader-lease-proposals.ts';
import { askPeerOverHttp, PartitionCheck } from './ha/partition-check.ts';
import { ReplicaReports } from './ha/replica-reports.ts';
import { WakeLease } from './ha/wake-lease.ts';
import { OpsServer } from './http/server.ts';
import { watchEndpointSlices } from './kube/endpointslices.ts';
import { KubePods, watchLabelledPods } from './kube/pods.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { KubeLeaseStore, leaseGroupLabel, leaseRoleLabel, watchLeases } from './kube/leases.ts';
import { watchNodes } from './kube/nodes.ts';
import { ScaleEventRecorder } from './kube/scale-events.ts';
import { StatefulSetScale } from './kube/scale-subresource.ts';
import { watchStatefulSet } from './kube/statefulset.ts';
import type { Logger } from './log.ts';
import type { ReadinessCheck } from './readiness.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { ProxyListener } from './proxy/listener.ts';
import { CapacityQueue } from './proxy/capacity-queue.ts';
import { PendingConnections } from './proxy/pending.ts';
import { Router } from './proxy/router.ts';
import { LocalActivity } from './scaler/activity.ts';
import { ScaleActuator, type ScaleTarget } from './scaler/actuator.ts';
import { busyLabel } from './scaler/busy-mark-patches.ts';
import { BusyMarker } from './scaler/busy-marks.ts';
import { ScaleController, type ObservedCluster } from './scaler/controller.ts';
import { LocalProposalStore, type ProposalStore } from './scaler/proposal-store.ts';
import { WakeRequests } from './scaler/wake-requests.ts';
import { collectStartupGarbage } from './startup-garbage.ts';

export interface GatewayOptions {
  config: Config;
  kubeConfig: KubeConfig;
  log: Logger;
  clock?: Clock;
  /** Replaces the scale subresource client (unit tests only). */
  scaleTarget?: ScaleTarget;
  /** A failure this process must exit for, seen while running (another process took over its identity). */
  onFatal?: (error: GatewayError) => void;
}

/** The pieces that exist only with leader election: Leases shared with the other gateway replicas. */
interface Coordination {
  leases: ResilientInformer<V1Lease>;
  elector: LeaderElector;
  publisher: ActivityPublisher;
  reports: ReplicaReports;
  partition: PartitionCheck;
  wakeLease: WakeLease;
}

const serviceAccountNamespaceFile = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/**
 * Wires the parts together: watches -> backends and the scale controller -> router -> listener, plus the
 * Leases shared with the other gateway replicas and the ops server.
 */
export class Gateway {
  readonly metrics: Metrics;
  private readonly emit: EmitEvent;
  private readonly statefulSet: ResilientInformer<V1StatefulSet>;
  private readonly endpointSlices: ResilientInformer<V1EndpointSlice> | undefined;
  /** Nodes being drained (--watch-nodes); EndpointSlices name each pod's node, DNS names do not. */
  private readonly drainingNodes: DrainingNodes | undefined;
  private drainingPods = '';
  private readonly coordination: Coordination | undefined;
  private readonly listener: ProxyListener;
  private readonly router: Router;
  private readonly ops: OpsServer;
  private readonly pending: PendingConnections;
  private readonly activity: LocalActivity;
  private readonly wakes: WakeRequests;
  private readonly actuator: ScaleActuator;
  private readonly controller: ScaleController;
  /** Builder pods carrying the busy label: what the marker compares the reports with. */
  private readonly busyPods: ResilientInformer<V1Pod>;
  private readonly marker: BusyMarker;
  private readonly source: BackendSource;
  private shuttingDown = false;
  /** "ip:port" where the other replicas reach this one's ops server; known once it listens. */
  private opsAddress: string | undefined;
  private readonly config: Config;
  private readonly clock: Clock;

  constructor(options: GatewayOptions) {
    const { config, kubeConfig, log } = options;
    this.config = config;
    const clock = (this.clock = options.clock ?? systemClock);
    this.metrics = createMetrics();
    const ns = config.stsNamespace;
    const recorder = new ScaleEventRecorder(
      kubeConfig,
      ns,
      config.stsName,
      () => this.statefulSet.objects()[0]?.metadata?.uid,
      log,
      config.identity,
    );
    const emit = (this.emit = createEventSink(log, this.metrics, [recorder.observe]));

    this.statefulSet = watchStatefulSet(kubeConfig, ns, config.stsName, clock, emit);
    if (config.backendDiscovery === 'endpoints') {
      this.endpointSlices = watchEndpointSlices(kubeConfig, ns, config.headlessServiceName, clock, emit);
      this.source = new EndpointSliceBackends(this.endpointSlices, config.stsName, config.targetPort, clock);
      if (config.watchNodes)
        this.drainingNodes = new DrainingNodes((nodeEmit) => watchNodes(kubeConfig, clock, nodeEmit), emit);
    } else {
      this.source = new DnsBackends(this.statefulSet, {
        statefulSetName: config.stsName,
        serviceName: config.headlessServiceName,
        namespace: ns,
        clusterDomain: config.clusterDomain,
        port: config.targetPort,
      });
    }
    this.activity = new LocalActivity(clock);
    this.wakes = new WakeRequests(clock);
    this.actuator = new ScaleActuator({
      target: options.scaleTarget ?? new StatefulSetScale(kubeConfig, ns, config.stsName),
      clock,
      emit,
    });
    this.coordination = config.leaderElection ? this.coordinate(kubeConfig, clock, emit, options.onFatal) : undefined;
    // A lone gateway without leader election decides alone: it is the leader for alerting purposes.
    if (!this.coordination) this.metrics.leader.set(1);
    const coordination = this.coordination;
    const proposals: ProposalStore = coordination
      ? new LeaderLeaseProposalStore(coordination.elector, () => coordination.reports.proposal(), clock)
      : new LocalProposalStore();
    this.controller = new ScaleController({
      statefulSetName: config.stsName,
      identity: config.identity,
      policy: {
        minReplicas: config.minReplicas,
        maxReplicas: config.maxReplicas,
        connectionsPerReplica: config.connectionsPerReplica,
        maxConnectionsPerReplica: config.maxConnectionsPerReplica,
        idleTimeoutMs: config.idleTimeoutMs,
        maxReportStalenessMs: config.maxReportStalenessMs,
        proposalTimeoutMs: config.leaderElectionLeaseDurationMs,
      },
      observe: () => this.observe(),
      activity: this.activity,
      wakes: this.wakes,
      otherReports: () => coordination?.reports.reports() ?? [],
      departedActivity: () => coordination?.reports.departedActivity() ?? new Map<string, number>(),
      proposals,
      isLeader: () => coordination?.elector.isLeader ?? true,
      leadership: () => coordination?.elector.leadership,
      actuator: this.actuator,
      clock,
      emit,
      resyncMs: config.leaderElectionRetryPeriodMs,
    });
    const backends = new BackendSet(this.source, (fresh) => this.controller.routing(fresh), {
      affinity: config.affinity,
      connectionsPerReplica: config.connectionsPerReplica,
      maxConnectionsPerReplica: config.maxConnectionsPerReplica,
    });
    this.controller.onRoutableChange(() => backends.routableChanged());
    this.busyPods = watchLabelledPods(kubeConfig, ns, busyLabel, clock, emit);
    const builderName = new RegExp(`^${config.stsName.replaceAll('.', '\\.')}-\\d+$`);
    const marker = (this.marker = new BusyMarker({
      busyPods: () => Object.keys(this.controller.decision?.loads ?? {}),
      labelledPods: () => this.busyPods.objects(),
      labelledPodsSynced: () => this.busyPods.state.everSynced,
      isWriter: () => coordination?.elector.isLeader ?? true,
      isBuilder: (name) => builderName.test(name),
      pods: new KubePods(kubeConfig, ns),
      clock,
      emit,
    }));
    this.controller.onReportChange(() => marker.requestReconcile());
    this.busyPods.onChange(() => marker.requestReconcile());
    if (coordination) {
      this.controller.onReportChange(() => coordination.publisher.publishSoon());
      coordination.elector.onChange(() => {
        this.controller.requestReconcile();
        marker.requestReconcile();
      });
      coordination.leases.onChange(() => {
        coordination.reports.observe();
        const departed = coordination.reports.takeDepartedWakes();
        if (departed.length > 0) this.wakes.adopt(departed);
        // Also those whose every carrier is gone (all replicas replaced at once): the wake Lease kept them.
        this.wakes.adopt(coordination.wakeLease.read());
        this.controller.requestReconcile();
      });
    }
    for (const informer of [this.statefulSet, ...(this.endpointSlices ? [this.endpointSlices] : [])]) {
      informer.onChange(() => {
        this.controller.requestReconcile();
        if (this.statefulSet.state.synced && this.statefulSet.objects().length > 0) this.actuator.statefulSetSeen();
        // Held clients learn at once that a wake-up cannot be seen or done (forbidden watch, no StatefulSet).
        const failure = this.observedFailure();
        if (failure) this.pending.failAll(failure);
      });
    }
    this.source.onChange(() => this.controller.requestReconcile());
    this.drainingNodes?.onChange(() => this.controller.requestReconcile());

    this.pending = new PendingConnections(config.maxPending, clock, config.maxPendingBytes);
    this.pending.onSizeChange = (size) => this.metrics.connectionsHeld.set(size);
    this.pending.onBytesChange = (bytes) => this.metrics.pendingBytes.set(bytes);
    this.actuator.onFailure((error) => this.pending.failAll(error));
    const capacityQueue = new CapacityQueue();
    capacityQueue.onSizeChange = (size) => this.metrics.connectionsQueued.set(size);
    this.statefulSet.onChange(() => {
      const sts = this.statefulSet.objects()[0];
      this.metrics.replicas.set({ kind: 'desired' }, sts?.spec?.replicas ?? 0);
      this.metrics.replicas.set({ kind: 'ready' }, sts?.status?.readyReplicas ?? 0);
    });
    let lastReady = '';
    backends.onChange(() => {
      const ready = backends.ready().map((b) => `${b.podName}=${b.host}:${b.port}`);
      this.metrics.readyBackends.set(ready.length);
      const text = ready.join(',');
      if (text !== lastReady) {
        lastReady = text;
        emit({ kind: 'backends_changed', ready });
      }
    });
    const router = (this.router = new Router({
      backends,
      pending: this.pending,
      demand: { arrive: () => this.activity.arrive(), currentFailure: () => this.currentFailure() },
      clock,
      emit,
      readyWaitTimeoutMs: config.readyWaitTimeoutMs,
      wakeOn: config.wakeOn,
      firstByteTimeoutMs: config.firstByteTimeoutMs,
      capacityQueue,
    }));
    this.listener = new ProxyListener({
      address: config.listenAddr,
      maxConnections: config.maxConnections,
      emit,
      handle: (socket) => router.handle(socket),
      onOpenChange: (open) => this.metrics.connectionsOpen.set(open),
    });
    this.ops = new OpsServer({
      address: config.metricsAddr,
      registry: this.metrics.registry,
      readiness: () => this.readiness(),
      emit,
      flushLog: () => options.log.flush(),
      ...(coordination ? { report: () => coordination.partition.status() } : {}),
      wake: {
        maxReplicas: config.maxReplicas,
        defaultForMs: config.idleTimeoutMs,
        failure: () => this.currentFailure() ?? this.actuator.readinessFailure(),
        request: (replicas, forMs, client) => {
          const recorded = this.wakes.request(replicas, forMs);
          void coordination?.wakeLease.record(this.wakes.current());
          emit({ kind: 'wake_requested', replicas, forMs, until: new Date(recorded.until).toISOString(), client });
          return recorded;
        },
        status: () => ({ wake: this.controller.decision?.wake, readyBuilders: backends.ready().length }),
      },
    });
    this.metrics.observeWatches(() => [...this.informers(), this.busyPods]);
    this.metrics.observePodLoads(() => this.controller.decision?.loads ?? {});
    if (coordination) this.metrics.observeReportWriteAge(() => coordination.partition.unwrittenMs());
  }

  async start(): Promise<{ proxyPort: number; metricsPort: number }> {
    const metrics = await this.ops.start();
    this.opsAddress = reachableOpsAddress(metrics.address, metrics.port, this.config.podIp);
    this.collectGarbageOnceSynced();
    for (const informer of this.informers()) informer.start();
    this.drainingNodes?.start();
    // Not among informers(): without RBAC for pods builds still flow, only the marks fail (BKA_WATCH_FORBIDDEN).
    this.busyPods.start();
    if (this.coordination) {
      // Refuses to run next to another live process with the same identity (BKA_IDENTITY_CONFLICT); campaigns
      // for the lead only once its report Lease is its own, so the second of two such processes never leads.
      await this.coordination.publisher.start();
      const { elector } = this.coordination;
      this.coordination.publisher.onClaimed(() => elector.start());
      this.coordination.partition.start();
    }
    this.controller.start();
    const proxy = await this.listener.start();
    return { proxyPort: proxy.port, metricsPort: metrics.port };
  }

  /**
   * Graceful stop: refuse new connections, report not ready, let open ones finish within the grace period.
   * The activity report keeps being published until the last connection closed (so no other replica
   * scales down under a draining build), then it is deleted and the leader Lease released.
   */
  async shutdown(signal: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.emit({
      kind: 'shutdown_started',
      signal,
      openConnections: this.listener.openConnections,
      graceMs: this.config.shutdownGraceMs,
    });
    this.coordination?.publisher.publishSoon();
    // Not ready from now on, but still accepting: Services keep sending new clients until the endpoint's
    // removal has reached every node, and a refused client is a failed build.
    if (this.config.shutdownDelayMs > 0)
      await new Promise<void>((resolve) => this.clock.setTimer(this.config.shutdownDelayMs, resolve));
    this.emit({ kind: 'listener_closed', openConnections: this.listener.openConnections });
    const drained = this.listener.stopAccepting();
    let closedByForce = 0;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(this.config.shutdownGraceMs, () => {
        // The cause becomes each connection's recorded error: its access line says closed_by_shutdown.
        const cause = new GatewayError(
          ErrorCode.ShutdownClosed,
          'closed at the end of the shutdown grace period (--shutdown-grace)',
        );
        closedByForce = this.listener.destroyAll(cause);
        this.router.destroySpliced(cause);
        resolve();
      });
      // Drained: every client socket closed and every connection's access line emitted.
      void drained
        .then(() => this.router.untilAllLogged())
        .then(() => {
          timer.cancel();
          resolve();
        });
    });
    await this.router.untilAllLogged();
    await this.marker.finish();
    this.controller.stop();
    if (this.coordination) {
      this.coordination.partition.stop();
      await this.coordination.publisher.stop();
      await this.coordination.elector.stop();
    }
    await Promise.all([
      ...[...this.informers(), this.busyPods].map((informer) => informer.stop()),
      this.drainingNodes?.stop(),
    ]);
    this.emit({ kind: 'shutdown_finished', closedByForce });
    await this.ops.stop();
  }

  private coordinate(
    kubeConfig: KubeConfig,
    clock: Clock,
    emit: EmitEvent,
    onFatal: GatewayOptions['onFatal'],
  ): Coordination {
    const { config } = this;
    const ns = config.stsNamespace;
    const group = config.leaderElectionLeaseName;
    const ownLeaseName = `${group}-${config.identity}`;
    const store = new KubeLeaseStore(kubeConfig, ns);
    const labels = { 'app.kubernetes.io/managed-by': 'buildkitd-autoscaler', [leaseGroupLabel]: group };
    const leases = watchLeases(kubeConfig, ns, group, clock, emit);
    const elector = new LeaderElector({
      store,
      name: group,
      identity: config.identity,
      labels: { ...labels, [leaseRoleLabel]: 'leader' },
      leaseDurationMs: config.leaderElectionLeaseDurationMs,
      renewDeadlineMs: config.leaderElectionRenewDeadlineMs,
      retryPeriodMs: config.leaderElectionRetryPeriodMs,
      clock,
      emit,
    });
    const reports = new ReplicaReports({ leases: () => leases.objects(), ownLeaseName, leaderLeaseName: group, clock });
    const publisher = new ActivityPublisher({
      store,
      leaseName: ownLeaseName,
      identity: config.identity,
      labels: { ...labels, [leaseRoleLabel]: 'activity' },
      leaseDurationMs: config.leaderElectionLeaseDurationMs,
      renewPeriodMs: config.leaderElectionRetryPeriodMs,
      connectionsPerReplica: builderShare(config),
      podCountsRaise: config.maxConnectionsPerReplica > 0,
      clock,
      emit,
      read: () => ({
        ...this.activity.snapshot(),
        ack: this.controller.acknowledged,
        draining: this.shuttingDown,
        wake: this.wakes.current(),
        ops: this.opsAddress,
      }),
      ownerPod: this.ownerPod(),
      onIdentityConflict: (error) => {
        // The other process owns this identity now: hand it the lead at once, then leave.
        void elector.stop();
        onFatal?.(error);
      },
    });
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
    return { leases, elector, publisher, reports, partition, wakeLease };
  }

  /** Owner references cannot cross namespaces: only a pod in the Leases' namespace can own its report. */
  private ownerPod(): { name: string; uid: string } | undefined {
    const { podUid, identity, stsNamespace } = this.config;
    if (podUid === undefined) return undefined;
    let podNamespace: string | undefined;
    try {
      podNamespace = readFileSync(serviceAccountNamespaceFile, 'utf8').trim();
    } catch {
      podNamespace = undefined;
    }
    return podNamespace === undefined || podNamespace === stsNamespace ? { name: identity, uid: podUid } : undefined;
  }

  /** Once every watch has listed, start-up's garbage is dead: collect it (collectStartupGarbage). */
  private collectGarbageOnceSynced(): void {
    const informers = this.informers();
    const unsubscribe = informers.map((informer) =>
      informer.onChange(() => {
        if (!informers.every((i) => i.state.everSynced)) return;
        for (const stop of unsubscribe) stop();
        setTimeout(collectStartupGarbage, 500).unref();
      }),
    );
  }

  private informers(): ResilientInformer<V1StatefulSet | V1EndpointSlice | V1Lease>[] {
    return [
      this.statefulSet,
      ...(this.endpointSlices ? [this.endpointSlices] : []),
      ...(this.coordination ? [this.coordination.leases] : []),
    ] as ResilientInformer<V1StatefulSet | V1EndpointSlice | V1Lease>[];
  }

  private observe(): ObservedCluster {
    const synced = this.informers().every((informer) => informer.state.synced);
    const stsSynced = this.statefulSet.state.synced || this.statefulSet.state.everSynced;
    const sts = this.statefulSet.objects()[0];
    const drainingNodes = this.drainingNodes?.names();
    const pods = this.source
      .pods()
      .filter((pod) => pod.ordinal >= 0)
      .map((pod) => ({
        name: pod.podName,
        ordinal: pod.ordinal,
        key: pod.key,
        ready: pod.ready,
        terminating: pod.terminating,
        draining: pod.nodeName !== undefined && drainingNodes?.has(pod.nodeName) === true,
      }));
    this.reportDrainingPods(pods);
    return {
      synced,
      statefulSet: stsSynced ? { exists: sts !== undefined, replicas: sts?.spec?.replicas ?? 0 } : undefined,
      pods,
    };
  }

  /** One log line whenever the set of builders on draining nodes changes. */
  private reportDrainingPods(pods: readonly { name: string; draining: boolean }[]): void {
    const draining = pods.filter((pod) => pod.draining).map((pod) => pod.name);
    const text = draining.join(',');
    if (text === this.drainingPods) return;
    this.drainingPods = text;
    this.emit({ kind: 'builders_draining', pods: draining });
  }

  /** A reason why waking cannot work now: held and new clients fail at once with it. */
  private currentFailure(): GatewayError | undefined {
    return this.observedFailure() ?? this.actuator.currentFailure();
  }

  /** Failures the watches show (StatefulSet missing, a watch forbidden): they last as long as the watch says. */
  private observedFailure(): GatewayError | undefined {
    if (this.statefulSet.state.synced && this.statefulSet.objects().length === 0) {
      return new GatewayError(ErrorCode.StatefulSetNotFound, 'the buildkitd StatefulSet does not exist');
    }
    // Only the watches a wake-up is seen through; a forbidden Lease watch shows on /readyz instead.
    const forbidden = [this.statefulSet, ...(this.endpointSlices ? [this.endpointSlices] : [])].find(
      (informer) => informer.state.failure?.code === ErrorCode.WatchForbidden,
    );
    if (forbidden) {
      return new GatewayError(
        ErrorCode.WatchForbidden,
        `the watch of ${forbidden.resource} is forbidden, so a wake-up could not be seen: ${forbidden.state.failure?.message ?? ''}`,
      );
    }
    return undefined;
  }

  /** Logs and counts a failure nothing else caught (the process-level safety net), and keeps running. */
  reportInternalError(what: string, error: unknown): void {
    this.emit({
      kind: 'internal_error',
      code: ErrorCode.Internal,
      what,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }

  private readiness(): ReadinessCheck[] {
    const checks: ReadinessCheck[] = [
      {
        name: 'listener',
        ok: this.listener.listening && !this.shuttingDown,
        ...(this.shuttingDown ? { reason: 'shutting down' } : {}),
      },
    ];
    for (const informer of this.informers()) {
      const { synced, everSynced, failure } = informer.state;
      // A watch that fails after its first sync is reported here and in metrics but keeps the pod in the
      // Service: every replica sees the same API outage, and open and new builds can still be served.
      checks.push({
        name: `watch ${informer.resource}`,
        ok: everSynced,
        ...(synced ? {} : { reason: failure ? `${failure.code}: ${failure.message}` : 'not synced yet' }),
      });
    }
    const missing = this.observedFailure();
    const failure = missing?.code === ErrorCode.StatefulSetNotFound ? missing : this.actuator.readinessFailure();
    checks.push({
      name: 'scale',
      ok: failure === undefined,
      ...(failure ? { reason: `${failure.code}: ${failure.message}` } : {}),
    });
    if (this.coordination) {
      const { elector } = this.coordination;
      checks.push({
        name: 'leader election',
        ok: true,
        reason: elector.isLeader ? 'leading' : `following ${elector.holder ?? 'no leader yet'}`,
      });
      checks.push(this.coordination.partition.readiness());
    }
    return checks;
  }
}

/** Where the other replicas can ask this one: the address it listens on, or its pod IP when it listens on all. */
function reachableOpsAddress(listening: string, port: number, podIp: string | undefined): string | undefined {
  const host = listening === '0.0.0.0' || listening === '::' ? podIp : listening;
  if (host === undefined) return undefined;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
