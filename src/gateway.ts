import type { KubeConfig, V1EndpointSlice, V1StatefulSet } from '@kubernetes/client-node';
import { BackendSet, type BackendSource } from './backends/backend-set.ts';
import { DnsBackends } from './backends/dns.ts';
import { EndpointSliceBackends } from './backends/endpoints.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import { ErrorCode } from './errors.ts';
import { createEventSink, type EmitEvent } from './events.ts';
import { OpsServer, type ReadinessCheck } from './http/server.ts';
import { watchEndpointSlices } from './kube/endpointslices.ts';
import { ScaleEventRecorder } from './kube/scale-events.ts';
import type { ResilientInformer } from './kube/informer.ts';
import { StatefulSetScale } from './kube/scale-subresource.ts';
import { watchStatefulSet } from './kube/statefulset.ts';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { ProxyListener } from './proxy/listener.ts';
import { PendingConnections } from './proxy/pending.ts';
import { Router } from './proxy/router.ts';
import { IdleTracker } from './scaler/idle.ts';
import { Scaler, type ScaleTarget } from './scaler/scaler.ts';

export interface GatewayOptions {
  config: Config;
  kubeConfig: KubeConfig;
  log: Logger;
  clock?: Clock;
  /** Replaces the scale subresource client (unit tests only). */
  scaleTarget?: ScaleTarget;
}

/** Wires the parts together: watches -> backends and scaler -> router -> listener, plus the ops server. */
export class Gateway {
  readonly metrics: Metrics;
  private readonly emit: EmitEvent;
  private readonly statefulSet: ResilientInformer<V1StatefulSet>;
  private readonly endpointSlices: ResilientInformer<V1EndpointSlice> | undefined;
  private readonly listener: ProxyListener;
  private readonly ops: OpsServer;
  private readonly pending: PendingConnections;
  private readonly scaler: Scaler;
  private readonly idle: IdleTracker;
  private readonly backends: BackendSet;
  private shuttingDown = false;
  private readonly config: Config;
  private readonly clock: Clock;

  constructor(options: GatewayOptions) {
    const { config, kubeConfig, log } = options;
    this.config = config;
    const clock = (this.clock = options.clock ?? systemClock);
    this.metrics = createMetrics();
    const ns = config.stsNamespace;
    const recorder = new ScaleEventRecorder(kubeConfig, ns, config.stsName, () => this.statefulSet.objects()[0]?.metadata?.uid, log);
    const emit = (this.emit = createEventSink(log, this.metrics, [recorder.observe]));

    this.statefulSet = watchStatefulSet(kubeConfig, ns, config.stsName, clock, emit);
    let source: BackendSource;
    if (config.backendDiscovery === 'endpoints') {
      this.endpointSlices = watchEndpointSlices(kubeConfig, ns, config.headlessServiceName, clock, emit);
      source = new EndpointSliceBackends(this.endpointSlices, config.stsName, config.targetPort, clock);
    } else {
      source = new DnsBackends(this.statefulSet, {
        statefulSetName: config.stsName,
        serviceName: config.headlessServiceName,
        namespace: ns,
        clusterDomain: config.clusterDomain,
        port: config.targetPort,
      });
    }
    this.backends = new BackendSet(source);
    this.pending = new PendingConnections(config.maxPending, clock, config.maxPendingBytes);
    this.pending.onSizeChange = (size) => this.metrics.connectionsHeld.set(size);
    this.pending.onBytesChange = (bytes) => this.metrics.pendingBytes.set(bytes);
    this.idle = new IdleTracker(clock, config.idleTimeoutMs, emit);
    this.scaler = new Scaler({
      target: options.scaleTarget ?? new StatefulSetScale(kubeConfig, ns, config.stsName),
      observe: () => this.observedState(),
      backends: this.backends,
      idle: this.idle,
      clock,
      emit,
      hasDemand: () => this.pending.size > 0,
    });
    this.scaler.onFailure((error) => this.pending.failAll(error));
    this.statefulSet.onChange(() => {
      const sts = this.statefulSet.objects()[0];
      this.metrics.replicas.set({ kind: 'desired' }, sts?.spec?.replicas ?? 0);
      this.metrics.replicas.set({ kind: 'ready' }, sts?.status?.readyReplicas ?? 0);
    });
    // Decisions need every watch synced, so any of them syncing may be the moment to start the idle timer.
    for (const informer of this.informers()) informer.onChange(() => this.scaler.observedStateChanged());
    let lastReady = '';
    this.backends.onChange(() => {
      const ready = this.backends.ready().map((b) => `${b.podName}=${b.host}:${b.port}`);
      this.metrics.readyBackends.set(ready.length);
      const text = ready.join(',');
      if (text !== lastReady) {
        lastReady = text;
        emit({ kind: 'backends_changed', ready });
      }
    });
    const router = new Router({
      backends: this.backends,
      pending: this.pending,
      scaler: this.scaler,
      idle: this.idle,
      clock,
      emit,
      readyWaitTimeoutMs: config.readyWaitTimeoutMs,
    });
    this.listener = new ProxyListener({
      address: config.listenAddr,
      maxConnections: config.maxConnections,
      emit,
      handle: (socket) => router.handle(socket),
      onOpenChange: (open) => this.metrics.connectionsOpen.set(open),
    });
    this.ops = new OpsServer({ address: config.metricsAddr, registry: this.metrics.registry, readiness: () => this.readiness(), emit });
    this.metrics.observeWatches(() => this.informers());
  }

