import type { KubeConfig, KubernetesObject, V1EndpointSlice, V1StatefulSet } from '@kubernetes/client-node';
import { BackendSet } from './backends/backend-set.ts';
import type { DrainingNodes } from './backends/draining-nodes.ts';
import { discoverBackends } from './backend-discovery.ts';
import { systemClock, type Clock } from './clock.ts';
import { ClusterView } from './cluster-view.ts';
import type { Config } from './config.ts';
import { coordinate, reachableOpsAddress, type Coordination } from './coordination.ts';
import { ErrorCode, type GatewayError } from './errors.ts';
import { createEventSink } from './event-sink.ts';
import type { EmitEvent } from './events.ts';
import type { OpsServer } from './http/server.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { ScaleEventRecorder } from './kube/scale-events.ts';
import { watchStatefulSet } from './kube/statefulset.ts';
import type { Logger } from './log.ts';
import { followInMetrics } from './gateway-metrics.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { CapacityQueue } from './proxy/capacity-queue.ts';
import { ProxyListener } from './proxy/listener.ts';
import { PendingConnections } from './proxy/pending.ts';
import { Router } from './proxy/router.ts';
import { createOpsServer } from './ops.ts';
import { readinessChecks } from './readiness.ts';
import { reconcileTriggers } from './reconcile-triggers.ts';
import { LocalActivity } from './scaler/activity.ts';
import type { ScaleTarget } from './scaler/actuator.ts';
import { WakeRequests } from './scaler/wake-requests.ts';
import { buildScaler, type ScalerParts } from './scaling.ts';
import { shutDown } from './shutdown.ts';
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

/**
 * What the gateway is made of and how the parts are connected: watches -> backends and the scale controller
 * -> router -> listener, the Leases shared with the other replicas, and the ops server. What makes the
 * controller decide is listed in reconcile-triggers.ts; readiness, the cluster view, the Lease parts and the
 * shutdown order have files of their own.
 */
export class Gateway {
  readonly metrics: Metrics;
  private readonly config: Config;
  private readonly clock: Clock;
  private readonly emit: EmitEvent;
  private readonly statefulSet: ResilientInformer<V1StatefulSet>;
  private readonly endpointSlices: ResilientInformer<V1EndpointSlice> | undefined;
  /** Nodes being drained (--watch-nodes); EndpointSlices name each pod's node, DNS names do not. */
  private readonly drainingNodes: DrainingNodes | undefined;
  private readonly coordination: Coordination | undefined;
  private readonly scaler: ScalerParts;
  private readonly router: Router;
  private readonly listener: ProxyListener;
  private readonly ops: OpsServer;
  private shuttingDown = false;
  /** "ip:port" where the other replicas reach this one's ops server; known once it listens. */
  private opsAddress: string | undefined;

