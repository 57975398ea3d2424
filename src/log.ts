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
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * Stdout in batches, flushed within FLUSH_AFTER_MS, on `logger.flush()` and synchronously when the process
 * exits (every exit path, process.exit included, emits 'exit'), so no line is lost to a normal or fatal exit.
 */
function batchedStdout(): DestinationStream & { flush: (done?: () => void) => void } {
  // sync: each flush is a write(2) on this thread, done when flush() returns; nothing is left in a thread pool at exit.
  const out = pino.destination({ dest: 1, sync: true, minLength: BATCH_BYTES });
  let timer: NodeJS.Timeout | undefined;
  const flush = (done?: () => void) => {
    // Nothing logged since the last flush: no empty write(2) for every probe the ops server answers.
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
      out.flush();
    }
    done?.();
  };
  process.once('exit', () => out.flushSync());
  return {
    write(line: string) {
      out.write(line);
      timer ??= setTimeout(flush, FLUSH_AFTER_MS).unref();
    },
    flush,
  };
}
