import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_FRAME_DEPTH,
  FrameDecoder,
  ProtocolError,
  decodeFrames,
  encodeFrame,
  validateAppMessage,
  validateIntermediaryMessage,
  type AppMessage,
  type DecodeResult,
} from '@imi/core';
import { appMessage, cuts, invalidAppElement, kinds, messagesOnly, roundTrip, runDecoder, splitAt, text } from './arbitraries.js';

const app = { validate: validateAppMessage };
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 1000) };
const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const NULL_FRAME = '{"param":"null"}';

/** Whitespace the framing allows between values (including none at all). */
const separator = fc.constantFrom('\n', '', ' ', '\r\n', '\t\n  ', '\n\n');

/** A frame: one message, or a batch (top-level array) of 1 to 4. */
const frameItem = fc.oneof(
  { weight: 3, arbitrary: appMessage.map((m) => ({ json: JSON.stringify(m), messages: [m] })) },
  { weight: 1, arbitrary: fc.array(appMessage, { minLength: 1, maxLength: 4 }).map((ms) => ({ json: JSON.stringify(ms), messages: ms })) },
);

/** A stream of frames with arbitrary separators, and the messages it carries in order. */
const frameStream = fc.array(fc.tuple(frameItem, separator), { maxLength: 8 }).map((items) => ({
  wire: items.map(([item, sep]) => item.json + sep).join(''),
  messages: items.flatMap(([item]) => item.messages.map(roundTrip)),
}));

function lastError<T>(results: DecodeResult<T>[]): ProtocolError {
  const errors = results.filter((r): r is { ok: false; error: ProtocolError } => !r.ok);
  const error = errors[errors.length - 1];
  if (error === undefined) throw new Error('no error reported');
  return error.error;
}

describe('encodeFrame', () => {
  it('writes compact JSON and one newline, whatever the strings hold', () => {
    fc.assert(
      fc.property(appMessage, (m) => {
        const frame = encodeFrame(m);
        expect(frame.endsWith('\n')).toBe(true);
        expect(frame.indexOf('\n')).toBe(frame.length - 1);
        expect(JSON.parse(frame)).toEqual(roundTrip(m));
      }),
      RUNS,
    );
  });
});

