// Prints README's configuration table from the definitions the program parses, so the two cannot drift.
// `node scripts/config-table.ts` prints it; src/readme-config.test.ts checks README.md contains it.
import { optionDefinitions } from '../src/config.ts';

export function configTable(): string {
  const rows = optionDefinitions.map(
    (d) =>
      `| \`--${d.flag}\` | \`${d.env}\` | ${d.defaultText === undefined ? 'none' : `\`${d.defaultText}\``} | ${d.description} |`,
  );
  return ['| flag | env (wins over flag) | default | what it does |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

if (import.meta.main) process.stdout.write(`${configTable()}\n`);
