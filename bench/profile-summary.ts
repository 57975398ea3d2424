// Where a gateway's CPU time went, from the .cpuprofile files it writes with --cpu-prof (see bench/suite.ts's
// --gateway-node-options). Self time is grouped by who spends it: Node's own socket and stream work, GC,
// logging, metrics, the gateway's code by file, the rest.
//   node bench/profile-summary.ts FILE.cpuprofile|DIR ... [--top N] [--connections N]
// With --connections (how many the profiled process handled), each line also shows µs per connection.
// The bundle (dist/main.js) has no source map, so its code is one group; a gateway run from src/main.ts
// (Node strips the types) is split by file and by dependency.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '12' }, connections: { type: 'string' } },
});
const connections = values.connections === undefined ? undefined : Number(values.connections);
const files = positionals.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(p, f))
    : [p],
);
if (files.length === 0) {
  process.stderr.write('usage: node bench/profile-summary.ts FILE.cpuprofile|DIR ... [--top N] [--connections N]\n');
  process.exit(2);
}

const NODE_SOCKET_WORK =
  /^node:(net|stream|internal\/(stream_base_commons|streams\/|net|tcp_wrap|dns|timers|process\/task_queues|async_hooks|event_target|abort_controller|events\/)|events|timers)/;

const SOCKET_SYSCALLS = new Set(['writeBuffer', 'writev', 'shutdown', 'close', 'readStart', 'readStop']);

/** The group a function's self time counts towards, from where its code lives. */
function groupOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'node: native / libuv (program)';
  if (
    /\/(pino|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free|safe-stable-stringify)[/-]/.test(
      url,
    )
  )
    return 'logging (pino, sonic-boom)';
  if (/\/(prom-client|tdigest|bintrees)\//.test(url)) return 'metrics (prom-client)';
  // The calls that carry a socket's syscalls (connect(2) runs inside internalConnect): the kernel's TCP work, any proxy's floor.
  if ((url === '' && SOCKET_SYSCALLS.has(functionName)) || (url === 'node:net' && functionName === 'internalConnect'))
    return 'node: socket syscalls (connect, write, shutdown, close)';
  if (url === '' && functionName !== '') return 'node: native / builtins';
  if (NODE_SOCKET_WORK.test(url)) return 'node: sockets, streams, events, timers';
  if (url.startsWith('node:')) return 'node: other (modules, tls, http, ...)';
  const source = /\/(src\/[\w/.-]+\.[jt]s)/.exec(url);
  if (source) return `gateway: ${source[1]}`;
  // Without a source map the bundle's functions are told apart by name only (esbuild keeps names).
  if (url.endsWith('/dist/main.js')) return 'gateway bundle (run src/main.ts or a mapped bundle for files)';
  // The shipped bundle is one file; its functions keep the names of the source they came from.
  const dependency = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency) return `dependency: ${dependency[1]}`;
  return 'other';
}

const sourceMaps = new Map<string, SourceMap | undefined>();
/** The shipped bundle is one file: its source map says which source (ours or a dependency's) a function came from. */
function originalFrame(frame: ProfileNode['callFrame']): ProfileNode['callFrame'] {
  if (!frame.url.startsWith('file://')) return frame;
  let map = sourceMaps.get(frame.url);
  if (!sourceMaps.has(frame.url)) {
    const mapFile = `${fileURLToPath(frame.url)}.map`;
    const payload = existsSync(mapFile)
      ? (JSON.parse(readFileSync(mapFile, 'utf8')) as ConstructorParameters<typeof SourceMap>[0])
      : undefined;
    // tsc's map of the entry file is left beside the bundle that replaced it: a map of one source says nothing.
    map = payload && payload.sources.length > 1 ? new SourceMap(payload) : undefined;
    sourceMaps.set(frame.url, map);
  }
  const entry = map?.findEntry(frame.lineNumber, frame.columnNumber);
  if (!entry || !('originalSource' in entry)) return frame;
  return { ...frame, url: entry.originalSource, lineNumber: entry.originalLine };
}

const selfMs = new Map<string, number>();
const topFunctions = new Map<string, number>();
let totalMs = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    if (!node) return;
    const frame = originalFrame(node.callFrame);
    const group = groupOf(frame);
    if (group === 'idle') return;
    totalMs += ms;
    selfMs.set(group, (selfMs.get(group) ?? 0) + ms);
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${frame.lineNumber + 1}`;
    topFunctions.set(name, (topFunctions.get(name) ?? 0) + ms);
  });
}

const pct = (ms: number) => `${((100 * ms) / totalMs).toFixed(1).padStart(5)}%`;
const perConnection = (ms: number) =>
  connections ? `${((1000 * ms) / connections).toFixed(2).padStart(7)} \u00b5s/conn ` : '';
const print = (title: string, entries: Map<string, number>, limit: number) => {
  process.stdout.write(`${title}\n`);
  for (const [name, ms] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit))
    process.stdout.write(`  ${pct(ms)} ${ms.toFixed(0).padStart(7)} ms ${perConnection(ms)} ${name}\n`);
};
process.stdout.write(
  `${files.length} profile(s), ${totalMs.toFixed(0)} ms busy (idle excluded)${connections ? `, ${connections} connections: ${((1000 * totalMs) / connections).toFixed(1)} \u00b5s each` : ''}\n`,
);
const rollUp = new Map<string, number>();
for (const [group, ms] of selfMs) {
  const family = group.startsWith('node:')
    ? "Node's own work (node:*, native, libuv)"
    : group.startsWith('gateway')
      ? "the gateway's code"
      : group.startsWith('dependency')
        ? 'other dependencies'
        : group;
  rollUp.set(family, (rollUp.get(family) ?? 0) + ms);
}
print('self time by owner:', rollUp, Infinity);
print('self time by group:', selfMs, Infinity);
print(`top ${values.top} functions by self time:`, topFunctions, Number(values.top));