describe('FrameDecoder: valid streams', () => {
  it('any split of any sequence of valid frames decodes to the same messages', () => {
    fc.assert(
      fc.property(frameStream, cuts, (stream, at) => {
        const run = runDecoder(splitAt(bytes(stream.wire), at), app);
        expect(messagesOnly(run.results)).toEqual(stream.messages);
        expect(run.decoder.bufferedBytes).toBe(0);
        expect(run.decoder.messagesDecoded).toBe(stream.messages.length);
        expect(run.decoder.errorsReported).toBe(0);
      }),
      RUNS,
    );
  });

  it('decodes the same when fed one byte at a time', () => {
    fc.assert(
      fc.property(frameStream, (stream) => {
        const wire = bytes(stream.wire);
        const oneByte = Array.from({ length: wire.length }, (_, k) => wire.subarray(k, k + 1));
        const run = runDecoder(oneByte, app, false);
        // Every frame ends with `}` or `]`, so all of them are out before end().
        expect(messagesOnly(run.results)).toEqual(stream.messages);
        expect(run.decoder.bufferedBytes).toBe(0);
      }),
      RUNS,
    );
  });

  it('decodes multi-byte characters (é, €, emoji) split across chunks at every byte', () => {
    const message = { param: 'output', data: { id: 'é€😀', value: 'café 5€ 😀👍🏽 𝄞 中文 é' } };
    const wire = bytes(encodeFrame(message) + encodeFrame(message));
    for (let a = 0; a <= wire.length; a++) {
      for (let b = a; b <= wire.length; b += 7) {
        const run = runDecoder([wire.subarray(0, a), wire.subarray(a, b), wire.subarray(b)], app);
        expect(messagesOnly(run.results)).toEqual([message, message]);
      }
    }
  });

  it('decodes strings made of multi-byte characters under random splits', () => {
    const multiByte = fc.array(fc.constantFrom('é', '€', '😀', '👍🏽', '𝄞', 'ü', '中', 'x'), { minLength: 1, maxLength: 40 }).map((p) => p.join(''));
    fc.assert(
      fc.property(fc.array(multiByte, { minLength: 1, maxLength: 5 }), cuts, (values, at) => {
        const messages = values.map((value) => ({ param: 'output', data: { id: value, value } }));
        const run = runDecoder(splitAt(bytes(messages.map(encodeFrame).join('')), at), app);
        expect(messagesOnly(run.results)).toEqual(messages);
      }),
      RUNS,
    );
  });

  it('decodes long strings full of quotes, backslash runs and escapes under random splits', () => {
    // Long strings take the decoder's indexOf path: escaped quotes and runs of
    // backslashes must be told apart wherever a chunk ends.
    const piece = fc.constantFrom('"', '\\', '\\\\', '\\"', '\\\\"', 'x', 'abcdefghij', '\r\n', '\t', 'é€😀', '{"param"', '}', ']');
    const longText = fc.array(piece, { minLength: 1, maxLength: 80 }).map((p) => p.join(''));
    fc.assert(
      fc.property(fc.array(longText, { minLength: 1, maxLength: 4 }), cuts, (values, at) => {
        const messages = values.map((value) => ({ param: 'output', data: { id: value.slice(0, 40), value } }));
        const run = runDecoder(splitAt(bytes(messages.map(encodeFrame).join('')), at), app);
        expect(messagesOnly(run.results)).toEqual(messages);
      }),
      RUNS,
    );
  });

  it('a raw newline deep inside a long string ends the broken frame, wherever the chunks split', () => {
    const long = 'y'.repeat(70);
    for (const broken of [`{"param":"output","data":{"id":"a","value":"${long}no end`, `{"param":"output","data":{"id":"a","value":"${long}\\`, `{"param":"output","data":{"id":"a","value":"${long}\\\\\\"${long}`]) {
      const wire = bytes(`${broken}\n${NULL_FRAME}\n{"param":"null","txn_id":"2"}\n`);
      for (let a = 0; a <= wire.length; a++) {
        expect(kinds(decodeFrames([wire.subarray(0, a), wire.subarray(a)], app))).toEqual(['IMI_BAD_FRAME', 'message', 'message']);
      }
    }
  });

  it('accepts frames written back to back with no separator, as the Perl client does', () => {
    const wire = '{"param":"output","data":{"id":"a","value":"x"}}{"param":"null"}{"param":"disconnect","data":{"success":1}}';
    expect(messagesOnly(decodeFrames([bytes(wire)], app))).toEqual([
      { param: 'output', data: { id: 'a', value: 'x' } },
      { param: 'null' },
      { param: 'disconnect', data: { success: 1 } },
    ]);
  });

  it('takes ESC between frames as a separator, as IO::Multiplex::Intermediary 0.05 writes "\\n\\e" after every frame', () => {
    const wire = `{"param":"output","data":{"id":"a","value":"x"}}\n\x1b{"param":"null"}\n\x1b`;
    for (let a = 0; a <= wire.length; a++) {
      const results = decodeFrames([bytes(wire.slice(0, a)), bytes(wire.slice(a))], app);
      expect(kinds(results)).toEqual(['message', 'message']);
    }
    // Inside a string ESC stays data (JSON allows it escaped only, so a raw one breaks that frame alone).
    expect(kinds(decodeFrames([bytes(`{"param":"output","data":{"id":"a","value":"\\u001b"}}\x1b${NULL_FRAME}`)], app))).toEqual(['message', 'message']);
  });

  it('accepts any whitespace between frames and none after the last one', () => {
    const wire = ` \r\n\t${NULL_FRAME}  \n\n\t${NULL_FRAME}\r\n   ${NULL_FRAME}`;
    expect(messagesOnly(decodeFrames([bytes(wire)], app))).toHaveLength(3);
  });

  it('decodes a pretty-printed frame (whitespace inside a value)', () => {
    const message = { param: 'output', data: { id: 'a', value: 'x' }, dep_txns: ['1', '2'] };
    expect(messagesOnly(decodeFrames([bytes(JSON.stringify(message, null, 2))], app))).toEqual([message]);
  });

  it('decodes a batch written one element per line without indentation', () => {
    const batch = [
      { param: 'output', data: { id: 'a', value: '1' } },
      { param: 'output', data: { id: 'b', value: '2' } },
    ];
    const wire = `[\n${batch.map((m) => JSON.stringify(m)).join(',\n')}\n]\n`;
    for (const size of [1, 3, wire.length]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < wire.length; at += size) chunks.push(bytes(wire.slice(at, at + size)));
      const results = decodeFrames(chunks, app);
      expect(results.every((r) => r.ok)).toBe(true);
      expect(messagesOnly(results)).toEqual(batch);
    }
  });

  it('takes a top-level array as a batch, element by element in order', () => {
    const batch = [
      { param: 'output', data: { id: 'a', value: '1' } },
      { param: 'output', data: { id: 'b', value: '2' } },
      { param: 'null' },
    ];
    const run = runDecoder([bytes(JSON.stringify(batch))], app);
    expect(messagesOnly(run.results)).toEqual(batch);
    expect(run.decoder.messagesDecoded).toBe(3);
  });

  it('an empty batch yields nothing', () => {
    expect(decodeFrames([bytes('[]\n[ ]\n')], app)).toEqual([]);
  });

  it('in a batch, a bad element is rejected alone and the rest are kept, in order', () => {
    const element = fc.oneof(
      appMessage.map((m) => ({ value: m as unknown, expect: 'message' as string })),
      invalidAppElement.map((e) => ({ value: e.value, expect: e.code as string })),
    );
    fc.assert(
      fc.property(fc.array(element, { minLength: 1, maxLength: 8 }), cuts, (elements, at) => {
        const wire = JSON.stringify(elements.map((e) => e.value)) + '\n' + NULL_FRAME;
        const run = runDecoder(splitAt(bytes(wire), at), app);
        expect(kinds(run.results)).toEqual([...elements.map((e) => e.expect), 'message']);
        elements.forEach((e, k) => {
          const result = run.results[k]!;
          if (result.ok) expect(result.message).toEqual(roundTrip(e.value));
        });
        expect(run.decoder.errorsReported).toBe(elements.filter((e) => e.expect !== 'message').length);
        expect(run.decoder.messagesDecoded).toBe(elements.length + 1 - run.decoder.errorsReported);
      }),
      RUNS,
    );
  });

  it('works with validateIntermediaryMessage too', () => {
    const input = { param: 'input', txn_id: 'c0ffee', data: { id: 'u1', value: 'look é' } };
    const ping = { param: 'ping', txn_id: 'c0ffef', data: { ts: 5 } };
    const results = decodeFrames([bytes(encodeFrame(input) + encodeFrame(ping).slice(0, 5)), bytes(encodeFrame(ping).slice(5))], {
      validate: validateIntermediaryMessage,
    });
    expect(messagesOnly(results)).toEqual([input, ping]);
  });

  it('accepts a plain Uint8Array that is a view into a larger buffer', () => {
    const backing = new Uint8Array(64).fill(0x41);
    const frame = bytes(NULL_FRAME + '\n');
    backing.set(frame, 10);
    const view = new Uint8Array(backing.buffer, 10, frame.length);
    expect(messagesOnly(decodeFrames([view.subarray(0, 4), view.subarray(4)], app))).toEqual([{ param: 'null' }]);
  });

  it('has the documented defaults', () => {
    const decoder = new FrameDecoder(app, { onMessage() {}, onError() {} });
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(1024 * 1024);
    expect(DEFAULT_MAX_FRAME_DEPTH).toBe(64);
    expect(decoder.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
    expect(decoder.maxDepth).toBe(DEFAULT_MAX_FRAME_DEPTH);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('holds an unfinished frame between chunks and counts it in bufferedBytes', () => {
    const decoder = new FrameDecoder(app, { onMessage() {}, onError() {} });
    decoder.write(bytes('  {"param":"nu'));
    expect(decoder.bufferedBytes).toBe('{"param":"nu'.length);
    decoder.write(bytes('ll"}'));
    expect(decoder.bufferedBytes).toBe(0);
    expect(decoder.messagesDecoded).toBe(1);
  });
});

describe('FrameDecoder: the frame size limit', () => {
  it('reports an oversize frame as IMI_BAD_FRAME, never buffers past maxFrameBytes, and decodes the next frame', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2048 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.constantFrom('x', 'é', '€', '😀'),
        fc.array(appMessage, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('\n', ''),
        cuts,
        (slack, over, unit, after, sep, at) => {
          // A limit the following frames fit in.
          const maxFrameBytes = Math.max(64, ...after.map((m) => Buffer.byteLength(JSON.stringify(m)))) + slack;
          const bigFrame = JSON.stringify({ param: 'output', data: { id: 'a', value: unit.repeat(Math.ceil((maxFrameBytes + over) / Buffer.byteLength(unit))) } });
          expect(Buffer.byteLength(bigFrame)).toBeGreaterThan(maxFrameBytes);
          const wire = bytes(bigFrame + sep + after.map(encodeFrame).join(''));
          // runDecoder checks bufferedBytes <= maxFrameBytes after every write.
          const run = runDecoder(splitAt(wire, at), { ...app, maxFrameBytes });
          expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', ...after.map(() => 'message')]);
          expect(lastError(run.results).message).toMatch(/larger than/);
          expect(lastError(run.results).oversized).toBe(true);
          expect(messagesOnly(run.results.slice(1))).toEqual(after.map(roundTrip));
          expect(run.decoder.bufferedBytes).toBe(0);
        },
      ),
      RUNS,
    );
  });

  it('never holds more than 1 MiB (the default) while a 3 MiB frame streams in, then decodes the next frame', () => {
    const big = bytes(JSON.stringify({ param: 'output', data: { id: 'a', value: 'é'.repeat(1536 * 1024) } }));
    const wire = Buffer.concat([big, bytes('\n' + NULL_FRAME + '\n')]);
    const chunks: Buffer[] = [];
    for (let k = 0; k < wire.length; k += 65536) chunks.push(wire.subarray(k, k + 65536));
    const run = runDecoder(chunks, app);
    expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
    expect(run.maxBuffered).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_BYTES);
    expect(run.maxBuffered).toBeGreaterThan(DEFAULT_MAX_FRAME_BYTES - 65536);
  });

  it('accepts a frame of exactly maxFrameBytes and rejects one byte more, however it is split', () => {
    const maxFrameBytes = 200;
    const frameOf = (size: number): string => {
      const empty = JSON.stringify({ param: 'output', data: { id: 'a', value: '' } });
      return JSON.stringify({ param: 'output', data: { id: 'a', value: 'x'.repeat(size - empty.length) } });
    };
    const fits = frameOf(maxFrameBytes);
    const tooBig = frameOf(maxFrameBytes + 1);
    expect(fits.length).toBe(maxFrameBytes);
    expect(tooBig.length).toBe(maxFrameBytes + 1);
    const wire = bytes(`${fits}\n${tooBig}\n${fits}`);
    for (let a = 0; a <= wire.length; a += 3) {
      const run = runDecoder([wire.subarray(0, a), wire.subarray(a)], { ...app, maxFrameBytes });
      expect(kinds(run.results)).toEqual(['message', 'IMI_BAD_FRAME', 'message']);
    }
  });

  it('limits a long top-level garbage scalar like any frame', () => {
    const run = runDecoder([bytes('x'.repeat(500)), bytes('y'.repeat(500)), bytes('\n' + NULL_FRAME)], { ...app, maxFrameBytes: 100 });
    expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
  });

  it('keeps tiny chunks compactly: a 1 MiB frame fed one byte at a time does not cost a Buffer object per byte', () => {
    // In a child with --expose-gc, so the heap can be measured after a full collection.
    const script = `
      const { FrameDecoder, validateAppMessage } = await import('@imi/core');
      const frame = Buffer.from(JSON.stringify({ param: 'output', data: { id: 'a', value: 'x'.repeat(1000000) } }));
      let messages = 0;
      const decoder = new FrameDecoder({ validate: validateAppMessage }, { onMessage: () => messages++, onError: (e) => { throw e; } });
      globalThis.gc(); globalThis.gc();
      const before = process.memoryUsage();
      for (let i = 0; i < frame.length - 1; i++) decoder.write(frame.subarray(i, i + 1));
      globalThis.gc(); globalThis.gc();
      const after = process.memoryUsage();
      const held = decoder.bufferedBytes;
      decoder.write(frame.subarray(frame.length - 1));
      console.log(JSON.stringify({ grew: after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers, held, messages }));
    `;
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    const output = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    const result = JSON.parse(output) as { grew: number; held: number; messages: number };
    expect(result.messages).toBe(1);
    expect(result.held).toBeGreaterThan(1_000_000);
    // The frame itself is ~1 MB; one Buffer object per byte would be over 60 MB.
    expect(result.grew).toBeLessThan(16 * 1024 * 1024);
  });
});

