import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A kubeconfig file for process tests, with a token user and an API server at `server`. The default
 * address refuses connections, so a gateway started with it keeps running, unready, and says why.
 */
export function kubeconfigFile(server = 'https://127.0.0.1:9'): string {
  const path = join(mkdtempSync(join(tmpdir(), 'bka-process-')), 'kubeconfig');
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "t"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
  );
  return path;
}
