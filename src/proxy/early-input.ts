import type { Socket } from 'node:net';
import { ErrorCode, GatewayError } from '../errors.ts';

/**
 * Most bytes one connection may send before a backend takes it. BuildKit clients send little before the
 * server answers (HTTP/2 preface, SETTINGS, at most a 64 KiB flow-control window of DATA; a TLS ClientHello).
 */
export const EARLY_INPUT_PER_CONNECTION = 256 * 1024;
// Each read is its own Buffer (~0.2 KiB of bookkeeping); joining them keeps a trickle of tiny reads bounded too.
const MAX_CHUNKS = 16;

/** Where early input is counted: one budget shared by every connection not yet spliced. */
export interface EarlyInputBudget {
  reserveBytes(bytes: number): boolean;
  releaseBytes(bytes: number): void;
}

export interface EarlyInputHandlers {
  /** The client sent its FIN before it was spliced: it left. */
  onEnd: () => void;
  /** The client sent more than can be kept for it; the caller refuses it with this error. */
  onOverflow: (error: GatewayError) => void;
}

/**
 * Reads a client's first bytes while it waits for a backend, counted against a shared budget.
 *
 * Reading never stops while the client waits, because that is the only way to notice it leave: TCP delivers
 * the FIN only after every byte before it has been read, and a socket that is not read (paused, or with
 * its stream buffer past the high-water mark, when Node stops libuv reading) learns of neither FIN nor RST,
 * so a client that left would keep its place until the ready-wait deadline. Bytes that do not fit can be
 * neither kept (the memory bound) nor dropped (clients that stay get every byte), so their client is
 * refused. A FIN means the client left: BuildKit clients (HTTP/2, TLS) never half-close a connection whose
 * answer they still wait for, and one that gave up after its preface would otherwise be held until the deadline.
 */
export class EarlyInput {
  private chunks: Buffer[] = [];
  private size = 0;
  private capturing = true;
  private readonly socket: Socket;
  private readonly budget: EarlyInputBudget;
  private readonly handlers: EarlyInputHandlers;
  private readonly onData = (chunk: Buffer) => {
    if (this.size + chunk.length > EARLY_INPUT_PER_CONNECTION) {
      this.overflow(`the client sent more than ${EARLY_INPUT_PER_CONNECTION} bytes before buildkitd was ready`);
      return;
    }
    if (!this.budget.reserveBytes(chunk.length)) {
      this.overflow(
        'held clients already sent as many bytes as the gateway keeps while buildkitd wakes up (--max-pending-bytes)',
      );
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.chunks.length > MAX_CHUNKS) this.chunks = [Buffer.concat(this.chunks, this.size)];
  };
  private readonly onEnd = () => {
    this.stop();
    this.handlers.onEnd();
  };
  private readonly onClose = () => this.stop();

  constructor(socket: Socket, budget: EarlyInputBudget, handlers: EarlyInputHandlers) {
    this.socket = socket;
    this.budget = budget;
    this.handlers = handlers;
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
    socket.once('close', this.onClose);
  }

  /** Stops capturing and hands over what was read; the socket is left paused for the splice to resume. */
  take(): Buffer {
    const head = Buffer.concat(this.chunks, this.size);
    this.stop();
    this.socket.pause();
    return head;
  }

  private overflow(message: string): void {
    this.stop();
    this.handlers.onOverflow(new GatewayError(ErrorCode.PendingBytesFull, message));
  }

  /** Ends the capture and gives its bytes back to the budget. */
  private stop(): void {
    if (!this.capturing) return;
    this.capturing = false;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.budget.releaseBytes(this.size);
    this.chunks = [];
    this.size = 0;
  }
}
