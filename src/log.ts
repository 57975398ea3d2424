import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

// A write(2) per line to stdout's pipe was 7% of the gateway's busy time in the bench's connection-rate
// profile; one write per this many bytes (~12 access lines) brings the log's writes to ~1%.
const BATCH_BYTES = 4096;
// A quiet gateway's line still reaches `kubectl logs -f` within this bound: below what a reader notices,
// and at most ten timer wake-ups a second while lines arrive.
const FLUSH_AFTER_MS = 100;

/** JSON lines on stdout; `time` as ISO so logs read well in `kubectl logs`. */
export function createLogger(level: LogLevel, destination: DestinationStream = batchedStdout()): Logger {
  return pino(
    {
      level,
      base: { name: 'buildkitd-autoscaler' },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

let cachedSecond = Number.NaN;
let cachedPrefix = '';
/**
 * pino's isoTime (`,"time":"2026-01-02T03:04:05.678Z"`) without a Date and toISOString per line: the text up
 * to the second is kept while the second lasts (an access line per connection, thousands a second).
 */
export function isoTime(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
  }
  const ms = now - second * 1000;
  return `${cachedPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

/**
 * Stdout in batches, flushed within FLUSH_AFTER_MS, on `logger.flush()` and synchronously when the process
 * exits (every exit path, process.exit included, emits 'exit'), so no line is lost to a normal or fatal exit.
 * Lines are joined here, not in sonic-boom: its buffering measures the whole pending batch per line, which
 * flattens it (~2 KB of garbage per access line).
 */
function batchedStdout(): DestinationStream & { flush: (done?: () => void) => void } {
  // sync: each write is a write(2) on this thread, done when it returns; nothing is left in a thread pool at exit.
  const out = pino.destination({ dest: 1, sync: true });
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const writePending = () => {
    const batch = pending;
    pending = '';
    out.write(batch);
  };
  const flush = (done?: () => void) => {
    // Nothing logged since the last flush: no empty write(2) for every probe the ops server answers.
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
      if (pending !== '') writePending();
    }
    done?.();
  };
  process.once('exit', () => {
    if (pending !== '') writePending();
    out.flushSync();
  });
  return {
    write(line: string) {
      pending += line;
      // Length in UTF-16 units: a batch's size only needs to be about right.
      if (pending.length >= BATCH_BYTES) writePending();
      timer ??= setTimeout(flush, FLUSH_AFTER_MS).unref();
    },
    flush,
  };
}
