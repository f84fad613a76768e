// The decoder's fast path parses a frame that is a whole line of its chunk
// as that line; everything else goes to the byte scanner. The results must
// be the scanner's: these cases give the same codes and messages fed whole
// (fast path tried) and one byte at a time (scanner only).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validateAppMessage, type AppMessage, type DecodeResult, type FrameDecoderOptions } from '@imi/core';
import { appMessage, cuts, runDecoder, splitAt } from './arbitraries.js';

const app = { validate: validateAppMessage };
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 1000) };
const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const OUTPUT = '{"param":"output","data":{"id":"a","value":"x"}}';
const NULL_FRAME = '{"param":"null"}';

/**
 * Messages and error codes of a run (an error's excerpt shows the bytes that
 * came in the frame's first chunk, so its text depends on the split).
 */
function summary(results: DecodeResult<AppMessage>[]): unknown[] {
  return results.map((r) => (r.ok ? r.message : `${r.error.code}:`));
}

/** `"message"` or the error code, per result of {@link summary}. */
function codes(summarised: unknown[]): string[] {
  return summarised.map((r) => (typeof r === 'string' ? r.slice(0, r.indexOf(':')) : 'message'));
}

/** Results fed whole, which must equal those fed one byte at a time. */
function wholeAndBytewise(wire: string, options: FrameDecoderOptions<AppMessage> = app): unknown[] {
  const input = bytes(wire);
  const whole = summary(runDecoder([input], options).results);
  const single: Buffer[] = [];
  for (let k = 0; k < input.length; k++) single.push(input.subarray(k, k + 1));
  expect(summary(runDecoder(single, options).results)).toEqual(whole);
  return whole;
}

describe('FrameDecoder: lines that are not one value go to the scanner', () => {
  it('two values on a line, garbage that ends in a brace, ESC before the newline, a CR, a batch', () => {
    const wire = [
      `${OUTPUT}${NULL_FRAME}`,
      '{"param":"output","data":{"id":"a","value":x}}',
      `${OUTPUT}\x1b`,
      `${OUTPUT}\r`,
      `[${OUTPUT},${NULL_FRAME}]`,
      `${OUTPUT} trailing words}`,
      `{"param":"output","data":{"id":"é","value":"😀"}}`,
      '',
    ].join('\n');
    expect(codes(wholeAndBytewise(wire))).toEqual([
      'message',
      'message',
      'IMI_BAD_FRAME',
      'message',
      'message',
      'message',
      'message',
      'message',
      'IMI_BAD_FRAME',
      'message',
    ]);
  });

  it('a limit above the depth the fast path walks (1,000) is still enforced on long deep lines', () => {
    const maxDepth = 1500;
    const deep = (levels: number): string => `{"param":"state","data":{"id":"a"},"updates":${'{"k":'.repeat(levels - 2)}{}${'}'.repeat(levels - 2)}}`;
    const wire = `${deep(maxDepth)}\n${deep(maxDepth + 1)}\n${NULL_FRAME}\n`;
    expect(codes(wholeAndBytewise(wire, { ...app, maxDepth }))).toEqual(['message', 'IMI_BAD_FRAME', 'message']);
    const error = runDecoder([bytes(wire)], { ...app, maxDepth }).results[1]!;
    expect(error.ok ? '' : error.error.message).toMatch(/nested deeper than 1500/);
  });

  it('valid frames one per line, with garbage lines among them, decode the same under any split', () => {
    const line = fc.oneof(
      { weight: 4, arbitrary: appMessage.map((m) => JSON.stringify(m)) },
      { weight: 1, arbitrary: fc.constantFrom(`${OUTPUT}${OUTPUT}`, '{"param":x}', `${OUTPUT}\x1b`, '{"param":"output",', '  ', `[${OUTPUT}]`) },
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), cuts, (lines, at) => {
        const input = bytes(lines.join('\n') + '\n');
        const whole = summary(runDecoder([input], app).results);
        expect(summary(runDecoder(splitAt(input, at), app).results)).toEqual(whole);
      }),
      RUNS,
    );
  });
});
