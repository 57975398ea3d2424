import type { Socket, OnReadOpts } from 'node:net';

/** First read buffer: small, so an idle connection keeps no more than a stream socket does (measured: 256 B adds nothing to RSS, 1 KiB ~1 KiB). */
const FIRST_READ_BYTES = 256;
/** Once a read fills its buffer, reads use this size (Node's own read size). */
const FULL_READ_BYTES = 64 * 1024;

const readsBySocket = new WeakMap<Socket, ReusableReads>();

/**
 * Reads a socket into one buffer reused from read to read (net.connect's `onread`), instead of a fresh
 * 64 KiB buffer per read that the garbage collector must reclaim. A buffer is replaced only when a write
 * of it is still pending in the destination socket (it holds a reference to the bytes). Bytes that arrive
 * before the socket is piped anywhere are copied and kept, and reading pauses until the pipe starts.
 */
export class ReusableReads {
  private buffer = Buffer.allocUnsafe(FIRST_READ_BYTES);
  private destination: Socket | undefined;
  private source: Socket | undefined;
  private readonly early: Buffer[] = [];
  private observer: ((chunk: Buffer) => void) | undefined;
  private lastRead = 0;

  /** Pass as net.connect's `onread`, then `bind()` the socket it created. */
  readonly options = {
    buffer: (): Buffer => this.nextBuffer(),
    callback: (bytes: number, buffer: Uint8Array): boolean => this.onRead(Buffer.from(buffer.buffer, buffer.byteOffset, bytes)),
  } satisfies OnReadOpts;

  bind(socket: Socket): Socket {
    this.source = socket;
    readsBySocket.set(socket, this);
    return socket;
  }

  /**
   * Writes every read to `destination` with back-pressure (reading stops while its buffer is full and
   * resumes on 'drain') and ends it after the source's FIN, as stream.pipe() does.
   */
  pipeTo(destination: Socket): void {
    const source = this.source;
    if (!source) throw new Error('ReusableReads.pipeTo() before bind()');
    this.destination = destination;
    destination.on('drain', () => source.resume());
    source.once('end', () => destination.end());
    let flowing = true;
    for (const chunk of this.early.splice(0)) flowing = this.deliver(chunk) && flowing;
    if (flowing) source.resume();
  }

  /** Keeps bytes read before this took over the socket (see adoptReusableReads): they are delivered first. */
  unread(chunk: Buffer): void {
    this.early.push(chunk);
  }

  /** Sees every chunk before it is written (for header inspection only: the buffer is reused after the call). */
  observe(observer: ((chunk: Buffer) => void) | undefined): void {
    this.observer = observer;
  }

  private onRead(chunk: Buffer): boolean {
    this.lastRead = chunk.length;
    if (!this.destination) {
      this.early.push(Buffer.from(chunk));
      return false;
    }
    return this.deliver(chunk);
  }

  private deliver(chunk: Buffer): boolean {
    this.observer?.(chunk);
    const destination = this.destination!;
    // Bytes for a destination that is gone are dropped; reading goes on so the source's FIN is seen.
    if (destination.destroyed) return true;
    return destination.write(chunk);
  }

  private nextBuffer(): Buffer {
    const filled = this.lastRead === this.buffer.length;
    const pending = (this.destination?.writableLength ?? 0) > 0;
    // A short first buffer that a read filled grows to the full size; a pending write keeps its buffer.
    if (filled && this.buffer.length < FULL_READ_BYTES) this.buffer = Buffer.allocUnsafe(FULL_READ_BYTES);
    else if (pending) this.buffer = Buffer.allocUnsafe(this.buffer.length);
    return this.buffer;
  }
}

/** The ReusableReads a socket was created with or adopted by, if any. */
export function reusableReadsOf(socket: Socket): ReusableReads | undefined {
  return readsBySocket.get(socket);
}
