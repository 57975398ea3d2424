import type { Socket } from 'node:net';

/**
 * Reads a client's first bytes while it waits for a backend. Reading is the only way to notice that a
 * held client reset or vanished (a paused socket sees nothing), and its FIN must not be lost: a client
 * may send its whole request and half-close before buildkitd is even running.
 */
export class EarlyInput {
  private chunks: Buffer[] = [];
  private size = 0;
  private endedFlag = false;
  private readonly socket: Socket;
  private readonly limit: number;
  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.size += chunk.length;
    // Past the limit, TCP back-pressure holds the rest; only gone-detection is lost, not data.
    if (this.size >= this.limit) this.socket.pause();
  };
  private readonly onEnd = () => {
    this.endedFlag = true;
    if (this.size === 0) this.onEmptyEnd();
  };
  private readonly onEmptyEnd: () => void;

  constructor(socket: Socket, onEmptyEnd: () => void, limit = 256 * 1024) {
    this.socket = socket;
    this.onEmptyEnd = onEmptyEnd;
    this.limit = limit;
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
  }

  /** Stops capturing and hands over what was read, with whether the client already sent its FIN. */
  take(): { head: Buffer; ended: boolean } {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.pause();
    const head = Buffer.concat(this.chunks);
    this.chunks = [];
    return { head, ended: this.endedFlag };
  }
}
