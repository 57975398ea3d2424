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

/** What the client sent before the splice, and whether it half-closed after it. */
export interface EarlyClientInput {
  head: Buffer;
  ended: boolean;
}

/**
 * Splices two connected sockets both ways. Back-pressure comes from stream piping; a FIN from one side
 * ends the other side's write half while the opposite direction keeps flowing (both sockets must allow
 * half-open); an error on either side destroys both. Calls `done` once both sockets are closed, also when
 * one was closed already (a client that reset while its backend was being dialled).
 * Bytes are read from the sockets' own counters at the end, so there is no per-chunk JavaScript work.
 * A socket with ReusableReads (a dialled backend, an adopted client) is read into its reused buffer rather
 * than through a stream pipe.
 * A callback, not a Promise, and two listeners sharing one closure context: an idle spliced connection
 * keeps little more than its two sockets (memory per open connection is what bounds how many it holds).
 */
export function splice(
  client: Socket,
  backend: Socket,
  early: EarlyClientInput,
  done: (result: PipeResult) => void,
): void {
  let firstError: PipeResult['error'];
  let closed = 0;
  const backendWrittenBefore = backend.bytesWritten;
  const clientWrittenBefore = client.bytesWritten;

  // One listener for both sockets: the emitter it is called on says which side failed.
  function onError(this: Socket, error: Error): void {
    firstError ??= { side: this === client ? 'client' : 'backend', error };
    client.destroy();
    backend.destroy();
  }
  const onClose = () => {
    closed += 1;
    if (closed < 2) {
      // One side is fully closed: nothing more can flow to it, so the other side must not linger.
      // Usually the pipe has ended it already; end() again would build an error object per connection.
      const other = client.destroyed ? backend : client;
      if (!other.writableEnded) other.end();
      return;
    }
    done({
      bytesUp: backend.bytesWritten - backendWrittenBefore,
      bytesDown: client.bytesWritten - clientWrittenBefore,
      error: firstError,
    });
  };
  client.on('error', onError);
  backend.on('error', onError);
  // A socket whose 'close' already fired would never fire it again, and nothing can flow through it.
  const gone = client.destroyed ? client : backend.destroyed ? backend : undefined;
  // 'close' is emitted once, so a plain listener does what once() would without a wrapper per socket.
  for (const socket of [client, backend]) {
    if (socket.closed) queueMicrotask(onClose);
    else socket.on('close', onClose);
  }
  if (gone) {
    const error = gone.errored;
    if (error) firstError = { side: gone === client ? 'client' : 'backend', error };
    client.destroy();
    backend.destroy();
    return;
  }
  if (early.head.length > 0) backend.write(early.head);
  // A client that half-closed while held: its FIN follows the bytes it sent before.
  if (early.ended) backend.end();
  else pipeReads(client, backend);
  pipeReads(backend, client);
}

function pipeReads(source: Socket, destination: Socket): void {
  const reads = reusableReadsOf(source);
  if (reads) reads.pipeTo(destination);
  else source.pipe(destination);
}