describe('FrameDecoder: broken frames', () => {
  const malformed = fc.constantFrom(
    '{"param":"null",}',
    '{"a":}',
    '{,}',
    "{'param':'null'}",
    '{param:null}',
    '{"a":1 "b":2}',
    '[1,]',
    '{"a":tru}',
    '{"a":"\\x"}',
    '{"a":"é€😀" 1}',
    '}',
    ']]',
    'nul',
    'tru',
    '-',
    '01',
    '"unterminated \\"',
  );

  it('reports malformed JSON as IMI_BAD_FRAME and decodes the next frame', () => {
    fc.assert(
      fc.property(malformed, fc.array(appMessage, { minLength: 1, maxLength: 3 }), cuts, (bad, after, at) => {
        const wire = bad + '\n' + after.map(encodeFrame).join('');
        const run = runDecoder(splitAt(bytes(wire), at), app);
        expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', ...after.map(() => 'message')]);
        expect(messagesOnly(run.results.slice(1))).toEqual(after.map(roundTrip));
        expect(run.decoder.errorsReported).toBe(1);
        expect(run.decoder.bufferedBytes).toBe(0);
      }),
      RUNS,
    );
  });

  it('a stray closing brace after a frame costs only itself', () => {
    expect(kinds(decodeFrames([bytes(`${NULL_FRAME}}\n${NULL_FRAME}\n`)], app))).toEqual(['message', 'IMI_BAD_FRAME', 'message']);
  });

  it('resynchronises on a new line starting with {"param" after an unbalanced frame, wherever the chunks split', () => {
    const unbalanced = '{"param":"output","data":{"id":"a","value":"b"}';
    const wire = bytes(`${unbalanced}\n${NULL_FRAME}\n{"param":"output","data":{"id":"c","value":"d"}}\n`);
    const expected = ['IMI_BAD_FRAME', 'message', 'message'];
    expect(kinds(decodeFrames([wire], app))).toEqual(expected);
    for (let a = 0; a <= wire.length; a++) {
      expect(kinds(decodeFrames([wire.subarray(0, a), wire.subarray(a)], app))).toEqual(expected);
    }
    const oneByte = Array.from({ length: wire.length }, (_, k) => wire.subarray(k, k + 1));
    const run = runDecoder(oneByte, app);
    expect(kinds(run.results)).toEqual(expected);
    expect(messagesOnly(run.results.slice(1))).toEqual([{ param: 'null' }, { param: 'output', data: { id: 'c', value: 'd' } }]);
    expect(lastError(run.results).message).toMatch(/unterminated/);
  });

  it('a frame cut anywhere (inside a string or a character too) costs only itself', () => {
    fc.assert(
      fc.property(
        appMessage,
        fc.nat(),
        fc.array(appMessage, { minLength: 1, maxLength: 3 }),
        cuts,
        (broken, cutAt, after, at) => {
          const whole = bytes(JSON.stringify(broken));
          const truncated = whole.subarray(0, 1 + (cutAt % (whole.length - 1)));
          const wire = Buffer.concat([truncated, bytes('\n' + after.map(encodeFrame).join(''))]);
          const run = runDecoder(splitAt(wire, at), app);
          expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', ...after.map(() => 'message')]);
          expect(messagesOnly(run.results.slice(1))).toEqual(after.map(roundTrip));
          expect(run.decoder.bufferedBytes).toBe(0);
        },
      ),
      RUNS,
    );
  });

  it('a raw newline inside a string ends the broken frame, even right after a backslash', () => {
    for (const broken of ['{"param":"output","data":{"id":"a","value":"no end', '{"param":"output","data":{"id":"a","value":"ends with \\', '"top-level']) {
      const wire = `${broken}\n${NULL_FRAME}\n{"param":"null","txn_id":"2"}\n`;
      const results = decodeFrames([bytes(wire)], app);
      expect(kinds(results)).toEqual(['IMI_BAD_FRAME', 'message', 'message']);
    }
  });

  it('does not resynchronise on a newline followed by something other than {"param"', () => {
    const wire = bytes('{"param":"output",\n"data":{"id":"a",\n"value":"b"}\n}\n');
    for (let a = 0; a <= wire.length; a++) {
      expect(messagesOnly(decodeFrames([wire.subarray(0, a), wire.subarray(a)], app))).toEqual([{ param: 'output', data: { id: 'a', value: 'b' } }]);
    }
  });

  it('whitespace only gives no output', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(' ', '\n', '\r', '\t'), { maxLength: 200 }), cuts, (ws, at) => {
        const run = runDecoder(splitAt(bytes(ws.join('')), at), app);
        expect(run.results).toEqual([]);
        expect(run.maxBuffered).toBe(0);
      }),
      RUNS,
    );
  });

  it('end() reports a truncated frame once, and the decoder then starts afresh', () => {
    fc.assert(
      fc.property(appMessage, fc.nat(), cuts, (message, cutAt, at) => {
        const whole = bytes(JSON.stringify(message));
        const truncated = whole.subarray(0, 1 + (cutAt % (whole.length - 1)));
        const run = runDecoder(splitAt(truncated, at), app, false);
        expect(run.results).toEqual([]);
        run.decoder.end();
        expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME']);
        expect(run.decoder.bufferedBytes).toBe(0);
        run.decoder.end();
        expect(run.results).toHaveLength(1);
        run.decoder.write(whole);
        expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
        expect(run.results[1]).toEqual({ ok: true, message: roundTrip(message) });
      }),
      RUNS,
    );
  });

  it('end() decodes a pending top-level scalar and reports nothing when idle', () => {
    const results: DecodeResult<AppMessage>[] = [];
    const decoder = new FrameDecoder(app, { onMessage: (message) => results.push({ ok: true, message }), onError: (error) => results.push({ ok: false, error }) });
    decoder.end();
    expect(results).toEqual([]);
    decoder.write(bytes('12'));
    expect(results).toEqual([]);
    decoder.end();
    expect(kinds(results)).toEqual(['IMI_BAD_MESSAGE']);
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('FrameDecoder: nesting depth', () => {
  /** A valid `state` frame whose total nesting depth is `depth` (>= 2). */
  function frameOfDepth(depth: number): string {
    return `{"param":"state","data":{"id":"a"},"updates":${'{"k":'.repeat(depth - 2)}{}${'}'.repeat(depth - 2)}}`;
  }

  it('accepts nesting up to maxDepth and reports one level more as IMI_BAD_FRAME, then goes on', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 80 }), cuts, (maxDepth, at) => {
        const wire = `${frameOfDepth(maxDepth)}\n${frameOfDepth(maxDepth + 1)}${NULL_FRAME}`;
        const run = runDecoder(splitAt(bytes(wire), at), { ...app, maxDepth });
        expect(kinds(run.results)).toEqual(['message', 'IMI_BAD_FRAME', 'message']);
        expect(lastError(run.results).message).toMatch(/nested deeper than/);
      }),
      RUNS,
    );
  });

  it('the default limit is 64 levels', () => {
    expect(kinds(decodeFrames([bytes(frameOfDepth(64) + frameOfDepth(65))], app))).toEqual(['message', 'IMI_BAD_FRAME']);
  });

  const deep = 100_000;
  const deepFrames: Record<string, string> = {
    arrays: '['.repeat(deep) + ']'.repeat(deep),
    objects: '{"a":'.repeat(deep) + '1' + '}'.repeat(deep),
    'inside a message': `{"param":"state","data":{"id":"a"},"updates":{"x":${'['.repeat(deep)}${']'.repeat(deep)}}}`,
    unclosed: '['.repeat(deep),
  };

  for (const [name, frame] of Object.entries(deepFrames)) {
    for (const maxFrameBytes of [DEFAULT_MAX_FRAME_BYTES, 64 * 1024 * 1024]) {
      it(`reports 100,000 levels of nesting (${name}, maxFrameBytes ${maxFrameBytes}) as IMI_BAD_FRAME without throwing`, () => {
        const wire = bytes(frame + '\n' + NULL_FRAME + '\n');
        expect(wire.length).toBeLessThan(maxFrameBytes);
        for (const chunkSize of [wire.length, 4096, 7]) {
          const chunks: Buffer[] = [];
          for (let k = 0; k < wire.length; k += chunkSize) chunks.push(wire.subarray(k, k + chunkSize));
          const run = runDecoder(chunks, { ...app, maxFrameBytes });
          // The unclosed one ends at the newline before `{"param"` (resync).
          expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
          expect(run.results[0]!.ok ? '' : run.results[0]!.error.message).toMatch(/nested deeper than 64/);
        }
      });
    }
  }

  it('reports 1,000,000 levels with an 8 MiB frame limit, without throwing', () => {
    const n = 1_000_000;
    const wire = bytes('['.repeat(n) + ']'.repeat(n) + NULL_FRAME);
    const run = runDecoder([wire], { ...app, maxFrameBytes: 8 * 1024 * 1024 });
    expect(kinds(run.results)).toEqual(['IMI_BAD_FRAME', 'message']);
  });

  it('never throws on 100,000 levels even with the depth limit lifted', () => {
    const wire = bytes('['.repeat(deep) + ']'.repeat(deep) + '\n' + '{"a":'.repeat(deep) + '1' + '}'.repeat(deep) + NULL_FRAME);
    const run = runDecoder([wire], { ...app, maxDepth: Number.MAX_SAFE_INTEGER, maxFrameBytes: 64 * 1024 * 1024 });
    const last = run.results[run.results.length - 1];
    expect(run.results).toHaveLength(3);
    expect(run.results.slice(0, 2).every((r) => !r.ok)).toBe(true);
    expect(last).toEqual({ ok: true, message: { param: 'null' } });
  });
});

