// The release's dry run (scripts/release.ts, everything the release workflow does but the push): the chart
// it packages and the manifests it renders reference the image that release publishes, and the notes are
// the CHANGELOG section of that version.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { changelogSection, release, type ReleaseResult, withImageRepository } from '../../scripts/release.ts';
import { gatewayContainer } from './contract.ts';
import { helm, kubectl, parseManifests, REPO_ROOT, runTool } from './tools.ts';

const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const image = 'ghcr.io/example-owner/buildkitd-autoscaler';
const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('release dry run', () => {
  let result: ReleaseResult;
  before(async () => {
    result = release({
      tag: `v${version}`,
      image,
      digest,
      out: mkdtempSync(path.join(tmpdir(), 'bka-release-')),
      dryRun: true,
      helm: await helm(),
      kubectl: await kubectl(),
    });
  });

  it('packages the chart with appVersion and the default image set to the released image', async () => {
    const chartYaml = execFileSync(await helm(), ['show', 'chart', result.chartPackage], { encoding: 'utf8' });
    assert.match(chartYaml, new RegExp(`^appVersion: "?${version.replaceAll('.', '\\.')}"?$`, 'm'));
    const rendered = await runTool(await helm(), ['template', 'bka', result.chartPackage, '--namespace', 'builds']);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.equal(gatewayContainer(parseManifests(rendered.stdout)).image, `${image}:${version}`);
  });

  it('renders the kustomize manifests with the gateway pinned to the image digest', () => {
    const docs = parseManifests(readFileSync(result.manifests, 'utf8'));
    assert.equal(gatewayContainer(docs).image, `${image}@${digest}`);
    assert.ok(
      docs.some((d) => d.kind === 'Role') && docs.some((d) => d.kind === 'Service'),
      'the whole install, not only the Deployment',
    );
    const [cronJob] = parseManifests(readFileSync(result.wakeCronJob, 'utf8'));
    assert.match(JSON.stringify(cronJob), new RegExp(`"image":"${image}@${digest}"`));
  });

  it('writes the CHANGELOG section of the version as release notes', () => {
    const notes = readFileSync(result.notes, 'utf8');
    assert.equal(notes, changelogSection(readFileSync(path.join(REPO_ROOT, 'CHANGELOG.md'), 'utf8'), version));
    assert.doesNotMatch(notes, /^## /m, 'one section only');
  });

  it('refuses a tag that is not the package version, and a missing CHANGELOG section', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'bka-release-'));
    const [helmPath, kubectlPath] = [await helm(), await kubectl()];
    assert.throws(
      () => release({ tag: 'v99.0.0', image, digest, out, dryRun: true, helm: 'helm', kubectl: 'kubectl' }),
      /package\.json says/,
    );
    assert.throws(() => changelogSection('# Changelog\n\n## 1.0.0\n- x\n', '1.0.1'), /no "## 1\.0\.1" section/);
    assert.throws(
      () =>
        release({
          tag: `v${version}`,
          image,
          digest: 'latest',
          out,
          dryRun: true,
          helm: helmPath,
          kubectl: kubectlPath,
        }),
      /expected sha256/,
    );
  });

  it('sets only image.repository in values.yaml, comments kept', () => {
    const values = readFileSync(path.join(REPO_ROOT, 'charts/buildkitd-autoscaler/values.yaml'), 'utf8');
    const changed = withImageRepository(values, image);
    const diff = changed.split('\n').filter((line, i) => line !== values.split('\n')[i]);
    assert.deepEqual(diff, [`  repository: ${image}`]);
  });
});
