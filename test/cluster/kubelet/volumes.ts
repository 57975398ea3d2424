// A pod's volumes as files under its directory (ConfigMaps, Secrets, projected ServiceAccount tokens that are
// refreshed, the downward API) and the bind mounts that put them where each container expects them.
import fs from 'node:fs';
import path from 'node:path';
import type { V1Container, V1Volume } from '@kubernetes/client-node';
import { getConfigMapData, getSecretData, fieldRef } from './env.ts';
import type { Kubelet } from './main.ts';
import { log, errMsg, type PodRt } from './pod-runtime.ts';

export function writeFileAtomic(file: string, content: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content, { mode });
  fs.renameSync(tmp, file);
}

/** Materializes the pod's volumes under <podDir>/volumes; returns the earliest token refresh time. */
export async function materializeVolumes(k: Kubelet, rt: PodRt): Promise<number | undefined> {
  let refreshAt: number | undefined;
  const vols = rt.pod.spec?.volumes ?? ([] as V1Volume[]);
  for (const v of vols) {
    const dir = path.join(rt.dir, 'volumes', v.name);
    fs.mkdirSync(dir, { recursive: true });
    const writeItems = (data: Record<string, string>, items?: { key: string; path: string }[]) => {
      const list = items?.length ? items : Object.keys(data).map((k) => ({ key: k, path: k }));
      for (const it of list) {
        const val = data[it.key];
        if (val !== undefined) writeFileAtomic(path.join(dir, it.path), val);
      }
    };
    if (v.emptyDir) continue;
    if (v.configMap)
      writeItems(
        await getConfigMapData(k, rt.ns, v.configMap.name ?? '', v.configMap.optional ?? false),
        v.configMap.items,
      );
    else if (v.secret)
      writeItems(await getSecretData(k, rt.ns, v.secret.secretName ?? '', v.secret.optional ?? false), v.secret.items);
    else if (v.projected) {
      for (const s of v.projected.sources ?? []) {
        if (s.serviceAccountToken) {
          const exp = s.serviceAccountToken.expirationSeconds ?? 3607;
          const tr = await k.core.createNamespacedServiceAccountToken({
            name: rt.pod.spec?.serviceAccountName ?? 'default',
            namespace: rt.ns,
            body: {
              spec: {
                audiences: s.serviceAccountToken.audience ? [s.serviceAccountToken.audience] : [],
                expirationSeconds: exp,
                boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: rt.name, uid: rt.uid },
              },
            },
          });
          writeFileAtomic(path.join(dir, s.serviceAccountToken.path), tr.status?.token ?? '', 0o600);
          const at = Date.now() + exp * 800;
          refreshAt = refreshAt === undefined ? at : Math.min(refreshAt, at);
        } else if (s.configMap) {
          // kube-root-ca.crt may not be published yet right after a namespace is made: use our CA.
          let data: Record<string, string>;
          if (s.configMap.name === 'kube-root-ca.crt') data = { 'ca.crt': k.caPem };
          else data = await getConfigMapData(k, rt.ns, s.configMap.name ?? '', s.configMap.optional ?? false);
          writeItems(data, s.configMap.items);
        } else if (s.secret) {
          writeItems(await getSecretData(k, rt.ns, s.secret.name ?? '', s.secret.optional ?? false), s.secret.items);
        } else if (s.downwardAPI) {
          for (const it of s.downwardAPI.items ?? []) {
            if (it.fieldRef) writeFileAtomic(path.join(dir, it.path), fieldRef(rt, it.fieldRef.fieldPath));
          }
        }
      }
    } else if (v.downwardAPI) {
      for (const it of v.downwardAPI.items ?? []) {
        if (it.fieldRef) writeFileAtomic(path.join(dir, it.path), fieldRef(rt, it.fieldRef.fieldPath));
      }
    } else if (!v.hostPath) {
      log(`${rt.ns}/${rt.name}: volume ${v.name} of an unsupported type is an empty directory`);
    }
  }
  return refreshAt;
}

export function scheduleRefresh(k: Kubelet, rt: PodRt, at: number): void {
  clearTimeout(rt.refreshTimer);
  rt.refreshTimer = setTimeout(
    () => {
      if (rt.terminating) return;
      materializeVolumes(k, rt).then(
        (next) => {
          if (next !== undefined) scheduleRefresh(k, rt, next);
        },
        (e: unknown) => {
          log(`${rt.ns}/${rt.name}: token refresh failed: ${errMsg(e)}`);
          scheduleRefresh(k, rt, Date.now() + 10_000);
        },
      );
    },
    Math.max(1000, at - Date.now()),
  );
}

/** As the kubelet does on a pod update: downward-API files follow label and annotation changes, also while terminating. */
export function refreshDownwardApi(rt: PodRt): void {
  for (const v of rt.pod.spec?.volumes ?? []) {
    const items = [
      ...(v.downwardAPI?.items ?? []),
      ...(v.projected?.sources ?? []).flatMap((source) => source.downwardAPI?.items ?? []),
    ];
    const dir = path.join(rt.dir, 'volumes', v.name);
    if (items.length === 0 || !fs.existsSync(dir)) continue;
    for (const it of items)
      if (it.fieldRef) writeFileAtomic(path.join(dir, it.path), fieldRef(rt, it.fieldRef.fieldPath));
  }
}

export function bindsFor(rt: PodRt, c: V1Container): { src: string; dst: string }[] {
  const out: { src: string; dst: string }[] = [];
  const policy = rt.pod.spec?.dnsPolicy ?? 'ClusterFirst';
  if (!rt.pod.spec?.hostNetwork && (policy === 'ClusterFirst' || policy === 'ClusterFirstWithHostNet')) {
    out.push({ src: path.join(rt.dir, 'resolv.conf'), dst: '/etc/resolv.conf' });
  }
  out.push({ src: path.join(rt.dir, 'hosts'), dst: '/etc/hosts' });
  for (const m of c.volumeMounts ?? []) {
    const v = rt.pod.spec?.volumes?.find((x) => x.name === m.name);
    if (!v) continue;
    let src = v.hostPath ? v.hostPath.path : path.join(rt.dir, 'volumes', v.name);
    if (m.subPath) src = path.join(src, m.subPath);
    out.push({ src, dst: m.mountPath });
  }
  return out;
}
