// Garbage between frames (an app printing its debug log to the wrong socket,
// invalid JSON in a loop): every valid frame around it is still decoded,
// a stray line costs a report or a few rather than one per word, and the
// shortcut that rejects garbage without JSON.parse never rejects valid JSON.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validateAppMessage } from '@imi/core';
import { cuts, kinds, runDecoder, splitAt } from './arbitraries.js';

const app = { validate: validateAppMessage };
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 1000) };
const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const OUTPUT = '{"param":"output","data":{"id":"a","value":"x"}}';

describe('FrameDecoder: garbage between frames', () => {
  it('a stray log line is one report per run of text, wherever the chunks split it; the frames around it are decoded', () => {
    const wire = bytes(`${OUTPUT}\nDEBUG: user 123 said "hello" to everyone\n${OUTPUT}\nWARN {x} and more words\n${OUTPUT}\n`);
    for (let a = 0; a <= wire.length; a++) {
      const run = runDecoder([wire.subarray(0, a), wire.subarray(a)], app);
      // The first line is one run; the second is a run, a broken object, a run.
      expect(kinds(run.results)).toEqual(['message', 'IMI_BAD_FRAME', 'message', 'IMI_BAD_FRAME', 'IMI_BAD_FRAME', 'IMI_BAD_FRAME', 'message']);
    }
    const first = runDecoder([wire], app).results[1]!;
    expect(first.ok ? '' : first.error.message).toBe('not valid JSON: "DEBUG: user 123 said \\"hello\\" to everyone"');
  });

  it('a megabyte of words on one line is a single report', () => {
    const run = runDecoder([bytes('a b '.repeat(100_000) + '\n'), bytes(OUTPUT + '\n')], app);
    expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
  });

  it('invalid JSON in a loop: one report per bad frame, and every valid frame between them is decoded', () => {
    const wire = bytes(('{"param": nope}\n'.repeat(7) + OUTPUT + '\n').repeat(1000));
    const chunks = [];
    for (let at = 0; at < wire.length; at += 1000) chunks.push(wire.subarray(at, at + 1000));
    const run = runDecoder(chunks, app);
    expect(run.results.filter((r) => !r.ok)).toHaveLength(7000);
    expect(run.results.filter((r) => r.ok)).toHaveLength(1000);
  });

  it('valid JSON of any shape and spacing is never taken for garbage', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(undefined, 1, '\t', ' \r\n  '), cuts, (value, space, at) => {
        const frame = `{"param":"null","data":${JSON.stringify(value, null, space)}}\n`;
        const run = runDecoder(splitAt(bytes(frame), at), app);
        expect(kinds(run.results)).toEqual(['message']);
      }),
      RUNS,
    );
  });

  it('garbage lines of any text never hide the valid frame after them', () => {
    const line = fc.string({ unit: 'grapheme', maxLength: 60 }).filter((s) => !/[\n\r[]/.test(s));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 5 }), cuts, (lines, at) => {
        const wire = bytes(lines.map((l) => `${l}\n`).join('') + `\n${OUTPUT}\n`);
        const run = runDecoder(splitAt(wire, at), app);
        const last = run.results[run.results.length - 1]!;
        expect(last.ok ? last.message : last.error.message).toEqual({ param: 'output', data: { id: 'a', value: 'x' } });
      }),
      RUNS,
    );
  });
});
