import { ErrorCode } from './errors.ts';

/** What a code in a log line means and what to do about it; docs/troubleshooting.md's table is generated from this. */
export interface ErrorDoc {
  meaning: string;
  remedy: string;
}

// A Record over every code: a new code in errors.ts does not compile until it is explained here.
export const errorDocs: Record<ErrorCode, ErrorDoc> = {
  [ErrorCode.ConfigInvalid]: {
    meaning:
      'a flag or environment variable has a value the gateway refuses; it exits 2 with one line naming flag, variable and value',
    remedy: 'fix that value (`--print-config` shows every effective value and where it came from)',
  },
  [ErrorCode.ReadyTimeout]: {
    meaning: 'a held client waited `READY_WAIT_TIMEOUT` and no buildkitd pod accepted; the client is closed',
    remedy:
      'see why the pod is not Ready: `kubectl describe pod`, pending PVCs (no default StorageClass), image ' +
      'pull, node capacity; raise READY_WAIT_TIMEOUT for slow starts',
  },
  [ErrorCode.CapacityTimeout]: {
    meaning:
      'with `BUILDKITD_MAX_CONNECTIONS_PER_REPLICA` set, every builder was full and the pool at `BUILDKITD_MAX_REPLICAS` ' +
      'for `READY_WAIT_TIMEOUT`; the waiting client is closed (the others are untouched)',
    remedy:
      'raise BUILDKITD_MAX_REPLICAS or the cap, or spread builds over time; `bka_connections_queued` shows clients waiting for room',
  },
  [ErrorCode.PendingFull]: {
    meaning: 'a client was refused because `PROXY_MAX_PENDING` connections were already held waiting for buildkitd',
    remedy: 'raise PROXY_MAX_PENDING, keep builders warm (`minReplicas`, pre-wake) so fewer clients wait',
  },
  [ErrorCode.PendingBytesFull]: {
    meaning:
      'a held client sent more than what is left of `PROXY_MAX_PENDING_BYTES` before buildkitd was ready; it was refused',
    remedy: 'raise PROXY_MAX_PENDING_BYTES (it is kept in memory: stay well under the memory limit) or pre-wake',
  },
  [ErrorCode.MaxConnections]: {
    meaning: 'a client was refused because `PROXY_MAX_CONNECTIONS` connections were open',
    remedy:
      'raise PROXY_MAX_CONNECTIONS and the memory limit with it (~6 KiB per idle connection), or add gateway replicas',
  },
  [ErrorCode.ScaleForbidden]: {
    meaning:
      'the API server refused the scale write (401/403): RBAC does not allow `statefulsets/scale` on that StatefulSet',
    remedy:
      '`kubectl auth can-i update statefulsets/<sts> --subresource=scale -n <sts ns> --as=system:serviceaccount:<ns>:<sa>`; ' +
      'fix the Role (its `resourceNames` must name the StatefulSet)',
  },
  [ErrorCode.StatefulSetNotFound]: {
    meaning: 'the StatefulSet to scale does not exist (404)',
    remedy: 'check `BUILDKITD_STATEFULSET_NAME` and `BUILDKITD_STATEFULSET_NAMESPACE`; apply the buildkitd StatefulSet',
  },
  [ErrorCode.ScaleFailed]: {
    meaning:
      'a scale write failed for another reason (API server unreachable, conflict retries exhausted, 5xx); retried with backoff',
    remedy: "check the API server and the gateway's network path to it; the log line carries the status",
  },
  [ErrorCode.WatchFailed]: {
    meaning:
      'a watch (StatefulSet, EndpointSlices, Pods, Leases) failed; it restarts with backoff, and no scale-down happens while the view is unsynced',
    remedy: 'usually an API server restart or outage; alert on `bka_watch_up == 0` held for minutes',
  },
  [ErrorCode.WatchForbidden]: {
    meaning: 'a watch was refused (401/403); held clients fail fast with it',
    remedy: 'grant list/watch on the resource named in the line (the shipped Role shows what is needed)',
  },
  [ErrorCode.DialFailed]: {
    meaning:
      'a connection to a Ready buildkitd pod failed; the gateway retries with backoff (and another pod, with several) until READY_WAIT_TIMEOUT',
    remedy:
      'buildkitd not listening on `BUILDKITD_TARGET_PORT`, a NetworkPolicy between gateway and builders, or a pod that went away',
  },
  [ErrorCode.BackendLost]: {
    meaning: 'a spliced connection ended with an error on the buildkitd side (reset, EPIPE) or the pod vanished',
    remedy: 'the builder died or was deleted: `kubectl describe pod`, OOM kills, node problems',
  },
  [ErrorCode.BackendTlsRefused]: {
    meaning:
      "buildkitd refused the client's TLS handshake with an alert (mTLS and a client without a valid certificate)",
    remedy:
      'give the client the certificate and CA buildkitd expects (`--tlscacert/--tlscert/--tlskey/--tlsservername`)',
  },
  [ErrorCode.ClientError]: {
    meaning: 'a spliced connection ended with an error on the client side (reset, EPIPE)',
    remedy: 'usually a client that was killed or timed out; nothing to do unless it is frequent',
  },
  [ErrorCode.ShutdownClosed]: {
    meaning: 'a connection was still open at the end of `SHUTDOWN_GRACE_PERIOD` after SIGTERM and was closed',
    remedy: 'raise SHUTDOWN_GRACE_PERIOD (and terminationGracePeriodSeconds above it) to outlast your longest build',
  },
  [ErrorCode.KubeconfigInvalid]: {
    meaning: 'the kubeconfig (`KUBECONFIG_PATH`, or the in-cluster config) could not be loaded; the gateway exits 2',
    remedy:
      'in a pod leave KUBECONFIG_PATH unset and keep the ServiceAccount token mounted; outside, point it at a readable kubeconfig',
  },
  [ErrorCode.ListenFailed]: {
    meaning: 'the proxy or ops port could not be bound (in use, not permitted); the gateway exits 1',
    remedy: 'change `PROXY_LISTEN_ADDR` / `METRICS_LISTEN_ADDR`; ports below 1024 need a capability the image drops',
  },
  [ErrorCode.LeaseFailed]: {
    meaning: 'a Lease write (leader or activity report) failed: RBAC (403) or an unreachable API server',
    remedy:
      '`kubectl auth can-i create leases.coordination.k8s.io -n <sts ns> --as=system:serviceaccount:<ns>:<sa>`; check the API server',
  },
  [ErrorCode.IdentityConflict]: {
    meaning: 'another live process publishes under the same identity (`POD_NAME` / `--identity`)',
    remedy: 'give each gateway its own identity: POD_NAME from the downward API (`metadata.name`)',
  },
  [ErrorCode.ReportExpired]: {
    meaning:
      "a replica's activity report went unrenewed for `MAX_REPORT_STALENESS` and stopped counting; scale-down may now remove builders it still used",
    remedy:
      'find the silent replica (partition, frozen node); raise MAX_REPORT_STALENESS if builds outlast such partitions',
  },
  [ErrorCode.Partitioned]: {
    meaning:
      'this replica could not write its report Lease for a lease duration while another replica confirmed (`GET ' +
      '/report`) that it still writes its own: this one alone is cut off from the API server, so `/readyz` ' +
      'is 503 and the Service sends it no new builds; open builds keep flowing',
    remedy:
      "check this pod's network path to the API server (NetworkPolicy, node network); it is ready again on its first successful write",
  },
  [ErrorCode.WakeGaveUp]: {
    meaning:
      'waking buildkitd failed 20 times in a row; held clients fail with this code and the next demand tries again',
    remedy: 'the line carries the last error: usually RBAC, a missing StatefulSet or an unreachable API server',
  },
  [ErrorCode.FirstByteTimeout]: {
    meaning:
      'with `WAKE_ON=data`, a connection sent nothing for `FIRST_BYTE_TIMEOUT` and was closed without waking anything',
    remedy:
      'expected for health checks and scanners; a real client that connects and waits (none known among BuildKit clients) needs `WAKE_ON=connect`',
  },
  [ErrorCode.MarkFailed]: {
    meaning:
      'the leader could not write or remove the busy marks (label `buildkitd-autoscaler/busy`, Karpenter and ' +
      'cluster-autoscaler annotations) on a builder pod; retried with backoff, builds keep flowing',
    remedy:
      'usually RBAC: `kubectl auth can-i patch pods -n <sts ns> --as=system:serviceaccount:<ns>:<sa>`; until ' +
      "fixed, drains and autoscalers do not wait for that builder's builds",
  },
  [ErrorCode.NodesForbidden]: {
    meaning:
      'the gateway may not list or watch Nodes (the ClusterRole is missing): builders on cordoned or drain-tainted ' +
      'nodes keep taking new connections, as before; logged once',
    remedy:
      'apply the shipped ClusterRole and binding for nodes (get, list, watch), or set `WATCH_NODES=false` to ' +
      'silence it; the gateway must restart to pick the permission up',
  },
  [ErrorCode.Internal]: {
    meaning:
      'a bug: an unexpected exception or rejection; logged with its stack, connections keep flowing where possible',
    remedy: 'report it (SECURITY.md for security issues) with the log line and `--version`',
  },
};
