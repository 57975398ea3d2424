// What a backend source (EndpointSlices or DNS names) tells the rest of the gateway: the pods that may be
// dialled and the pods that still exist. backend-set.ts and balancer.ts both read these types.

export interface Backend {
  /** Identity of the pod instance: the pod UID where known, so a re-created pod of the same name differs. */
  key: string;
  podName: string;
  /** StatefulSet ordinal; the StatefulSet controller removes the highest first. */
  ordinal: number;
  host: string;
  port: number;
}

/** A pod that exists as far as the source can tell, whatever its state. */
export interface PodState {
  key: string;
  podName: string;
  ordinal: number;
  ready: boolean;
  terminating: boolean;
  /** The node the pod runs on, where the source knows it (EndpointSlices do). */
  nodeName?: string | undefined;
}

export interface BackendSource {
  /** Pods that are Ready in the API now, as far as the source knows: the same array until the next change. */
  current(): readonly Backend[];
  /**
   * Every pod that still exists as far as the source can tell (ready, not ready, terminating, or briefly
   * unlisted). A pod that disappears is gone, and connections to it are dead even if no FIN or RST ever
   * arrives.
   */
  pods(): readonly PodState[];
  /** Whether the source can tell that a pod is gone (EndpointSlices can; DNS names cannot). */
  readonly tracksExistence: boolean;
  onChange(listener: () => void): () => void;
}
