import type { Socket } from 'node:net';
import { reusableReadsOf } from './reusable-reads.ts';

export interface PipeResult {
  /** client -> backend */
  bytesUp: number;
  /** backend -> client */
  bytesDown: number;
  /** The first error from either side; undefined when both sides closed cleanly. */
  error: { side: 'client' | 'backend'; error: Error } | undefined;
}

/**
 * Splices two connected sockets both ways. Back-pressure comes from stream piping; a FIN from one side
 * ends the other side's write half while the opposite direction keeps flowing (both sockets must allow
 * half-open); an error on either side destroys both. Resolves once both sockets are closed, also when one
 * was closed already (a client that reset while its backend was being dialled).
 * Bytes are read from the sockets' own counters at the end, so there is no per-chunk JavaScript work.
 * A socket with ReusableReads (a dialled backend, an adopted client) is read into its reused buffer rather
 * than through a stream pipe.
 */
export function splice(client: Socket, backend: Socket, early: { head: Buffer; ended: boolean } = { head: Buffer.alloc(0), ended: false }): Promise<PipeResult> {
  return new Promise((resolve) => {
    let firstError: PipeResult['error'];
    let closed = 0;
    const backendWrittenBefore = backend.bytesWritten;
    const clientWrittenBefore = client.bytesWritten;

    const onError = (side: 'client' | 'backend') => (error: Error) => {
      firstError ??= { side, error };
      client.destroy();
      backend.destroy();
    };
    const onClose = () => {
      closed += 1;
      if (closed < 2) {
        // One side is fully closed: nothing more can flow to it, so the other side must not linger.
        // Usually the pipe has ended it already; end() again would build an error object per connection.
        const other = client.destroyed ? backend : client;
        if (!other.writableEnded) other.end();
        return;
      }
      resolve({
        bytesUp: backend.bytesWritten - backendWrittenBefore,
        bytesDown: client.bytesWritten - clientWrittenBefore,
        error: firstError,
      });
    };
    client.on('error', onError('client'));
    backend.on('error', onError('backend'));
    // A socket whose 'close' already fired would never fire it again, and nothing can flow through it.
    const gone = [client, backend].filter((socket) => socket.destroyed);
    for (const socket of [client, backend]) {
      if (socket.closed) queueMicrotask(onClose);
      else socket.once('close', onClose);
    }
    if (gone.length > 0) {
      const [first] = gone;
      const error = first?.errored;
      if (error) firstError = { side: first === client ? 'client' : 'backend', error };
      client.destroy();
      backend.destroy();
      return;
    }
    if (early.head.length > 0) backend.write(early.head);
    // A client that half-closed while held: its FIN follows the bytes it sent before.
    if (early.ended) backend.end();
    else pipeReads(client, backend);
    pipeReads(backend, client);
  });
}

function pipeReads(source: Socket, destination: Socket): void {
  const reads = reusableReadsOf(source);
  if (reads) reads.pipeTo(destination);
  else source.pipe(destination);
}
