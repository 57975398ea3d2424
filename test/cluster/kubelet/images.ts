// The image-to-command table: which local process plays each container image the cluster can run.
import fs from 'node:fs';
import path from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import { REPO_ROOT } from '../../support/repo-root.ts';
import type { Kubelet } from './main.ts';
import type { PodRt } from './pod-runtime.ts';

export type ImageKind = 'socat' | 'buildkit' | 'gateway';

/** Which local command plays an image; undefined for images the kubelet cannot run. */
export function imageKind(image: string): ImageKind | undefined {
  let repo = image.split('@')[0] ?? '';
  const lastSlash = repo.lastIndexOf('/');
  const colon = repo.lastIndexOf(':');
  if (colon > lastSlash) repo = repo.slice(0, colon);
  if (repo === 'alpine/socat' || repo.endsWith('/alpine/socat')) return 'socat';
  if (repo === 'moby/buildkit' || repo.endsWith('/moby/buildkit')) return 'buildkit';
  if (repo.split('/').pop() === 'buildkitd-autoscaler') return 'gateway';
  return undefined;
}

export function commandFor(k: Kubelet, rt: PodRt, c: V1Container, kind: ImageKind): string[] {
  const cmd = c.command ?? [];
  const args = c.args ?? [];
  const base = (s: string) => s.split('/').pop() ?? s;
  if (kind === 'socat') return cmd.length ? [...cmd, ...args] : ['socat', ...args];
  if (kind === 'gateway') {
    const main = path.join(REPO_ROOT, 'dist', 'main.js');
    if (!fs.existsSync(main)) throw new Error(`${main} does not exist: run \`npm run build\` first`);
    return [process.execPath, main, ...args];
  }
  // buildkit: keep the buildkitd flags, run our buildkitd with a per-pod state dir and socket.
  let flags = args;
  const i = cmd.findIndex((x) => base(x) === 'buildkitd');
  if (i >= 0) flags = [...cmd.slice(i + 1), ...args];
  else if (cmd.length && base(cmd[0] ?? '') !== 'rootlesskit') flags = [...cmd.slice(1), ...args];
  const out: string[] = [path.join(k.binDir, 'buildkitd')];
  let hasAddr = false;
  for (let j = 0; j < flags.length; j++) {
    const f = flags[j] ?? '';
    const takeValue = () => (f.includes('=') ? f.slice(f.indexOf('=') + 1) : (flags[++j] ?? ''));
    if (f === '--root' || f.startsWith('--root=')) {
      takeValue();
      continue;
    }
    if (f === '--addr' || f.startsWith('--addr=')) {
      const a = takeValue();
      hasAddr = true;
      out.push(
        '--addr',
        a.startsWith('unix://') ? `unix://${path.join(rt.dir, `buildkitd-${path.basename(a.slice(7))}`)}` : a,
      );
      continue;
    }
    out.push(f);
  }
  if (!hasAddr) out.push('--addr', `unix://${path.join(rt.dir, 'buildkitd.sock')}`);
  out.push('--root', path.join(rt.dir, 'buildkit', c.name));
  if (!flags.some((f) => f.startsWith('--containerd-worker'))) out.push('--containerd-worker=false');
  return out;
}
