import type { Socket, OnReadOpts } from 'node:net';

/**
 * Every socket's first read buffer, shared: a read is handled before the next one starts, and its bytes
 * are copied out at once, so an idle connection keeps no read buffer of its own (even a private 256 B one
 * each way costs resident memory per idle connection). Small enough that copies come from Buffer's pool.
 */
const sharedReads = Buffer.allocUnsafe(2048);
/** Once a read fills the shared buffer, the socket reads into its own of this size (Node's own read size). */
const FULL_READ_BYTES = 64 * 1024;

const readsBySocket = new WeakMap<Socket, ReusableReads>();

/**
 * Reads a socket into a buffer reused from read to read (net.connect's `onread`), instead of a fresh
 * 64 KiB buffer per read that the garbage collector must reclaim: the shared one above while reads are
 * small, then one of its own. That one is replaced only when a write of it is still pending in the
 * destination socket (it holds a reference to the bytes). Bytes that arrive
 * before the socket is piped anywhere are copied and kept, and reading pauses until the pipe starts.
 */
export class ReusableReads {
  private buffer = sharedReads;
  private destination: Socket | undefined;
  private source: Socket | undefined;
  /** Created on the first byte read before the pipe starts: most sockets never have any. */
  private early: Buffer[] | undefined;
  private observer: ((chunk: Buffer) => void) | undefined;
  private lastRead = 0;
  /** A 'drain' listener is added at the first write the destination could not take, as stream.pipe() does. */
  private resumesOnDrain = false;

  /**
   * Pass as net.connect's `onread`, then `bind()` the socket it created. Built on each call, so no socket
   * keeps it: net.Socket copies both functions, and the callback is shared by every socket (Node calls it on the socket).
   * A bound method rather than an arrow: no closure context per socket (Node calls `buffer` on nothing).
   */
  get options(): { buffer: () => Buffer; callback: typeof readIntoOwnBuffer } {
    return { buffer: this.nextBuffer.bind(this), callback: readIntoOwnBuffer } satisfies OnReadOpts;
  }

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
    // 'end' is emitted once; a shared listener costs an idle connection no closure.
    source.on('end', endDestination);
    let flowing = true;
    const early = this.early;
    this.early = undefined;
    for (const chunk of early ?? []) flowing = this.deliver(chunk) && flowing;
    if (flowing) source.resume();
  }

  /** Keeps bytes read before this took over the socket (see adoptReusableReads): they are delivered first. */
  unread(chunk: Buffer): void {
    (this.early ??= []).push(chunk);
  }

  /** Sees every chunk before it is written (for header inspection only: the buffer is reused after the call). */
  observe(observer: ((chunk: Buffer) => void) | undefined): void {
    this.observer = observer;
  }

  /** Where the source's bytes go once piped (its FIN too). */
  get piped(): Socket | undefined {
    return this.destination;
  }

  onRead(bytes: number, buffer: Uint8Array): boolean {
    this.lastRead = bytes;
    const shared = buffer === sharedReads;
    // Bytes in the shared buffer are copied now: the next read, of any socket, overwrites them.
    const chunk = shared
      ? Buffer.from(sharedReads.subarray(0, bytes))
      : Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
    if (!this.destination) {
      this.unread(shared ? chunk : Buffer.from(chunk));
      return false;
    }
    return this.deliver(chunk);
  }

  private deliver(chunk: Buffer): boolean {
    this.observer?.(chunk);
    const destination = this.destination!;
    // Bytes for a destination that is gone are dropped; reading goes on so the source's FIN is seen.
    if (destination.destroyed) return true;
    const taken = destination.write(chunk);
    if (!taken && !this.resumesOnDrain) {
      this.resumesOnDrain = true;
      const source = this.source!;
      destination.on('drain', () => source.resume());
    }
    return taken;
  }

  private nextBuffer(): Buffer {
    // A read that filled the shared buffer means more is coming: the socket gets a full-size buffer of its own.
    if (this.buffer === sharedReads) {
      if (this.lastRead === sharedReads.length) this.buffer = Buffer.allocUnsafe(FULL_READ_BYTES);
      return this.buffer;
    }
    // A write still pending in the destination holds the bytes of this buffer: the next read needs another.
    if ((this.destination?.writableLength ?? 0) > 0) this.buffer = Buffer.allocUnsafe(FULL_READ_BYTES);
    return this.buffer;
  }
}

/** net.Socket's `onread` callback, called on the socket that read: hands the bytes to its ReusableReads. */
function readIntoOwnBuffer(this: Socket, bytes: number, buffer: Uint8Array): boolean {
  return readsBySocket.get(this)!.onRead(bytes, buffer);
}

/** The source's FIN ends its destination's write half. */
function endDestination(this: Socket): void {
  readsBySocket.get(this)?.piped?.end();
}

/** The ReusableReads a socket was created with or adopted by, if any. */
export function reusableReadsOf(socket: Socket): ReusableReads | undefined {
  return readsBySocket.get(socket);
}
