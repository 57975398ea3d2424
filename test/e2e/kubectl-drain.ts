// `kubectl drain` of a node in the background, its output read as it comes: which evictions the Eviction
// API refused (a PodDisruptionBudget), which evicted pods are gone, and when the node was drained, each on the
// caller's clock, so a scenario can order them against what its clients saw.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export type DrainEvent =
  | { kind: 'refused'; pod: string; t: number }
  /** kubectl prints it once the evicted pod is gone (it waits for the deletion), not when the eviction passed. */
  | { kind: 'evicted'; pod: string; t: number }
  | { kind: 'drained'; t: number };

export interface DrainResult {
  code: number;
  /** The last lines kubectl printed (stdout and stderr interleaved as they came). */
  output: string;
  endedAt: number;
}

export interface RunningDrain {
  readonly events: readonly DrainEvent[];
  readonly done: Promise<DrainResult>;
  /** Kills kubectl if it still runs (the node stays cordoned: uncordon it). */
  stop(): void;
}

// kubectl's own wording: a refused eviction is retried and reported on stderr, evictions and the end on stdout.
const REFUSED =
  /^error when evicting pods\/"([^"]+)" -n "[^"]*" \(will retry after [^)]*\): Cannot evict pod as it would violate the pod's disruption budget/;
const EVICTED = /^pod\/(\S+) evicted$/;
const DRAINED = /^node\/\S+ drained$/;

function parse(line: string, t: number): DrainEvent | undefined {
  const refused = REFUSED.exec(line);
  if (refused?.[1]) return { kind: 'refused', pod: refused[1], t };
  const evicted = EVICTED.exec(line);
  if (evicted?.[1]) return { kind: 'evicted', pod: evicted[1], t };
  return DRAINED.test(line) ? { kind: 'drained', t } : undefined;
}

/** Runs `kubectl drain <node> <args>`; `onEvent` sees each refusal, eviction and the end as kubectl prints it. */
export function startDrain(
  node: string,
  args: readonly string[],
  clock: { now(): number },
  onEvent: (event: DrainEvent) => void,
): RunningDrain {
  const events: DrainEvent[] = [];
  const output: string[] = [];
  const child = spawn('kubectl', ['drain', node, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const read = (stream: NodeJS.ReadableStream) =>
    new Promise<void>((resolve) => {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => {
        output.push(line);
        if (output.length > 40) output.shift();
        const event = parse(line.trim(), clock.now());
        if (event) {
          events.push(event);
          onEvent(event);
        }
      });
      lines.on('close', resolve);
    });
  const exited = new Promise<number>((resolve) => {
    child.on('error', (error) => {
      output.push(`cannot run kubectl: ${error.message}`);
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const done = Promise.all([exited, read(child.stdout), read(child.stderr)]).then(([code]) => ({
    code,
    output: output.join('\n'),
    endedAt: clock.now(),
  }));
  return {
    events,
    done,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}
