import type { Socket } from 'node:net';
import { ErrorCode, GatewayError } from '../errors.ts';

/** Spliced backend sockets by pod key, so the connections to a pod that is gone can be closed. */
export class SplicedSockets {
  private readonly byPod = new Map<string, Set<Socket>>();

  track(podKey: string, socket: Socket): void {
    let sockets = this.byPod.get(podKey);
    if (!sockets) this.byPod.set(podKey, (sockets = new Set()));
    sockets.add(socket);
  }

  untrack(podKey: string, socket: Socket): void {
    const sockets = this.byPod.get(podKey);
    if (!sockets?.delete(socket)) return;
    if (sockets.size === 0) this.byPod.delete(podKey);
  }

  /** Closes the connections to every pod for which `stillExists` says no, with BKA_BACKEND_LOST. */
  closeGone(stillExists: (podKey: string) => boolean): void {
    for (const [key, sockets] of this.byPod) {
      if (stillExists(key)) continue;
      // A deleted pod's network may vanish without a FIN or RST; waiting for keepalive would leave the client hanging.
      for (const socket of sockets)
        socket.destroy(new GatewayError(ErrorCode.BackendLost, 'the buildkitd pod behind this connection is gone'));
      this.byPod.delete(key);
    }
  }

  /** Closes every one, including those whose client has gone already (end of the shutdown grace period). */
  destroyAll(cause: GatewayError): void {
    for (const sockets of this.byPod.values()) for (const socket of sockets) socket.destroy(cause);
    this.byPod.clear();
  }
}
