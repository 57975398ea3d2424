// The shape of one /readyz check, apart from how the gateway derives them (readiness.ts), so that http/ and
// ha/ can speak it without importing the wiring.

/** One line of /readyz: a pod leaves the Service while any check is not ok. */
export interface ReadinessCheck {
  name: string;
  ok: boolean;
  /** Why not, in words an operator can act on; includes the stable error code where there is one. */
  reason?: string;
}
