// Fuzzing the two parsers that face untrusted bytes: the user line splitter
// and the app frame decoder. 1,000 cases per property in the normal run;
// `pnpm fuzz` runs 100,000 (FUZZ_RUNS).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameDecoder, validateAppMessage, ProtocolError } from '@imi/core';
import { LineSplitter } from '@imi/server';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1000);
const TIMEOUT = Math.max(60_000, RUNS * 5);

/** Bytes biased towards what matters to the parsers: structure, newlines, UTF-8 lead bytes, IAC. */
const interestingByte = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x0a, 0x0d, 0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x20, 0xe2, 0x82, 0xac, 0xff, 0x00),
);
const bytes = fc.array(interestingByte, { maxLength: 3000 }).map((list) => Buffer.from(list));
const jsonish = fc
  .array(fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.constantFrom('{"param":', '[', '{', '"', '\\', '\n', ']', '}', '{"param":"output","data":{"id":"a","value":"x"}}')), { maxLength: 40 })
  .map((parts) => Buffer.from(parts.join('')));

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const point of points) {
    chunks.push(buf.subarray(last, point));
    last = point;
  }
  chunks.push(buf.subarray(last));
  return chunks;
}

describe(`fuzz (${RUNS} runs per property)`, () => {
  it('LineSplitter: never throws, never holds more than maxLineBytes, no line longer than the limit', () => {
    fc.assert(
      fc.property(bytes, fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 1, max: 512 }), (input, cuts, maxLineBytes) => {
        const lines: string[] = [];
        const splitter = new LineSplitter(maxLineBytes, { onLine: (line) => lines.push(line) });
        for (const chunk of splitAt(input, cuts)) {
          splitter.write(chunk);
          expect(splitter.bufferedBytes).toBeLessThanOrEqual(maxLineBytes);
        }
        for (const line of lines) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(maxLineBytes * 3);
        // As many lines as LFs: nothing is lost or invented.
        expect(lines.length).toBe(input.filter((b) => b === 0x0a).length);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('LineSplitter: without overflow, any chunking gives the lines of the whole', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }).filter((s) => !s.includes('\n')), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (texts, cuts) => {
        const whole = Buffer.from(texts.map((t) => t + '\n').join(''));
        const lines: string[] = [];
        const splitter = new LineSplitter(1 << 20, { onLine: (line) => lines.push(line) });
        for (const chunk of splitAt(whole, cuts)) splitter.write(chunk);
        expect(lines).toEqual(texts.map((t) => (t.endsWith('\r') ? t.slice(0, -1) : t)));
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('FrameDecoder: random bytes in random chunks never throw and never make it hold more than its limit', () => {
    fc.assert(
      fc.property(fc.oneof(bytes, jsonish), fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 16, max: 4096 }), (input, cuts, maxFrameBytes) => {
        let messages = 0;
        let errors = 0;
        const decoder = new FrameDecoder(
          { validate: validateAppMessage, maxFrameBytes },
          {
            onMessage: () => messages++,
            onError: (error) => {
              expect(error).toBeInstanceOf(ProtocolError);
              errors++;
            },
          },
        );
        for (const chunk of splitAt(input, cuts)) {
          decoder.write(chunk);
          expect(decoder.bufferedBytes).toBeLessThanOrEqual(maxFrameBytes);
        }
        decoder.end();
        expect(decoder.bufferedBytes).toBe(0);
        expect(decoder.messagesDecoded).toBe(messages);
        expect(decoder.errorsReported).toBe(errors);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);
});
