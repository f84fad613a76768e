// The decoder's fast path parses a frame that is a whole line of its chunk
// as that line, and holds a frame cut by its chunk's end (before any value
// could end in it) until its newline, then parses the line; everything else
// goes to the byte scanner. The results must be the scanner's: these cases
// give the same codes and messages fed whole (a line at a time) and one
// byte at a time (each byte held for its line, and scanned where the line is
// not one value).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameDecoder, validateAppMessage, type AppMessage, type DecodeResult, type FrameDecoderOptions } from '@imi/core';
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

describe('FrameDecoder: a frame longer than its chunk is held for its newline and parsed whole', () => {
  /** A decoder and what it gave so far. */
  function decoder(options: FrameDecoderOptions<AppMessage> = app): { decoder: FrameDecoder<AppMessage>; got: unknown[] } {
    const got: unknown[] = [];
    const d = new FrameDecoder(options, { onMessage: (message) => got.push(message), onError: (error) => got.push(`${error.code}: ${error.message}`) });
    return { decoder: d, got };
  }

  it('a hello naming 10,000 users (about 400 KiB) in 64 KiB chunks: held, counted in bufferedBytes, one message at its newline', () => {
    const known = Array.from({ length: 10_000 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const hello = { param: 'hello', data: { protocol: 1, known } };
    const wire = bytes(`${JSON.stringify(hello)}\n${OUTPUT}\n`);
    const { decoder: d, got } = decoder({ ...app, maxFrameBytes: 1024 * 1024 });
    let fed = 0;
    while (fed < wire.length) {
      const chunk = wire.subarray(fed, fed + 65_536);
      d.write(chunk);
      fed += chunk.length;
      if (fed < wire.length - OUTPUT.length - 2) {
        expect(got).toEqual([]);
        expect(d.inFrame).toBe(true);
        expect(d.bufferedBytes).toBe(fed);
      }
    }
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({ param: 'hello', data: { known } });
    expect(got[1]).toMatchObject({ param: 'output' });
    expect(d.bufferedBytes).toBe(0);
    expect(d.inFrame).toBe(false);
  });

  it('frames back to back (the Perl style) are not held: the complete one is delivered before the next chunk comes', () => {
    const { decoder: d, got } = decoder();
    d.write(bytes(`${OUTPUT}{"param":"output","data":{"id":"b","val`));
    expect(got).toHaveLength(1);
    d.write(bytes('ue":"y"}}'));
    expect(got).toHaveLength(2);
  });

  it('held past maxFrameBytes: the scanner drops it as oversize, at once, and reports it at its end; the next frame decodes', () => {
    const { decoder: d, got } = decoder({ ...app, maxFrameBytes: 100 });
    d.write(bytes(`{"param":"output","data":{"id":"a","value":"${'x'.repeat(40)}`));
    expect(d.inOversizedFrame).toBe(false);
    d.write(bytes('x'.repeat(80)));
    expect(d.inOversizedFrame).toBe(true);
    expect(d.bufferedBytes).toBe(0);
    d.write(bytes(`"}}\n${OUTPUT}\n`));
    expect(codes(got.map((g) => (typeof g === 'string' ? `${g.slice(0, g.indexOf(':'))}:` : g)))).toEqual(['IMI_BAD_FRAME', 'message']);
    expect(got[0]).toMatch(/^IMI_BAD_FRAME: frame larger than 100 bytes/);
  });

  it('held, then a newline that does not end it and a new frame: reported unterminated, the new frame decodes', () => {
    const { decoder: d, got } = decoder();
    d.write(bytes('{"param":"output","data":{"id":"a","value":"cut'));
    d.write(bytes(`\n${OUTPUT}\n`));
    expect(got).toHaveLength(2);
    // What the scanner says of these bytes fed at once.
    expect(got[0]).toMatch(/^IMI_BAD_FRAME: unterminated string/);
    expect(codes(summary(runDecoder([bytes(`{"param":"output","data":{"id":"a","value":"cut\n${OUTPUT}\n`)], app).results))).toEqual(['IMI_BAD_FRAME', 'message']);
    expect(got[1]).toMatchObject({ param: 'output' });
  });

  it('held when the stream ends: reported as a frame the stream ended inside', () => {
    const { decoder: d, got } = decoder();
    d.write(bytes('{"param":"output","data":{"id":"a","value":"cut'));
    d.end();
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^IMI_BAD_FRAME: .*stream ended inside a frame/);
    expect(d.inFrame).toBe(false);
  });
});
