// The E2E workflow's reporting: what a reviewer sees in the job summary, the annotations and the PR
// comment, including a run that died before writing its report. Runs the real script as CI does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  ANNOTATION_LIMIT,
  COMMENT_LIMIT,
  DEFAULT_MARKER,
  annotationLines,
  parseDiagnostics,
  prComment,
} from '../../scripts/ci-report.ts';
import { REPO_ROOT } from './tools.ts';

const execFileAsync = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'scripts/ci-report.ts');

describe('scripts/ci-report.ts', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bka-ci-report-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a multi-line message in one annotation and escapes the title separators', () => {
    const [line] = annotationLines([
      { level: 'warning', title: 'scale-up: 12.5s, slow', message: '100% of clients waited\nsee timeline' },
    ]);
    assert.equal(line, '::warning title=scale-up%3A 12.5s%2C slow::100%25 of clients waited%0Asee timeline');
  });

  it('says how many diagnostics did not fit instead of letting GitHub drop them silently', () => {
    const many = Array.from({ length: ANNOTATION_LIMIT + 3 }, (_, i) => ({
      level: 'error' as const,
      title: `e${i}`,
      message: 'm',
    }));
    const lines = annotationLines(many);
    assert.equal(lines.length, ANNOTATION_LIMIT + 1);
    assert.match(lines.at(-1) ?? '', /^::error title=3 more::3 more error diagnostics are in REPORT\.md$/);
  });

  it('rejects a diagnostics file the harness got wrong, naming the entry', () => {
    assert.throws(
      () =>
        parseDiagnostics('[{"level":"warning","title":"t","message":"m"},{"level":"fatal","title":"t","message":"m"}]'),
      /diagnostics\.json\[1\]/,
    );
    assert.throws(() => parseDiagnostics('{}'), /array/);
  });

  it('fits a huge report into one comment that still starts with the marker', () => {
    const body = prComment('x'.repeat(COMMENT_LIMIT * 2), {
      outcome: 'failure',
      runUrl: 'https://example.invalid/run/1',
    });
    assert.ok(body.length <= COMMENT_LIMIT, `comment is ${body.length} characters`);
    assert.ok(body.startsWith(`${DEFAULT_MARKER}\n`));
    assert.match(body, /cut to fit a comment/);
    assert.match(body, /\[Full run, artifacts and logs\]\(https:\/\/example\.invalid\/run\/1\)\n$/);
  });

  it('links REPORT.md in the uploaded report directory from the comment', () => {
    const body = prComment('# E2E', {
      outcome: 'success',
      runUrl: 'https://example.invalid/run/3',
      artifactUrl: 'https://example.invalid/run/3/artifacts/7',
    });
    assert.match(body, /\[REPORT\.md with every artifact [^\]]*\]\(https:\/\/example\.invalid\/run\/3\/artifacts\/7\)/);
    assert.match(body, /\[Full run, artifacts and logs\]\(https:\/\/example\.invalid\/run\/3\)\n$/);
  });

  it('writes summary, annotations and comment from a report directory, as the workflow runs it', async () => {
    const reportDir = path.join(dir, 'full');
    const summaryFile = path.join(dir, 'summary.md');
    await mkdir(reportDir, { recursive: true });
    await writeFile(
      path.join(reportDir, 'REPORT.md'),
      '# E2E\n\n| scenario | result |\n| --- | --- |\n| wake | pass |\n',
    );
    await writeFile(
      path.join(reportDir, 'diagnostics.json'),
      JSON.stringify([{ level: 'warning', title: 'slow wake', message: 'pod ready after 40s' }]),
    );
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        SCRIPT,
        '--dir',
        reportDir,
        '--outcome',
        'success',
        '--run-url',
        'https://example.invalid/run/2',
        '--artifact-url',
        'https://example.invalid/run/2/artifacts/9',
      ],
      {
        env: { ...process.env, GITHUB_STEP_SUMMARY: summaryFile, REPORT_MARKER: '<!-- test-marker -->' },
      },
    );
    assert.equal(stdout, '::warning title=slow wake::pod ready after 40s\n');
    const summary = await readFile(summaryFile, 'utf8');
    assert.match(summary, /^## ✅ Kubernetes E2E: success\n\n# E2E\n/);
    assert.match(summary, /\| wake \| pass \|/);
    const comment = await readFile(path.join(reportDir, 'pr-comment.md'), 'utf8');
    assert.ok(comment.startsWith('<!-- test-marker -->\n## ✅ Kubernetes E2E: success'));
    assert.match(
      comment,
      /\]\(https:\/\/example\.invalid\/run\/2\/artifacts\/9\)/,
      'the comment links the uploaded REPORT.md',
    );
  });

  it('still reports when the run died before writing anything', async () => {
    const reportDir = path.join(dir, 'never-created');
    const summaryFile = path.join(dir, 'summary-died.md');
    await execFileAsync(process.execPath, [SCRIPT, '--dir', reportDir, '--outcome', 'failure'], {
      env: { ...process.env, GITHUB_STEP_SUMMARY: summaryFile },
    });
    assert.match(await readFile(summaryFile, 'utf8'), /## ❌ Kubernetes E2E: failure\n\nNo REPORT\.md was written/);
    assert.match(await readFile(path.join(reportDir, 'pr-comment.md'), 'utf8'), /No REPORT\.md was written/);
  });
});
