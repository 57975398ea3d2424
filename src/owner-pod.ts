import { readFileSync } from 'node:fs';

const serviceAccountNamespaceFile = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/**
 * The gateway's own pod, to own its report Lease (the garbage collector then removes a dead pod's report).
 * Owner references cannot cross namespaces: only a pod in the Leases' namespace can own its report.
 */
export function ownerPod(
  pod: { identity: string; podUid: string | undefined; leaseNamespace: string },
  namespaceFile = serviceAccountNamespaceFile,
): { name: string; uid: string } | undefined {
  if (pod.podUid === undefined) return undefined;
  let podNamespace: string | undefined;
  try {
    podNamespace = readFileSync(namespaceFile, 'utf8').trim();
  } catch {
    podNamespace = undefined;
  }
  return podNamespace === undefined || podNamespace === pod.leaseNamespace
    ? { name: pod.identity, uid: pod.podUid }
    : undefined;
}
