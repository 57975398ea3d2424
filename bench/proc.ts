// What a proxy process costs, read from /proc: CPU time (utime+stime, all threads) and resident memory,
// each summed over the process and its children (nginx's master and worker).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of the times in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * utime + stime in clock ticks from the text of /proc/<pid>/stat (fields 14 and 15). The command name
 * (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are counted from
 * the last ')'.
 */
export function statCpuTicks(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  // After the name, field 3 (state) is the first: utime (14) and stime (15) are the 12th and 13th.
  const rest = stat.slice(close + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error(`no utime/stime in /proc/<pid>/stat: ${stat.slice(0, 80)}`);
  return utime + stime;
}

/** The process and its descendants, from each thread's children list. */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    const p = pids[i]!;
    for (const tid of readdirSync(`/proc/${p}/task`)) {
      const text = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(' ').map(Number));
    }
  }
  return pids;
}

/** CPU-seconds the process and its children have used so far (every thread, user and system). */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += statCpuTicks(readFileSync(`/proc/${p}/stat`, 'utf8'));
  return ticks / ticksPerSecond;
}

/** VmRSS in KiB from the text of /proc/<pid>/status. */
export function statusRssKiB(status: string): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error('no VmRSS in /proc/<pid>/status');
  return Number(match[1]);
}

/** Resident memory of the process and its children, summed, in MiB (shared pages count once per process). */
export function rssMiB(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) kib += statusRssKiB(readFileSync(`/proc/${p}/status`, 'utf8'));
  return kib / 1024;
}

/** VmHWM (peak resident) of one process in MiB. */
export function hwmMiB(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? NaN) / 1024;
}

/** This process's limit on open files (children inherit it): caps how many connections a proxy can hold. */
export function fdLimit(): number {
  const match = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match ? Number(match[1]) : 1024;
}