  async start(): Promise<{ proxyPort: number; metricsPort: number }> {
    const metrics = await this.ops.start();
    for (const informer of this.informers()) informer.start();
    const proxy = await this.listener.start();
    return { proxyPort: proxy.port, metricsPort: metrics.port };
  }

  /** Graceful stop: refuse new connections, report not ready, let open ones finish within the grace period. */
  async shutdown(signal: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.idle.disarm();
    this.emit({ kind: 'shutdown_started', signal, openConnections: this.listener.openConnections, graceMs: this.config.shutdownGraceMs });
    const drained = this.listener.stopAccepting();
    let closedByForce = 0;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(this.config.shutdownGraceMs, () => {
        closedByForce = this.listener.destroyAll();
        resolve();
      });
      void drained.then(() => {
        timer.cancel();
        resolve();
      });
    });
    await Promise.all(this.informers().map((informer) => informer.stop()));
    this.emit({ kind: 'shutdown_finished', closedByForce });
    await this.ops.stop();
  }

  private informers(): ResilientInformer<V1StatefulSet | V1EndpointSlice>[] {
    return [this.statefulSet, ...(this.endpointSlices ? [this.endpointSlices] : [])] as ResilientInformer<V1StatefulSet | V1EndpointSlice>[];
  }

  /** Logs and counts a failure nothing else caught (the process-level safety net), and keeps running. */
  reportInternalError(what: string, error: unknown): void {
    this.emit({ kind: 'internal_error', code: ErrorCode.Internal, what, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }

  private observedState() {
    const synced = this.informers().every((informer) => informer.state.synced);
    const sts = this.statefulSet.objects()[0];
    const forbidden = this.informers().find((informer) => informer.state.failure?.code === ErrorCode.WatchForbidden);
    return {
      synced,
      exists: !this.statefulSet.state.synced || sts !== undefined,
      desiredReplicas: sts?.spec?.replicas ?? 0,
      forbiddenWatch: forbidden ? { resource: forbidden.resource, message: forbidden.state.failure?.message ?? '' } : undefined,
    };
  }

  private readiness(): ReadinessCheck[] {
    const checks: ReadinessCheck[] = [
      { name: 'listener', ok: this.listener.listening && !this.shuttingDown, ...(this.shuttingDown ? { reason: 'shutting down' } : {}) },
    ];
    for (const informer of this.informers()) {
      const { synced, failure } = informer.state;
      checks.push({
        name: `watch ${informer.resource}`,
        ok: synced,
        ...(synced ? {} : { reason: failure ? `${failure.code}: ${failure.message}` : 'not synced yet' }),
      });
    }
    const failure = this.scaler.readinessFailure();
    checks.push({ name: 'scale', ok: failure === undefined, ...(failure ? { reason: `${failure.code}: ${failure.message}` } : {}) });
    return checks;
  }
}