describe('FrameDecoder: hostile input', () => {
  const jsonish = fc
    .array(fc.oneof(fc.constantFrom('{', '}', '[', ']', '"', '\\', '\n', ' ', ':', ',', '1', 'a', 'é', '😀', '{"param"', '\n{"param"', NULL_FRAME)), { maxLength: 300 })
    .map((p) => bytes(p.join('')));
  const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 2000 }), jsonish);

  it('random bytes never throw out of write() or end(), never grow bufferedBytes past the limit, and the decoder recovers after end()', () => {
    fc.assert(
      fc.property(anyBytes, cuts, fc.integer({ min: 1, max: 512 }), fc.integer({ min: 1, max: 16 }), (garbage, at, maxFrameBytes, maxDepth) => {
        // runDecoder throws if bufferedBytes ever passes maxFrameBytes.
        const run = runDecoder(splitAt(garbage, at), { ...app, maxFrameBytes, maxDepth });
        for (const r of run.results) {
          if (!r.ok) {
            expect(r.error).toBeInstanceOf(ProtocolError);
            expect(['IMI_BAD_FRAME', 'IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM']).toContain(r.error.code);
          }
        }
        expect(run.decoder.messagesDecoded + run.decoder.errorsReported).toBe(run.results.length);
        expect(run.decoder.bufferedBytes).toBe(0);
        const before = run.results.length;
        run.decoder.write(bytes(NULL_FRAME + '\n'));
        const fits = maxFrameBytes >= NULL_FRAME.length && maxDepth >= 1;
        expect(kinds(run.results.slice(before))).toEqual([fits ? 'message' : 'IMI_BAD_FRAME']);
      }),
      RUNS,
    );
  });

  it('any split of the same bytes gives the same results (codes and messages)', () => {
    fc.assert(
      fc.property(fc.oneof(anyBytes, text.map(bytes)), cuts, (input, at) => {
        const summary = (results: DecodeResult<AppMessage>[]) => results.map((r) => (r.ok ? r.message : r.error.code));
        const whole = runDecoder([input], app);
        const split = runDecoder(splitAt(input, at), app);
        expect(summary(split.results)).toEqual(summary(whole.results));
      }),
      RUNS,
    );
  });
});
