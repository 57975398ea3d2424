// Builds what a release publishes next to its image (.github/workflows/release.yml builds, pushes and signs
// the image first): the chart with appVersion and image.repository set to that image, the kustomize
// manifests pinned to its digest, and the CHANGELOG section as release notes. --dry-run does all of it
// except `helm push` (CI runs it through test/deploy/release.test.ts).
//   node scripts/release.ts --tag v0.2.0 --image ghcr.io/<owner>/<repo> --digest sha256:<hex> --out DIR
//     [--dry-run | --chart-registry oci://ghcr.io/<owner>/<repo>/charts] [--helm PATH] [--kubectl PATH]
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dump, load } from 'js-yaml';

const root = resolve(import.meta.dirname, '..');
const chartName = 'buildkitd-autoscaler';

export interface ReleaseOptions {
  tag: string;
  image: string;
  digest: string;
  out: string;
  dryRun: boolean;
  chartRegistry?: string;
  helm: string;
  kubectl: string;
}

export interface ReleaseResult {
  version: string;
  chartVersion: string;
  chartPackage: string;
  manifests: string;
  wakeCronJob: string;
  notes: string;
  /** `<registry>/<chart>@sha256:...` once pushed; undefined in a dry run. */
  chartRef?: string;
}

/** The section of CHANGELOG.md under `## <version>` (or `## [<version>]`), without its heading. */
export function changelogSection(changelog: string, version: string): string {
  const lines = changelog.split('\n');
  const heading = new RegExp(`^## \\[?${version.replaceAll('.', '\\.')}\\]?(\\s|$)`);
  const start = lines.findIndex((line) => heading.test(line));
  if (start < 0) throw new Error(`CHANGELOG.md has no "## ${version}" section: move the Unreleased entries under it`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  const body = lines
    .slice(start + 1, end < 0 ? undefined : end)
    .join('\n')
    .trim();
  if (!body) throw new Error(`CHANGELOG.md's "## ${version}" section is empty`);
  return `${body}\n`;
}

/** values.yaml with image.repository replaced in place, so every comment stays as written. */
export function withImageRepository(valuesYaml: string, repository: string): string {
  const pattern = /^(image:\n(?:[ \t]*#.*\n|[ \t]+\w+:.*\n)*?[ \t]+repository:)[ \t]*\S+[ \t]*$/m;
  if (!pattern.test(valuesYaml)) throw new Error('values.yaml has no image.repository to set');
  return valuesYaml.replace(pattern, `$1 ${repository}`);
}

/** Chart.yaml with appVersion set; the chart's own version stays as committed (its rule is in Chart.yaml). */
function withAppVersion(chartYaml: string, version: string): string {
  if (!/^appVersion:.*$/m.test(chartYaml)) throw new Error('Chart.yaml has no appVersion');
  return chartYaml.replace(/^appVersion:.*$/m, `appVersion: "${version}"`);
}

/** The chart's version must move whenever a chart file changed since the previous release tag. */
function checkChartVersionMoved(tag: string, chartVersion: string): void {
  let previous: string;
  try {
    previous = execFileSync('git', ['describe', '--tags', '--abbrev=0', '--match', 'v*', `${tag}^`], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return; // the first release, or no tags in this clone
  }
  const chartDir = `charts/${chartName}`;
  const changed = execFileSync('git', ['diff', '--name-only', previous, tag, '--', chartDir], {
    cwd: root,
    encoding: 'utf8',
  }).trim();
  if (!changed) return;
  const before = (
    load(execFileSync('git', ['show', `${previous}:${chartDir}/Chart.yaml`], { cwd: root, encoding: 'utf8' })) as {
      version: string;
    }
  ).version;
  if (before === chartVersion)
    throw new Error(
      `the chart changed since ${previous} (${changed.split('\n').join(', ')}) but its version is still ${chartVersion}: raise it in Chart.yaml`,
    );
}

export function release(options: ReleaseOptions): ReleaseResult {
  const version = /^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/.exec(options.tag)?.[1];
  if (!version) throw new Error(`--tag ${JSON.stringify(options.tag)}: expected v<major>.<minor>.<patch>`);
  const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  if (packageVersion !== version)
    throw new Error(`--tag ${options.tag} but package.json says ${packageVersion}: bump it before tagging`);
  if (!/^sha256:[0-9a-f]{64}$/.test(options.digest))
    throw new Error(`--digest ${JSON.stringify(options.digest)}: expected sha256:<64 hex digits>`);
  if (!/^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(options.image))
    throw new Error(
      `--image ${JSON.stringify(options.image)}: expected a repository without tag, e.g. ghcr.io/<owner>/<repo>`,
    );
  if (!options.dryRun && !options.chartRegistry)
    throw new Error('--chart-registry oci://... is needed unless --dry-run');

  rmSync(options.out, { recursive: true, force: true });
  mkdirSync(options.out, { recursive: true });

  const notes = join(options.out, 'release-notes.md');
  writeFileSync(notes, changelogSection(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), version));

  const chartDir = join(options.out, 'chart', chartName);
  cpSync(join(root, 'charts', chartName), chartDir, { recursive: true });
  const chartYaml = withAppVersion(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'), version);
  writeFileSync(join(chartDir, 'Chart.yaml'), chartYaml);
  writeFileSync(
    join(chartDir, 'values.yaml'),
    withImageRepository(readFileSync(join(chartDir, 'values.yaml'), 'utf8'), options.image),
  );
  const chartVersion = (load(chartYaml) as { version: string }).version;
  checkChartVersionMoved(options.tag, chartVersion);
  execFileSync(options.helm, ['lint', '--strict', chartDir], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(options.helm, ['package', chartDir, '--destination', options.out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const chartPackage = join(options.out, `${chartName}-${chartVersion}.tgz`);

  // The manifests reference the image by digest: what a release's install applies never moves.
  const kustomizeDir = join(options.out, 'kubernetes');
  cpSync(join(root, 'deploy', 'kubernetes'), kustomizeDir, { recursive: true });
  const kustomization = load(readFileSync(join(kustomizeDir, 'kustomization.yaml'), 'utf8')) as {
    images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  };
  const entry = kustomization.images?.find((i) => i.name === chartName);
  if (!entry) throw new Error(`deploy/kubernetes/kustomization.yaml has no images entry for ${chartName}`);
  delete entry.newTag;
  Object.assign(entry, { newName: options.image, digest: options.digest });
  writeFileSync(join(kustomizeDir, 'kustomization.yaml'), dump(kustomization));
  const manifests = join(options.out, `${chartName}.yaml`);
  writeFileSync(manifests, execFileSync(options.kubectl, ['kustomize', kustomizeDir], { encoding: 'utf8' }));
  const pinned = `${options.image}@${options.digest}`;
  const wakeCronJob = join(options.out, 'wake-cronjob.yaml');
  const cronJob = readFileSync(join(kustomizeDir, 'examples', 'wake-cronjob.yaml'), 'utf8');
  if (!/image: buildkitd-autoscaler:\S+/.test(cronJob))
    throw new Error('examples/wake-cronjob.yaml: no gateway image to pin');
  writeFileSync(wakeCronJob, cronJob.replace(/image: buildkitd-autoscaler:\S+/, `image: ${pinned}`));

  let chartRef: string | undefined;
  if (!options.dryRun && options.chartRegistry) {
    const pushed = execFileSync(options.helm, ['push', chartPackage, options.chartRegistry], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
    if (!digest) throw new Error(`helm push printed no digest:\n${pushed}`);
    chartRef = `${options.chartRegistry.replace(/^oci:\/\//, '')}/${chartName}@${digest}`;
  }
  return { version, chartVersion, chartPackage, manifests, wakeCronJob, notes, chartRef };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      tag: { type: 'string' },
      image: { type: 'string' },
      digest: { type: 'string' },
      out: { type: 'string', default: join(root, '.artifacts', 'release') },
      'dry-run': { type: 'boolean', default: false },
      'chart-registry': { type: 'string' },
      helm: { type: 'string', default: 'helm' },
      kubectl: { type: 'string', default: 'kubectl' },
    },
  });
  const missing = (['tag', 'image', 'digest'] as const).filter((name) => !values[name]);
  if (missing.length > 0) {
    process.stderr.write(`scripts/release.ts: missing ${missing.map((m) => `--${m}`).join(', ')}\n`);
    process.exit(2);
  }
  try {
    const result = release({
      tag: values.tag ?? '',
      image: values.image ?? '',
      digest: values.digest ?? '',
      out: resolve(values.out),
      dryRun: values['dry-run'],
      chartRegistry: values['chart-registry'],
      helm: values.helm,
      kubectl: values.kubectl,
    });
    // key=value lines, appended to $GITHUB_OUTPUT by the workflow.
    for (const [key, value] of Object.entries(result))
      if (value !== undefined)
        process.stdout.write(`${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}=${value}\n`);
  } catch (error) {
    process.stderr.write(`scripts/release.ts: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
