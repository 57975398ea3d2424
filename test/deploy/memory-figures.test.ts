// The gateway's memory figures quoted next to its memory limit (the Deployment and the chart's values) are
// those of the latest benchmark in docs/performance.md, which `npm run bench -- --update-docs` rewrites:
// a new measurement that changes them fails here until the comments say the same.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CHART_DIR, KUSTOMIZE_DIR, REPO_ROOT } from './tools.ts';

/** The gateway's column of the last row of the latest measurement whose metric cell matches, and that cell. */
function latestGatewayFigure(metric: RegExp): { value: number; metric: string } {
  const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'performance.md'), 'utf8');
  const latest = /<!-- bench:latest:begin -->([\s\S]*?)<!-- bench:latest:end -->/.exec(doc)?.[1] ?? '';
  const rows = latest
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  const header = rows[0] ?? [];
  const gateway = header.indexOf('gateway');
  const metricColumn = header.indexOf('metric');
  assert.ok(gateway > 0 && metricColumn >= 0, 'the latest measurement has a metric and a gateway column');
  const row = rows.findLast((cells) => cells[0]?.startsWith('memory') && metric.test(cells[metricColumn] ?? ''));
  assert.ok(row, `the latest measurement has a row ${metric}`);
  const value = Number.parseFloat(row[gateway] ?? '');
  assert.ok(Number.isFinite(value), `a number in ${row.join(' | ')}`);
  return { value: Math.round(value), metric: row[metricColumn] ?? '' };
}

test('the Deployment and the chart quote the latest benchmark for idle memory and for the most idle connections measured', () => {
  const idle = latestGatewayFigure(/^idle\b/).value;
  // The suite opens as many idle connections as the machine's open-file limit allows (9,900 on a 20,000 limit).
  const most = latestGatewayFigure(/^[\d,]+ idle conns/);
  const count = /^[\d,]+/.exec(most.metric)?.[0] ?? '';
  const quoted = {
    'deploy/kubernetes/04-deployment.yaml': readFileSync(path.join(KUSTOMIZE_DIR, '04-deployment.yaml'), 'utf8'),
    'charts/buildkitd-autoscaler/values.yaml': readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8'),
  };
  for (const [file, text] of Object.entries(quoted)) {
    const flat = text.replace(/\n\s*#\s*/g, ' ');
    assert.match(flat, new RegExp(`~${idle} MiB\\s+resident idle`), `${file} quotes ~${idle} MiB idle`);
    assert.match(
      flat,
      new RegExp(`~${most.value} MiB with ${count} idle connections`),
      `${file} quotes ~${most.value} MiB with ${count} idle connections`,
    );
  }
});
