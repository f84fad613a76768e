import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_TABLE } from '@imi/core';
import { DEFAULT_OPTIONS } from '@imi/server';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string): string => readFileSync(root + path, 'utf8');

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => '-' + letter.toLowerCase());
}

describe('docs stay true to the code', () => {
  it('docs/errors.md is generated from the current error table', async () => {
    // @ts-ignore -- a plain .mjs script: untyped, or typed from its JS under allowJs (tsconfig.test.json)
    const { renderErrorsDoc } = (await import('../scripts/gen-errors-doc.mjs')) as { renderErrorsDoc: () => string };
    expect(read('docs/errors.md')).toBe(renderErrorsDoc());
    for (const code of Object.keys(ERROR_TABLE)) expect(read('docs/errors.md')).toContain(`\`${code}\``);
  });

  it('the configuration reference lists every option with its flag and its default', () => {
    const operations = read('docs/operations.md');
    const rows = new Map<string, string>();
    for (const line of operations.split('\n')) {
      const match = /^\| `(\w+)` \| `--([\w-]+)`[^|]*\| ([^|]+) \|/.exec(line);
      if (match) rows.set(match[1]!, line);
    }
    for (const [name, value] of Object.entries(DEFAULT_OPTIONS)) {
      const row = rows.get(name);
      expect(row, `docs/operations.md has no row for ${name}`).toBeDefined();
      expect(row).toContain(`\`--${kebab(name)}\``);
      if (typeof value === 'number' || (typeof value === 'string' && !value.includes('\n'))) {
        expect(row, `default of ${name}`).toContain(`\`${String(value)}\``);
      }
    }
  });

  it('the protocol reference names every error code sent on the wire', () => {
    const protocol = read('docs/protocol.md');
    for (const code of ['IMI_BAD_FRAME', 'IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM', 'IMI_UNKNOWN_ID', 'IMI_AUTH', 'IMI_APP_BUSY', 'IMI_REPLACED', 'IMI_DEP_TIMEOUT', 'IMI_LIMIT']) {
      expect(protocol).toContain(`\`${code}\``);
    }
  });
});
