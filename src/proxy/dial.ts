import { connect, type Socket } from 'node:net';
import type { Backend } from '../backends/source.ts';
import { keepaliveAfterDelay } from './keepalive-after-delay.ts';
import { ReusableReads } from './reusable-reads.ts';

/**
 * Opens the connection a client will use. A successful TCP connect is the proof that the pod really
 * accepts connections (Ready in the API is not enough: buildkitd may not listen yet), and the socket is
 * then used as is rather than probed and thrown away. It reads into a reused buffer (see ReusableReads).
 */
export function dialBackend(backend: Backend, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const reads = new ReusableReads();
    const socket = reads.bind(
      connect({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true, onread: reads.options }),
    );
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(
          Object.assign(
            new Error(`ETIMEDOUT connect to ${backend.host}:${backend.port} timed out after ${timeoutMs}ms`),
            { code: 'ETIMEDOUT' },
          ),
        );
      },
      Math.max(1, timeoutMs),
    );
    const onError = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Keepalive (a vanished pod is found) only if the connection outlives its delay.
      keepaliveAfterDelay(socket);
      resolve(socket);
    });
  });
}

/** Delay before the next dial attempt: 25ms doubling to 1s, because a pod often refuses just after Ready. */
export function dialBackoffMs(attempt: number): number {
  return Math.min(25 * 2 ** Math.max(0, attempt - 1), 1000);
}
