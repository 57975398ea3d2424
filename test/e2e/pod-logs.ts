// Keeps the logs of every pod of a namespace while the run goes on, for clusters whose kubelet forgets a
// pod's logs when the pod is deleted (kind and the others): a terminated buildkitd pod or a replaced
// gateway pod would otherwise leave nothing for the report. The local cluster keeps them on disk instead.
import { spawn, type ChildProcess } from 'node:child_process';
import { KubeConfig, Watch } from '@kubernetes/client-node';

interface PodLike {
  metadata?: { name?: string };
  status?: { containerStatuses?: { name: string; restartCount?: number; state?: { running?: unknown } }[] };
}

export interface PodLogs {
  /** Stops following and returns each pod's output so far (every container, every restart), by pod name. */
  collect(): Promise<Map<string, string>>;
}

/** Follows each container with `kubectl logs -f` from the moment it runs, again after each restart. */
export async function followPodLogs(namespace: string): Promise<PodLogs> {
  const logs = new Map<string, string>();
  const followed = new Map<string, number>(); // pod/container -> restartCount being followed
  const children = new Set<ChildProcess>();
  const append = (pod: string, text: string) => logs.set(pod, (logs.get(pod) ?? '') + text);

  const follow = (pod: string, container: string, several: boolean) => {
    const child = spawn('kubectl', ['-n', namespace, 'logs', '-f', pod, '-c', container], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    if (several) append(pod, `== container ${container} ==\n`);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => append(pod, chunk));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0 && code !== null && stderr.trim())
        append(pod, `# kubectl logs -f ${pod} -c ${container} exited ${code}: ${stderr.trim()}\n`);
    });
  };

  const kc = new KubeConfig();
  kc.loadFromDefault();
  let stopped = false;
  const aborts: AbortController[] = [];
  const start = async (): Promise<void> => {
    const restart = () => {
      if (!stopped) setTimeout(() => void start().catch(restart), 1000);
    };
    aborts.push(
      await new Watch(kc).watch(
        `/api/v1/namespaces/${namespace}/pods`,
        {},
        (_type, obj) => {
          const pod = obj as PodLike;
          const name = pod.metadata?.name;
          const statuses = pod.status?.containerStatuses ?? [];
          if (!name || stopped) return;
          for (const status of statuses) {
            const key = `${name}/${status.name}`;
            const restarts = status.restartCount ?? 0;
            if (!status.state?.running || followed.get(key) === restarts) continue;
            followed.set(key, restarts);
            follow(name, status.name, statuses.length > 1);
          }
        },
        restart,
      ),
    );
  };
  await start();

  return {
    async collect() {
      stopped = true;
      for (const abort of aborts) abort.abort();
      // A follower of a running container never ends by itself; what it printed so far is the log.
      await Promise.all(
        [...children].map(
          (child) =>
            new Promise<void>((resolve) => {
              child.once('exit', () => resolve());
              child.kill();
            }),
        ),
      );
      return logs;
    },
  };
}
