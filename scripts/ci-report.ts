// Turns an E2E run's ci-report/ into what a reviewer sees on GitHub: the job summary (REPORT.md),
// `::warning` annotations for the key diagnostics, and the body of the one PR comment the workflow
// keeps up to date (found again by a hidden marker).
//
// Input, written by test/e2e/run.sh (the whole artifact map: test/e2e/report.ts):
//   <dir>/REPORT.md          the human report (may be missing when the run died early)
//   <dir>/diagnostics.json   optional: [{ "level": "warning" | "error" | "notice", "title": "...", "message": "..." }]
// Usage: node scripts/ci-report.ts [--dir ci-report] [--outcome success|failure|cancelled] [--run-url URL]
//          [--artifact-url URL]   (the uploaded report directory, so the comment links REPORT.md in it)
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

export const DEFAULT_MARKER = '<!-- buildkitd-autoscaler:k8s-e2e -->';
/** GitHub rejects comment bodies over 65536 characters. */
export const COMMENT_LIMIT = 65536;
/** GitHub shows at most 10 annotations of each level per step; the rest are dropped silently. */
export const ANNOTATION_LIMIT = 10;

export const DIAGNOSTIC_LEVELS = ['error', 'warning', 'notice'] as const;
export type DiagnosticLevel = (typeof DIAGNOSTIC_LEVELS)[number];

export interface Diagnostic {
  level: DiagnosticLevel;
  title: string;
  message: string;
}

/** Workflow-command data escaping: without it a newline ends the annotation early. */
export function escapeData(text: string): string {
  return text.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
}

/** Property values (title=...) also must not contain the ':' and ',' separators. */
export function escapeProperty(text: string): string {
  return escapeData(text).replaceAll(':', '%3A').replaceAll(',', '%2C');
}

export function parseDiagnostics(json: string): Diagnostic[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) throw new Error('diagnostics.json must hold an array');
  return parsed.map((entry: unknown, index) => {
    const item = entry as Partial<Record<keyof Diagnostic, unknown>>;
    const level = DIAGNOSTIC_LEVELS.find((l) => l === item.level);
    if (!level || typeof item.title !== 'string' || typeof item.message !== 'string') {
      throw new Error(`diagnostics.json[${index}]: needs level (error, warning, notice), title and message`);
    }
    return { level, title: item.title, message: item.message };
  });
}

/** One `::<level> title=...::message` line per diagnostic, at most ANNOTATION_LIMIT per level. */
export function annotationLines(diagnostics: readonly Diagnostic[]): string[] {
  const lines: string[] = [];
  for (const level of DIAGNOSTIC_LEVELS) {
    const ofLevel = diagnostics.filter((d) => d.level === level);
    const shown = ofLevel.slice(0, ANNOTATION_LIMIT);
    for (const d of shown) lines.push(`::${level} title=${escapeProperty(d.title)}::${escapeData(d.message)}`);
    const hidden = ofLevel.length - shown.length;
    if (hidden > 0)
      lines.push(
        `::${level} title=${escapeProperty(`${hidden} more`)}::${escapeData(`${hidden} more ${level} diagnostics are in REPORT.md`)}`,
      );
  }
  return lines;
}

export interface RunInfo {
  outcome: string;
  runUrl?: string;
  /** Where the uploaded report directory (REPORT.md and the rest of the artifact map) can be downloaded. */
  artifactUrl?: string;
}

const OUTCOME_ICON: Record<string, string> = { success: '✅', failure: '❌', cancelled: '⚪' };

function heading(run: RunInfo): string {
  return `## ${OUTCOME_ICON[run.outcome] ?? '❔'} Kubernetes E2E: ${run.outcome}`;
}

function missingReport(run: RunInfo): string {
  return `No REPORT.md was written: the run stopped before the report (see the job log${run.runUrl ? ` at ${run.runUrl}` : ''}).`;
}

export function stepSummary(report: string | undefined, run: RunInfo): string {
  return `${heading(run)}\n\n${report?.trim() || missingReport(run)}\n`;
}

/** The PR comment: marker first (so the workflow finds it again), then the report, cut to fit. */
export function prComment(report: string | undefined, run: RunInfo, marker = DEFAULT_MARKER): string {
  const links = [
    ...(run.artifactUrl
      ? [
          `[REPORT.md with every artifact (results JSON, objects, events, scale decisions, pod logs, timeline)](${run.artifactUrl})`,
        ]
      : []),
    ...(run.runUrl ? [`[Full run, artifacts and logs](${run.runUrl})`] : []),
  ];
  const footer = links.length > 0 ? `\n\n${links.join(' · ')}\n` : '\n';
  const head = `${marker}\n${heading(run)}\n\n`;
  let body = report?.trim() || missingReport(run);
  const room = COMMENT_LIMIT - head.length - footer.length;
  if (body.length > room) {
    const note = '\n\n… (cut to fit a comment; the whole REPORT.md is in the ci-report artifact)';
    body = body.slice(0, room - note.length) + note;
  }
  return head + body + footer;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: 'ci-report' },
      outcome: { type: 'string', default: 'success' },
      'run-url': { type: 'string' },
      'artifact-url': { type: 'string' },
    },
  });
  const dir = values.dir;
  const run: RunInfo = {
    outcome: values.outcome,
    ...(values['run-url'] ? { runUrl: values['run-url'] } : {}),
    ...(values['artifact-url'] ? { artifactUrl: values['artifact-url'] } : {}),
  };
  const report = await readOptional(path.join(dir, 'REPORT.md'));
  const diagnosticsJson = await readOptional(path.join(dir, 'diagnostics.json'));
  const diagnostics = diagnosticsJson ? parseDiagnostics(diagnosticsJson) : [];

  const summary = stepSummary(report, run);
  const summaryFile = process.env.GITHUB_STEP_SUMMARY;
  if (summaryFile) await appendFile(summaryFile, summary);
  else process.stdout.write(summary);

  for (const line of annotationLines(diagnostics)) console.log(line);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'pr-comment.md'), prComment(report, run, process.env.REPORT_MARKER || DEFAULT_MARKER));
}

if (import.meta.main) await main();
