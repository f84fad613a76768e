// Writes docs/errors.md from the one error table in @imi/core, so the docs
// cannot drift from the code (a test checks the file is current).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_TABLE } from '@imi/core';
import { root } from './ensure-setup.mjs';

export function renderErrorsDoc() {
  const rows = Object.entries(ERROR_TABLE).map(
    ([code, entry]) => `| \`${code}\` | ${entry.description.replace(/\|/g, '\\|')} | ${entry.howToSolve.replace(/\|/g, '\\|')} |`,
  );
  return [
    '---',
    'title: Errors',
    '---',
    '',
    '# Error codes',
    '',
    'Every failure imi reports carries one of these stable codes: in `error` frames on the',
    'wire, in log lines (`code`), in `stats().errors` and in metrics labels. The codes never',
    'change; the messages are for humans and may. This page is generated from',
    '`ERROR_TABLE` in `@imi/core` (`node scripts/gen-errors-doc.mjs`).',
    '',
    '| Code | Description | How to solve |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(join(root, 'docs', 'errors.md'), renderErrorsDoc());
  console.log('wrote docs/errors.md');
}
