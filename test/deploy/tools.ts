// Locates the CLI tools the deploy tests drive: helm (built by scripts/build-helm.sh) and kubectl (built by
// scripts/build-binaries.sh for the local cluster, else the one on PATH), and renders manifests with them.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { run, type RunResult } from '../support/command.ts';
import { REPO_ROOT } from '../support/repo-root.ts';

// The deploy tests take the repository's paths from here.
export { REPO_ROOT };
export const CHART_DIR = path.join(REPO_ROOT, 'charts/buildkitd-autoscaler');
export const KUSTOMIZE_DIR = path.join(REPO_ROOT, 'deploy/kubernetes');
export const KUSTOMIZE_BUILDKITD_DIR = path.join(REPO_ROOT, 'deploy/kubernetes/buildkitd');
export const KUSTOMIZE_BUILDKITD_MTLS_DIR = path.join(REPO_ROOT, 'deploy/kubernetes/buildkitd-mtls');

/** A rendered Kubernetes object; fields are read through the typed views in contract.ts. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** run() from the repository root by default; a tool that cannot start throws naming it. */
export function runTool(file: string, args: readonly string[], cwd = REPO_ROOT): Promise<RunResult> {
  return run(file, args, { cwd }).catch((error: unknown) => {
    throw new Error(`cannot run ${file}`, { cause: error });
  });
}

let helmPath: Promise<string> | undefined;

/** helm from scripts/build-helm.sh (built on first use, then reused from ~/.cache). */
export function helm(): Promise<string> {
  helmPath ??= (async () => {
    const result = await runTool('bash', [path.join(REPO_ROOT, 'scripts/build-helm.sh'), 'helm']);
    const line = result.stdout.split('\n').find((l) => l.startsWith('helm '));
    if (result.code !== 0 || !line) throw new Error(`scripts/build-helm.sh helm failed:\n${result.stderr}`);
    return line.slice('helm '.length);
  })();
  return helmPath;
}

let kubectlPath: Promise<string> | undefined;

/** kubectl from the local cluster's build (scripts/build-binaries.sh), else from PATH. */
export function kubectl(): Promise<string> {
  kubectlPath ??= (async () => {
    const dir = await runTool('bash', [path.join(REPO_ROOT, 'scripts/build-binaries.sh'), '--print-dir']).catch(
      () => undefined,
    );
    const built = dir?.code === 0 ? path.join(dir.stdout.trim(), 'kubectl') : undefined;
    if (built && existsSync(built)) return built;
    const onPath = await runTool('bash', ['-c', 'command -v kubectl']);
    if (onPath.code === 0 && onPath.stdout.trim()) return onPath.stdout.trim();
    throw new Error(
      'kubectl not found: run scripts/build-binaries.sh (builds it into ~/.cache/buildkitd-autoscaler/bin)',
    );
  })();
  return kubectlPath;
}

let binDirPath: Promise<string> | undefined;

/** A binary of scripts/build-binaries.sh (promtool, prometheus, ...); fails, never skips, when it is not built. */
export async function builtBinary(name: string): Promise<string> {
  binDirPath ??= runTool('bash', [path.join(REPO_ROOT, 'scripts/build-binaries.sh'), '--print-dir']).then((r) =>
    r.stdout.trim(),
  );
  const file = path.join(await binDirPath, name);
  if (!existsSync(file)) throw new Error(`${file} is missing: run scripts/build-binaries.sh`);
  return file;
}

/** The prometheus-operator CRDs scripts/build-binaries.sh downloads (ServiceMonitor, PodMonitor, PrometheusRule). */
export async function prometheusOperatorCrds(): Promise<string[]> {
  const dir = (
    await runTool('bash', [path.join(REPO_ROOT, 'scripts/build-binaries.sh'), '--print-crd-dir'])
  ).stdout.trim();
  const files = ['servicemonitors', 'podmonitors', 'prometheusrules'].map((c) =>
    path.join(dir, `monitoring.coreos.com_${c}.yaml`),
  );
  for (const file of files) if (!existsSync(file)) throw new Error(`${file} is missing: run scripts/build-binaries.sh`);
  return files;
}

export function parseManifests(yamlText: string): Manifest[] {
  return loadAll(yamlText).filter((doc): doc is Manifest => typeof doc === 'object' && doc !== null);
}

export interface HelmOptions {
  release?: string;
  namespace?: string;
  /** Extra helm arguments, such as --set or --kube-version. */
  args?: readonly string[];
}

/** `helm template` with a values file holding `values`; rejects with helm's message when it fails. */
export async function helmTemplate(valuesFile: string | undefined, options: HelmOptions = {}): Promise<Manifest[]> {
  const result = await helmTemplateRaw(valuesFile, options);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

export async function helmTemplateRaw(valuesFile: string | undefined, options: HelmOptions = {}): Promise<RunResult> {
  const args = ['template', options.release ?? 'bka', CHART_DIR, '--namespace', options.namespace ?? 'builds'];
  if (valuesFile) args.push('--values', valuesFile);
  args.push(...(options.args ?? []));
  return runTool(await helm(), args);
}

export async function kustomize(dir: string): Promise<Manifest[]> {
  const result = await runTool(await kubectl(), ['kustomize', dir]);
  if (result.code !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** The one object of this kind (and name, when given); throws with what there is when not exactly one. */
export function findOne<T = Manifest>(docs: readonly Manifest[], kind: string, name?: string): T {
  const matches = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  if (matches.length !== 1) {
    const have = docs.map((d) => `${d.kind}/${d.metadata.name}`).join(', ');
    throw new Error(`expected one ${kind}${name ? `/${name}` : ''}, found ${matches.length} among: ${have}`);
  }
  return matches[0] as T;
}
