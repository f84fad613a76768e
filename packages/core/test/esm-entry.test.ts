import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Runs an ES module script in a separate plain Node process from the repository root; returns its JSON output. */
function runNode(script: string): unknown {
  // A separate Node process, so vitest's own module handling cannot hide a
  // broken import (tapable and others are CommonJS).
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  return JSON.parse(output);
}

describe('built ESM entry points', () => {
  it('each package loads from dist/ in plain Node with its named exports', () => {
    const parsed = runNode(`
      const core = await import('@imi/core');
      const out = { core: typeof core.FrameDecoder, table: Object.keys(core.ERROR_TABLE).length };
      console.log(JSON.stringify(out));
    `) as { core: string; table: number };
    expect(parsed.core).toBe('function');
    expect(parsed.table).toBeGreaterThanOrEqual(9);
  });

  it('@imi/core exports every public name from dist/', () => {
    const names = runNode(`console.log(JSON.stringify(Object.keys(await import('@imi/core')).sort()));`) as string[];
    for (const name of [
      'APP_PARAMS',
      'DEFAULT_MAX_FRAME_BYTES',
      'DEFAULT_MAX_FRAME_DEPTH',
      'DEFAULT_MAX_STATE_BYTES',
      'ERROR_CODES',
      'ERROR_TABLE',
      'FrameDecoder',
      'INTERMEDIARY_PARAMS',
      'ImiError',
      'LimitError',
      'PROTOCOL_VERSION',
      'ProtocolError',
      'SessionRegistry',
      'decodeFrames',
      'encodeFrame',
      'isImiErrorCode',
      'isJsonObject',
      'validateAppMessage',
      'validateIntermediaryMessage',
    ]) {
      expect(names).toContain(name);
    }
  });

  for (const pkg of ['@imi/server', '@imi/client']) {
    it(`${pkg} loads from dist/ in plain Node`, () => {
      // Only that the import succeeds: what the package exports is tested with the package.
      const loaded = runNode(`
        const mod = await import('${pkg}');
        console.log(JSON.stringify({ type: typeof mod, names: Object.keys(mod) }));
      `) as { type: string; names: string[] };
      expect(loaded.type).toBe('object');
      expect(Array.isArray(loaded.names)).toBe(true);
    });
  }
});
