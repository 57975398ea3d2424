/**
 * The scaler's vocabulary, shared with ha/ (which carries these between replicas in Leases): the builder
 * pods, one replica's report of its connections and wakes, the scale-down proposal. Types only, so any
 * folder above scaler/ can speak them without importing the scaler's logic.
 */

/** A pre-wake: at least `replicas` builders are kept until `until` (wall-clock ms), with or without connections. */
export interface WakeRequest {
  replicas: number;
  until: number;
}

/** This replica's own connections, as the scaler and the other replicas need them. */
export interface ActivitySnapshot {
  open: number;
  held: number;
  pods: Record<string, { open: number; lastActiveAt: number }>;
  /** Wall-clock ms from which this replica knows its activity (its start). */
  since: number;
  /** Wall-clock ms when a connection last closed while held (0: never): the builders being woken for it count it as activity. */
  lastHeldCloseAt?: number | undefined;
}

/** A buildkitd pod as the headless Service's EndpointSlices show it. */
export interface BuilderPod {
  name: string;
  ordinal: number;
  /** Identity of this instance of the pod (its UID), so a re-created pod of the same name differs. */
  key: string;
  ready: boolean;
  terminating: boolean;
  /** On a node being drained (cordoned or tainted for removal): it takes no new connections, so it can go idle. */
  draining?: boolean;
}

/** One gateway replica's activity: its own from memory, the others from their Leases. */
export interface ReplicaReport {
  identity: string;
  /** Renewed within its lease duration, as observed on this replica's clock. */
  fresh: boolean;
  /** How long it has been stale (not renewed past its lease duration); 0 while fresh. */
  staleForMs: number;
  /** Connections spliced to a pod, or being dialled to one. */
  open: number;
  /** Connections waiting for a pod that may take them. */
  held: number;
  /** Per builder pod name: connections on it now, and when the last one opened or closed (wall-clock ms). */
  // Every time in a report is on the deciding replica's clock: ReplicaReports moves another replica's onto it.
  pods: Readonly<Record<string, { open: number; lastActiveAt: number }>>;
  /** Wall-clock ms from which this replica knows its activity; nothing before it is known. */
  since: number;
  /**
   * Wall-clock ms when a connection last closed here while held (a client that gave up waiting, as buildx does
   * after 20 s, and retries at once): activity for the builders being woken, so they keep starting.
   */
  lastHeldCloseAt?: number | undefined;
  /** The scale-down proposal this replica has fenced off locally. */
  ack: string | undefined;
  /** Wake requests this replica accepted (absent in reports of replicas that predate them). */
  wake?: readonly WakeRequest[] | undefined;
}

export interface ScaleDownProposal {
  id: string;
  from: number;
  to: number;
  /** Pods being removed, as `name` -> pod key (empty key: the pod was not listed when proposed). */
  pods: Readonly<Record<string, string>>;
  /** On this replica's clock: when it wrote the proposal, or first saw one another replica wrote. */
  proposedAt: number;
  committed: boolean;
}

/** What the watches show the controller: whether they synced, the StatefulSet and its builder pods. */
export interface ObservedCluster {
  synced: boolean;
  statefulSet: { exists: boolean; replicas: number } | undefined;
  pods: BuilderPod[];
}
