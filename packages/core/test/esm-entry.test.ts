import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('built ESM entry points', () => {
  it('each package loads from dist/ in plain Node with its named exports', () => {
    // A separate Node process, so vitest's own module handling cannot hide a
    // broken import (tapable and others are CommonJS).
    const script = `
      const core = await import('@imi/core');
      const out = { core: typeof core.FrameDecoder, table: Object.keys(core.ERROR_TABLE).length };
      console.log(JSON.stringify(out));
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    const parsed = JSON.parse(output) as { core: string; table: number };
    expect(parsed.core).toBe('function');
    expect(parsed.table).toBeGreaterThanOrEqual(9);
  });
});
