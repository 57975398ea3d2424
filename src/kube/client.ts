import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../errors.ts';

const inClusterTokenPath = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads credentials: the explicit kubeconfig when given; otherwise in-cluster (ServiceAccount token and
 * KUBERNETES_SERVICE_HOST), then the standard kubeconfig ($KUBECONFIG, ~/.kube/config).
 */
export function loadKubeConfig(kubeconfigPath: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath !== undefined) {
    if (!existsSync(kubeconfigPath)) {
      throw new ConfigError(
        `invalid value ${JSON.stringify(kubeconfigPath)} for --kubeconfig / KUBECONFIG_PATH: file does not exist`,
      );
    }
    try {
      kc.loadFromFile(kubeconfigPath);
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      throw new ConfigError(
        `invalid value ${JSON.stringify(kubeconfigPath)} for --kubeconfig / KUBECONFIG_PATH: ${reason}`,
      );
    }
  } else if (env['KUBERNETES_SERVICE_HOST'] && existsSync(inClusterTokenPath)) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError(
      'no Kubernetes cluster configured: set --kubeconfig / KUBECONFIG_PATH, or run in a pod with a ServiceAccount',
    );
  }
  return kc;
}
