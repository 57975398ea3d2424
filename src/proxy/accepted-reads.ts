import type { Socket } from 'node:net';
import { ReusableReads } from './reusable-reads.ts';

/** The private fields net.Socket's constructor sets from its `onread` option, by their symbols' descriptions. */
const ONREAD_FIELDS = ['kBuffer', 'kBufferGen', 'kBufferCb'] as const;

/** Looked up once: every net.Socket has the same symbols. */
let onreadFields: [symbol, symbol, symbol] | undefined;

function findOnreadFields(socket: Socket): [symbol, symbol, symbol] | undefined {
  const own = Object.getOwnPropertySymbols(socket);
  const found = ONREAD_FIELDS.map((name) => own.find((symbol) => symbol.description === name));
  return found.every((symbol) => symbol !== undefined) ? (found as [symbol, symbol, symbol]) : undefined;
}

interface StreamHandle {
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Switches an accepted socket to reads into a reused buffer, as `onread` does for a dialled one (see
 * ReusableReads): Node 24's net.Server has no `onread` option, so each client read would be a fresh
 * 64 KiB buffer, and that external memory forces a mark-compact every ~64 MB of upload, each dearer on the
 * gateway's heap than on a bare Node pipe's. It sets what net.Socket's constructor sets for `onread` (three
 * private fields, found by their symbols' descriptions) and hands the handle the buffer as net.Socket does. Where a Node
 * version lacks any of these it leaves the socket untouched and returns undefined: the caller pipes the
 * stream. Bytes already buffered in the stream are delivered first.
 */
export function adoptReusableReads(socket: Socket): ReusableReads | undefined {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (socket.destroyed || socket.connecting || typeof handle?.useUserBuffer !== 'function') return undefined;
  const fields = (onreadFields ??= findOnreadFields(socket));
  const fieldsOf = socket as unknown as Record<symbol, unknown>;
  // Each field must exist and be unset (null: a socket created without onread).
  if (!fields || fields.some((symbol) => fieldsOf[symbol] !== null)) return undefined;
  const [buffer, bufferGen, bufferCb] = fields;
  const reads = new ReusableReads();
  if (socket.readableLength > 0) reads.unread(socket.read() as Buffer);
  const options = reads.options;
  fieldsOf[buffer] = options.buffer();
  fieldsOf[bufferGen] = options.buffer;
  fieldsOf[bufferCb] = options.callback;
  handle.useUserBuffer(fieldsOf[buffer] as Buffer);
  reads.bind(socket);
  return reads;
}