  constructor(options: GatewayOptions) {
    const { config, kubeConfig, log } = options;
    const ns = config.stsNamespace;
    this.config = config;
    const clock = (this.clock = options.clock ?? systemClock);
    const metrics = (this.metrics = createMetrics());
    const recorder = new ScaleEventRecorder(
      { kubeConfig, namespace: ns, statefulSetName: config.stsName, identity: config.identity },
      {
        statefulSetUid: () => this.statefulSet.objects()[0]?.metadata?.uid,
        onRecordFailed: (error) => log.debug({ err: error }, 'could not record a Kubernetes Event'),
      },
    );
    const emit = (this.emit = createEventSink(log, metrics, [recorder.observe]));

    // Watches and the backend source.
    const statefulSet = (this.statefulSet = watchStatefulSet(kubeConfig, ns, config.stsName, clock, emit));
    const discovery = discoverBackends({ config, kubeConfig, statefulSet, clock }, { emit });
    const { source } = discovery;
    ({ endpointSlices: this.endpointSlices, drainingNodes: this.drainingNodes } = discovery);
    const cluster = new ClusterView(
      { statefulSet, discovery, decisionWatches: () => this.informers() },
      {
        emit,
        statefulSetSeen: () => actuator.statefulSetSeen(),
        wakeCannotWork: (failure) => pending.failAll(failure),
      },
    );

    // This replica's demand, and the Lease parts shared with the other replicas (with leader election).
    const activity = new LocalActivity({ clock });
    const wakes = new WakeRequests({ clock });
    const coordination: Coordination | undefined = (this.coordination = config.leaderElection
      ? coordinate(
          {
            config,
            kubeConfig,
            clock,
            wakes,
            activity,
            acknowledged: () => controller.acknowledged,
            draining: () => this.shuttingDown,
            opsAddress: () => this.opsAddress,
          },
          { emit, fatal: options.onFatal },
        )
      : undefined);
    // A lone gateway without leader election decides alone: it is the leader for alerting purposes.
    if (!coordination) metrics.leader.set(1);

    // Decide and act.
    const pending = new PendingConnections(
      { maxPending: config.maxPending, maxPendingBytes: config.maxPendingBytes, clock },
      {
        onSizeChange: (size) => metrics.connectionsHeld.set(size),
        onBytesChange: (bytes) => metrics.pendingBytes.set(bytes),
      },
    );
    // Registered on the source before the controller's trigger, so held clients see a pod before it is decided on.
    const backends = new BackendSet(source, (fresh) => controller.routing(fresh), {
      affinity: config.affinity,
      connectionsPerReplica: config.connectionsPerReplica,
      maxConnectionsPerReplica: config.maxConnectionsPerReplica,
    });
    const scaler: ScalerParts = (this.scaler = buildScaler(
      {
        config,
        kubeConfig,
        clock,
        scaleTarget: options.scaleTarget,
        cluster,
        activity,
        wakes,
        coordination,
        triggers: reconcileTriggers({ activity, wakes, statefulSet, discovery, coordination }),
      },
      {
        emit,
        scaleFailed: (error) => pending.failAll(error),
        routingChanged: () => backends.routableChanged(),
      },
    ));
    const { actuator, controller } = scaler;
    // A reason why waking cannot work now: held and new clients fail at once with it.
    const currentFailure = () => cluster.failure() ?? actuator.currentFailure();

    // Route and serve.
    const capacityQueue = new CapacityQueue({ onSizeChange: (size) => metrics.connectionsQueued.set(size) });
    const router = (this.router = new Router(
      {
        backends,
        pending,
        clock,
        readyWaitTimeoutMs: config.readyWaitTimeoutMs,
        wakeOn: config.wakeOn,
        firstByteTimeoutMs: config.firstByteTimeoutMs,
        capacityQueue,
      },
      { emit, arrive: () => activity.arrive(), currentFailure },
    ));
    this.listener = new ProxyListener(
      { address: config.listenAddr, maxConnections: config.maxConnections },
      {
        emit,
        handle: (socket) => router.handle(socket),
        onOpenChange: (open) => metrics.connectionsOpen.set(open),
      },
    );
    this.ops = createOpsServer(
      {
        config,
        registry: metrics.registry,
        readiness: () =>
          readinessChecks({
            listening: this.listener.listening,
            shuttingDown: this.shuttingDown,
            watches: this.informers(),
            watchedFailure: cluster.failure(),
            actuatorFailure: actuator.readinessFailure(),
            coordination,
          }),
        flushLog: () => log.flush(),
        wakes,
        coordination,
        wakeFailure: () => currentFailure() ?? actuator.readinessFailure(),
        wakeStatus: () => ({ wake: controller.decision?.wake, readyBuilders: backends.ready().length }),
      },
      { emit },
    );

    // Metrics and logs that follow the parts.
    followInMetrics(
      {
        metrics,
        statefulSet,
        backends,
        watches: () => [...this.informers(), scaler.busyPods],
        loads: () => controller.decision?.loads ?? {},
        partition: coordination?.partition,
      },
      { emit },
    );
  }

  async start(): Promise<{ proxyPort: number; metricsPort: number }> {
    const metrics = await this.ops.start();
    this.opsAddress = reachableOpsAddress(metrics.address, metrics.port, this.config.podIp);
    this.collectGarbageOnceSynced();
    for (const informer of this.informers()) informer.start();
    this.drainingNodes?.start();
    // Not among informers(): without RBAC for pods builds still flow, only the marks fail (BKA_WATCH_FORBIDDEN).
    this.scaler.busyPods.start();
    if (this.coordination) {
      // Refuses to run next to another live process with the same identity (BKA_IDENTITY_CONFLICT); the
      // elector campaigns once the report Lease is claimed (coordination.ts).
      await this.coordination.publisher.start();
      this.coordination.partition.start();
    }
    this.scaler.controller.start();
    const proxy = await this.listener.start();
    return { proxyPort: proxy.port, metricsPort: metrics.port };
  }

  /** Graceful stop, in the order shutdown.ts gives. */
  async shutdown(signal: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    await shutDown({
      clock: this.clock,
      emit: this.emit,
      signal,
      shutdownDelayMs: this.config.shutdownDelayMs,
      shutdownGraceMs: this.config.shutdownGraceMs,
      listener: this.listener,
      router: this.router,
      marker: this.scaler.marker,
      controller: this.scaler.controller,
      coordination: this.coordination,
      watches: [...this.informers(), this.scaler.busyPods, ...(this.drainingNodes ? [this.drainingNodes] : [])],
      ops: this.ops,
    });
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

  /** The watches the scaler decides from (and /readyz checks): StatefulSet, EndpointSlices, Leases. */
  private informers(): ResilientInformer<KubernetesObject>[] {
    return [
      this.statefulSet,
      ...(this.endpointSlices ? [this.endpointSlices] : []),
      ...(this.coordination ? [this.coordination.leases] : []),
    ] as ResilientInformer<KubernetesObject>[];
  }
}
