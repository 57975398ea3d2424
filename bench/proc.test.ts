import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuSeconds, statCpuTicks, statusRssKiB } from './proc.ts';

const stat = (comm: string, utime: number, stime: number) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1200 0 0 0 ${utime} ${stime} 7 9 20 0 11 0 5000 1200000000 25000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0`;

test("CPU ticks are utime (field 14) plus stime (field 15), not the children's cutime/cstime", () => {
  assert.equal(statCpuTicks(stat('haproxy', 150, 42)), 192);
});

test('a command name with spaces and parentheses does not shift the fields', () => {
  assert.equal(statCpuTicks(stat('nginx: worker process', 3, 4)), 7);
  assert.equal(statCpuTicks(stat('a) b (c) 99 98', 10, 20)), 30);
});

test('a line that is not a stat line is refused instead of read as zero', () => {
  assert.throws(() => statCpuTicks('4242 nginx S 1'));
  assert.throws(() => statCpuTicks('4242 (nginx) S 1 2'));
});

test('RSS is read from VmRSS in KiB', () => {
  assert.equal(statusRssKiB('Name:\tnode\nVmHWM:\t  90000 kB\nVmRSS:\t   74512 kB\n'), 74512);
});

test("this process's CPU time is read from /proc and grows while it works", () => {
  const before = cpuSeconds(process.pid);
  assert.ok(before > 0);
  // Busy until the next clock tick is counted (bounded, on a loaded machine too).
  const deadline = performance.now() + 10_000;
  while (cpuSeconds(process.pid) === before && performance.now() < deadline);
  assert.ok(cpuSeconds(process.pid) > before);
});
