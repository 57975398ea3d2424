// Prints docs/troubleshooting.md's table of log codes from src/error-docs.ts, so the two cannot drift.
// `node scripts/error-codes-table.ts` prints it; src/error-docs.test.ts checks the document contains it.
import { errorDocs } from '../src/error-docs.ts';

export function errorCodesTable(): string {
  const rows = Object.entries(errorDocs).map(([code, doc]) => `| \`${code}\` | ${doc.meaning} | ${doc.remedy} |`);
  return ['| code | meaning | what to do |', '| --- | --- | --- |', ...rows].join('\n');
}

if (import.meta.main) process.stdout.write(`${errorCodesTable()}\n`);
