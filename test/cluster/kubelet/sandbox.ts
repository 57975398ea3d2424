// Each pod's network sandbox: its own network namespace with a veth on the cluster bridge and a pod IP.
import { run, runOk } from '../../support/command.ts';
import {
  BRIDGE,
  BRIDGE_IP,
  clusterNetnses,
  POD_PREFIX_LEN,
  netnsInode,
  netnsPath,
  pidsInNetns,
} from '../internal/common.ts';
import type { Kubelet } from './main.ts';
import { log, type PodRt } from './pod-runtime.ts';

const SUBNET = BRIDGE_IP.split('.').slice(0, 3).join('.');

export function allocIp(k: Kubelet): number {
  for (let i = 0; i < 253; i++) {
    const o = k.nextIp;
    k.nextIp = k.nextIp >= 254 ? 2 : k.nextIp + 1;
    if (!k.usedIps.has(o)) {
      k.usedIps.add(o);
      return o;
    }
  }
  throw new Error('pod IP range exhausted');
}

export async function makeSandbox(k: Kubelet, rt: PodRt): Promise<void> {
  const octet = allocIp(k);
  rt.ip = `${SUBNET}.${octet}`;
  rt.netns = `${k.p.netns}-${octet}`;
  rt.veth = `bkav${octet}`;
  await run('ip', ['netns', 'del', rt.netns]);
  await run('ip', ['link', 'del', rt.veth]);
  await runOk('ip', ['netns', 'add', rt.netns]);
  await runOk('ip', ['link', 'add', rt.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', rt.netns]);
  await runOk('ip', ['link', 'set', rt.veth, 'master', BRIDGE, 'up']);
  const ipn = (...a: string[]) => runOk('ip', ['-n', rt.netns ?? '', ...a]);
  await ipn('link', 'set', 'lo', 'up');
  await ipn('addr', 'add', `${rt.ip}/${POD_PREFIX_LEN}`, 'dev', 'eth0');
  await ipn('link', 'set', 'eth0', 'up');
  await ipn('route', 'add', 'default', 'via', BRIDGE_IP);
}

export async function removeSandbox(k: Kubelet, rt: PodRt): Promise<void> {
  if (rt.sandboxRemoved) return;
  rt.sandboxRemoved = true;
  if (rt.netns) {
    const ino = netnsInode(netnsPath(rt.netns));
    if (ino !== undefined) {
      for (const pid of pidsInNetns(new Set([ino]))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await run('ip', ['netns', 'del', rt.netns]);
  }
  if (rt.veth) await run('ip', ['link', 'del', rt.veth]);
  if (rt.ip) k.usedIps.delete(Number(rt.ip.split('.')[3]));
}

export async function cleanupLeftovers(k: Kubelet): Promise<void> {
  const names = clusterNetnses(k.p.netns, false);
  const inodes = new Set(names.map((n) => netnsInode(netnsPath(n))).filter((i): i is number => i !== undefined));
  for (const pid of inodes.size ? pidsInNetns(inodes) : []) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const n of names) await run('ip', ['netns', 'del', n]);
  if (names.length) log(`cleaned up ${names.length} leftover pod netns`);
}
