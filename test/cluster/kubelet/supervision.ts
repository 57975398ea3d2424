// Running a pod's containers: start each in the pod's sandbox, restart crashed ones with back-off, and honour
// graceful deletion (preStop, SIGTERM, SIGKILL at the end of the grace period).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../support/command.ts';
import { sleep } from '../../support/wait.ts';
import { netnsPath } from '../internal/common.ts';
import { resolveEnv } from './env.ts';
import { commandFor } from './images.ts';
import type { Kubelet } from './main.ts';
import {
  now,
  log,
  errMsg,
  errCode,
  podHostname,
  containerId,
  type StateTerminated,
  type Ctr,
  type PodRt,
} from './pod-runtime.ts';
import { startProbes } from './probes.ts';
import { removeSandbox } from './sandbox.ts';
import { markDirty } from './status.ts';
import { bindsFor } from './volumes.ts';

export async function startContainer(k: Kubelet, rt: PodRt, ctr: Ctr): Promise<void> {
  if (rt.terminating) return;
  const c = ctr.spec;
  if (!ctr.kind) {
    const msg = `the process kubelet has no command for image "${c.image}" (it runs alpine/socat, moby/buildkit and buildkitd-autoscaler images)`;
    ctr.state = { waiting: { reason: 'UnsupportedImage', message: msg } };
    k.event(rt, 'Warning', 'Failed', msg, `spec.containers{${c.name}}`);
    markDirty(k, rt);
    return;
  }
  let argv: string[];
  let env: Record<string, string>;
  try {
    argv = commandFor(k, rt, c, ctr.kind);
    env = await resolveEnv(k, rt, c);
    if (rt.terminating) return;
  } catch (e) {
    ctr.state = { waiting: { reason: 'CreateContainerConfigError', message: errMsg(e) } };
    k.event(rt, 'Warning', 'Failed', errMsg(e), `spec.containers{${c.name}}`);
    markDirty(k, rt);
    return;
  }
  const binds = bindsFor(rt, c);
  const pre = ['--net=' + netnsPath(rt.netns ?? ''), '--'];
  // Own mount namespace (private bind mounts: volumes, token, resolv.conf, hosts) and UTS namespace
  // (hostname = pod hostname), then exec the command: the pid stays the same.
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // Mount points are made on the host filesystem when missing (empty dirs / files); the mounts stay private.
  const script = [
    `hostname ${q(podHostname(rt))} || exit 122`,
    ...binds.map(
      (b) =>
        `if [ -d ${q(b.src)} ]; then mkdir -p ${q(b.dst)}; else mkdir -p "$(dirname ${q(b.dst)})"; [ -e ${q(b.dst)} ] || touch ${q(b.dst)}; fi; mount --bind ${q(b.src)} ${q(b.dst)} || exit 121`,
    ),
    'exec "$@"',
  ].join('\n');
  const full = [
    ...pre,
    'unshare',
    '--mount',
    '--uts',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    script,
    'sh',
    ...argv,
  ];
  const logFile = path.join(rt.dir, `${c.name}.log`);
  const fd = fs.openSync(logFile, 'a');
  let cwd = rt.dir;
  if (c.workingDir && fs.existsSync(c.workingDir)) cwd = c.workingDir;
  const child = spawn('nsenter', full, { detached: true, stdio: ['ignore', fd, fd], env, cwd });
  fs.closeSync(fd);
  ctr.generation++;
  const gen = ctr.generation;
  ctr.proc = child;
  ctr.pid = child.pid;
  ctr.startedAtMs = Date.now();
  const startedAt = now();
  ctr.state = { running: { startedAt } };
  ctr.ready = false;
  ctr.started = !c.startupProbe;
  log(`${rt.ns}/${rt.name}/${c.name}: started pid ${child.pid}: ${argv.join(' ')}`);
  k.event(rt, 'Normal', 'Started', `Started container ${c.name} (pid ${child.pid})`, `spec.containers{${c.name}}`);
  ctr.exited = new Promise<void>((resolve) => {
    child.on('error', (e) => log(`${rt.ns}/${rt.name}/${c.name}: spawn error ${e.message}`));
    child.on('exit', (code, signal) => {
      resolve();
      if (gen !== ctr.generation) return;
      onExit(k, rt, ctr, code, signal, startedAt);
    });
  });
  startProbes(k, rt, ctr, gen);
  markDirty(k, rt);
}

