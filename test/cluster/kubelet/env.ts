// A container's environment as the kubelet builds it: env, envFrom, field and resource references, and the
// ConfigMaps and Secrets they read.
import os from 'node:os';
import type { V1Container, V1EnvVar } from '@kubernetes/client-node';
import { BRIDGE_IP, API_PORT } from '../internal/common.ts';
import type { Kubelet } from './main.ts';
import { errMsg, errCode, type PodRt } from './pod-runtime.ts';

/** The kubelet's format for metadata.labels / metadata.annotations in a downward-API file: key="value" lines, sorted. */
const formatMap = (map: Record<string, string> | undefined) =>
  Object.keys(map ?? {})
    .sort()
    .map((key) => `${key}=${JSON.stringify(map?.[key] ?? '')}`)
    .join('\n');

function parseQuantity(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q));
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  const f = mult[m[2] ?? ''];
  return f === undefined ? undefined : n * f;
}

export async function getConfigMapData(
  k: Kubelet,
  ns: string,
  name: string,
  optional: boolean,
): Promise<Record<string, string>> {
  try {
    const cm = await k.core.readNamespacedConfigMap({ name, namespace: ns });
    return cm.data ?? {};
  } catch (e) {
    if (optional && errCode(e) === 404) return {};
    throw new Error(`configmap ${ns}/${name}: ${errMsg(e)}`);
  }
}

export async function getSecretData(
  k: Kubelet,
  ns: string,
  name: string,
  optional: boolean,
): Promise<Record<string, string>> {
  try {
    const s = await k.core.readNamespacedSecret({ name, namespace: ns });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
    for (const [k, v] of Object.entries(s.stringData ?? {})) out[k] = v;
    return out;
  } catch (e) {
    if (optional && errCode(e) === 404) return {};
    throw new Error(`secret ${ns}/${name}: ${errMsg(e)}`);
  }
}

export function fieldRef(rt: PodRt, fieldPath: string): string {
  const md = rt.pod.metadata;
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (m) return (m[1] === 'labels' ? md?.labels : md?.annotations)?.[m[2] ?? ''] ?? '';
  switch (fieldPath) {
    case 'metadata.labels':
      return formatMap(md?.labels);
    case 'metadata.annotations':
      return formatMap(md?.annotations);
    case 'metadata.name':
      return rt.name;
    case 'metadata.namespace':
      return rt.ns;
    case 'metadata.uid':
      return rt.uid;
    case 'spec.nodeName':
      return rt.pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return rt.pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return rt.ip ?? '';
    case 'status.hostIP':
    case 'status.hostIPs':
      return BRIDGE_IP;
    default:
      return '';
  }
}

export function resourceField(c: V1Container, resource: string, divisor?: string): string {
  const [kind, res] = resource.split('.') as [string, string];
  const src = kind === 'limits' ? c.resources?.limits : c.resources?.requests;
  let v = parseQuantity(src?.[res]);
  if (v === undefined) v = res === 'cpu' ? os.cpus().length : os.totalmem();
  const d = parseQuantity(divisor) ?? 1;
  return String(Math.ceil(v / d));
}

export async function resolveEnv(k: Kubelet, rt: PodRt, c: V1Container): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    PATH: `${k.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: '/root',
    HOSTNAME: rt.name,
    KUBERNETES_SERVICE_HOST: BRIDGE_IP,
    KUBERNETES_SERVICE_PORT: String(API_PORT),
    KUBERNETES_SERVICE_PORT_HTTPS: String(API_PORT),
  };
  for (const src of c.envFrom ?? []) {
    const prefix = src.prefix ?? '';
    let data: Record<string, string> = {};
    if (src.configMapRef?.name)
      data = await getConfigMapData(k, rt.ns, src.configMapRef.name, src.configMapRef.optional ?? false);
    if (src.secretRef?.name) data = await getSecretData(k, rt.ns, src.secretRef.name, src.secretRef.optional ?? false);
    for (const [k, v] of Object.entries(data)) env[prefix + k] = v;
  }
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, k: string) => env[k] ?? all);
  for (const e of c.env ?? ([] as V1EnvVar[])) {
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (e.valueFrom?.fieldRef) env[e.name] = fieldRef(rt, e.valueFrom.fieldRef.fieldPath);
    else if (e.valueFrom?.resourceFieldRef)
      env[e.name] = resourceField(c, e.valueFrom.resourceFieldRef.resource, e.valueFrom.resourceFieldRef.divisor);
    else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      const v = (await getConfigMapData(k, rt.ns, r.name ?? '', r.optional ?? false))[r.key];
      if (v === undefined && !r.optional) throw new Error(`configmap ${r.name} has no key ${r.key}`);
      if (v !== undefined) env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      const r = e.valueFrom.secretKeyRef;
      const v = (await getSecretData(k, rt.ns, r.name ?? '', r.optional ?? false))[r.key];
      if (v === undefined && !r.optional) throw new Error(`secret ${r.name} has no key ${r.key}`);
      if (v !== undefined) env[e.name] = v;
    } else env[e.name] = '';
  }
  return env;
}