export function onExit(
  k: Kubelet,
  rt: PodRt,
  ctr: Ctr,
  code: number | null,
  signal: NodeJS.Signals | null,
  startedAt: string,
): void {
  ctr.proc = undefined;
  ctr.pid = undefined;
  for (const t of ctr.timers) clearTimeout(t);
  ctr.timers = [];
  ctr.ready = false;
  ctr.started = false;
  const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
  const term: StateTerminated = {
    terminated: {
      exitCode,
      reason: exitCode === 0 ? 'Completed' : 'Error',
      startedAt,
      finishedAt: now(),
      ...(signal ? { signal: os.constants.signals[signal] } : {}),
      containerID: containerId(rt, ctr),
    },
  };
  log(`${rt.ns}/${rt.name}/${ctr.spec.name}: exited code=${code} signal=${signal}`);
  if (rt.terminating) {
    ctr.state = term;
    markDirty(k, rt);
    return;
  }
  const policy = rt.pod.spec?.restartPolicy ?? 'Always';
  const restart = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
  if (!restart) {
    ctr.state = term;
    const all = [...rt.ctrs.values()];
    if (all.every((x) => 'terminated' in x.state)) {
      rt.phaseOverride = all.every((x) => 'terminated' in x.state && x.state.terminated.exitCode === 0)
        ? 'Succeeded'
        : 'Failed';
      // A finished pod keeps its status (and podIP) but no longer holds a network namespace.
      clearTimeout(rt.refreshTimer);
      removeSandbox(k, rt).catch((e: unknown) => log(`${rt.ns}/${rt.name}: sandbox removal: ${errMsg(e)}`));
    }
    markDirty(k, rt);
    return;
  }
  if (Date.now() - ctr.startedAtMs > 60_000) ctr.backoffMs = 1000;
  const wait = ctr.backoffMs;
  ctr.backoffMs = Math.min(k.maxBackoffMs, ctr.backoffMs * 2);
  ctr.lastState = term;
  ctr.state = {
    waiting: {
      reason: 'CrashLoopBackOff',
      message: `back-off ${wait}ms restarting failed container ${ctr.spec.name}`,
    },
  };
  k.event(
    rt,
    'Warning',
    'BackOff',
    `Back-off ${wait}ms restarting failed container ${ctr.spec.name} (exit ${exitCode})`,
    `spec.containers{${ctr.spec.name}}`,
  );
  markDirty(k, rt);
  ctr.restartTimer = setTimeout(() => {
    if (rt.terminating) return;
    ctr.restartCount++;
    startContainer(k, rt, ctr).catch((e: unknown) => log(`restart ${rt.ns}/${rt.name}/${ctr.spec.name}: ${errMsg(e)}`));
  }, wait);
}

export function killGroup(ctr: Ctr, sig: NodeJS.Signals): void {
  if (!ctr.pid) return;
  try {
    process.kill(-ctr.pid, sig);
  } catch {
    try {
      process.kill(ctr.pid, sig);
    } catch {
      /* gone */
    }
  }
}

export function terminate(k: Kubelet, rt: PodRt, graceSeconds: number, deleteFromApi = true): void {
  const killAt = Date.now() + graceSeconds * 1000;
  if (rt.terminating) {
    if (rt.killAtMs !== undefined && killAt < rt.killAtMs) scheduleKill(rt, killAt);
    return;
  }
  rt.terminating = true;
  clearTimeout(rt.refreshTimer);
  log(`${rt.ns}/${rt.name}: terminating (grace ${graceSeconds}s)`);
  for (const ctr of rt.ctrs.values()) {
    for (const t of ctr.timers) clearTimeout(t);
    ctr.timers = [];
    clearTimeout(ctr.restartTimer);
    ctr.ready = false;
  }
  markDirty(k, rt);
  scheduleKill(rt, killAt);
  rt.abort.abort();
  (rt.startPromise ?? Promise.resolve())
    .then(() => stopContainers(k, rt))
    .then(async () => {
      clearTimeout(rt.killTimer);
      await removeSandbox(k, rt);
      k.pods.delete(rt.uid);
      if (deleteFromApi) {
        try {
          await k.core.deleteNamespacedPod({
            name: rt.name,
            namespace: rt.ns,
            gracePeriodSeconds: 0,
            body: { gracePeriodSeconds: 0, preconditions: { uid: rt.uid } },
          });
        } catch (e) {
          if (errCode(e) !== 404 && errCode(e) !== 409) log(`delete ${rt.ns}/${rt.name}: ${errMsg(e)}`);
        }
      }
      log(`${rt.ns}/${rt.name}: terminated and removed`);
    })
    .catch((e: unknown) => log(`terminate ${rt.ns}/${rt.name}: ${errMsg(e)}`));
}

export function scheduleKill(rt: PodRt, at: number): void {
  clearTimeout(rt.killTimer);
  rt.killAtMs = at;
  rt.killTimer = setTimeout(
    () => {
      for (const ctr of rt.ctrs.values()) {
        if (ctr.proc) {
          log(`${rt.ns}/${rt.name}/${ctr.spec.name}: grace period over, SIGKILL`);
          killGroup(ctr, 'SIGKILL');
        }
      }
    },
    Math.max(0, at - Date.now()),
  );
}

export async function stopContainers(k: Kubelet, rt: PodRt): Promise<void> {
  await Promise.all(
    [...rt.ctrs.values()].map(async (ctr) => {
      if (!ctr.proc) return;
      const pre = ctr.spec.lifecycle?.preStop;
      if (pre?.exec?.command?.length && ctr.pid) {
        const left = Math.max(0, (rt.killAtMs ?? Date.now()) - Date.now());
        await run('nsenter', ['-t', String(ctr.pid), '-n', '-m', '-u', '--', ...pre.exec.command], { timeout: left });
      } else if (pre?.sleep?.seconds) {
        const left = Math.max(0, (rt.killAtMs ?? Date.now()) - Date.now());
        await sleep(Math.min(left, pre.sleep.seconds * 1000));
      }
      k.event(rt, 'Normal', 'Killing', `Stopping container ${ctr.spec.name}`, `spec.containers{${ctr.spec.name}}`);
      killGroup(ctr, 'SIGTERM');
      await ctr.exited;
    }),
  );
}
