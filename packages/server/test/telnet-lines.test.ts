// The way from a client's bytes to input lines, without sockets: the telnet
// parser (telnet-parser.ts, through TelnetSession) and the line splitter
// (line-splitter.ts) together, as a telnet connection runs them, fed in
// arbitrary chunks. Properties: no parser state swallows input for good,
// every line end is one line, BS and DEL edit the line.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineSplitter, TELNET, TELNET_OPTION, TelnetSession, type TelnetSink } from '@imi/server';
import type { ImiError } from '@imi/core';

const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 500) };
const { IAC, SB, SE, WILL, DO, NOP } = TELNET;
const { GMCP, NAWS, TTYPE, MCCP2 } = TELNET_OPTION;
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;
const BS = 0x08;
const DEL = 0x7f;

/** A telnet session feeding a line splitter, as a telnet connection runs them. */
function telnetLines(options: { maxSubnegotiationBytes?: number; maxLineBytes?: number } = {}) {
  const lines: string[] = [];
  const faults: ImiError[] = [];
  const gmcp: Array<[string, string]> = [];
  const splitter = new LineSplitter(options.maxLineBytes ?? 1 << 20, { onLine: (line) => lines.push(line) });
  const sink: TelnetSink = {
    onData: (bytes) => splitter.write(bytes),
    onSend: () => {},
    onInfo: () => {},
    onGmcp: (packageName, json) => gmcp.push([packageName, json]),
    onStartCompression: () => {},
    onStopCompression: () => {},
    onSettled: () => {},
    onFault: (error) => faults.push(error),
  };
  const session = new TelnetSession(sink, options.maxSubnegotiationBytes === undefined ? { mccp2: true } : { mccp2: true, maxSubnegotiationBytes: options.maxSubnegotiationBytes });
  session.start();
  return { session, lines, faults, gmcp, splitter };
}

/** Cuts `wire` at the given points (modulo its length). */
function chunks(wire: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const point of [...points, wire.length]) {
    out.push(wire.subarray(from, point));
    from = point;
  }
  return out;
}

/** Bytes biased towards the ones that change the parser's state. */
const hostileByte = fc.oneof(
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 2, arbitrary: fc.constantFrom(IAC, SB, SE, WILL, DO, NOP, 247, CR, LF, NUL, BS, DEL, GMCP, NAWS, TTYPE, MCCP2, 0x61) },
);
const hostilePrefix = fc.array(hostileByte, { maxLength: 600 }).map((list) => Buffer.from(list));
/** A line as a user types it: printable ASCII or some non-ASCII letters, never a control byte. */
const typedLine = fc.string({ unit: fc.constantFrom(...'abcxyz 019.,;!?', 'é', 'я', '😀'), minLength: 0, maxLength: 30 });

describe('telnet: no state swallows input for good', () => {
  it('after any bytes not ending in IAC, IAC SE + CR LF + a line delivers that line, however cut', () => {
    fc.assert(
      fc.property(hostilePrefix, typedLine, fc.array(fc.nat(), { maxLength: 12 }), fc.option(fc.integer({ min: 1, max: 64 })), (prefix, line, cuts, maxSub) => {
        fc.pre(prefix.length === 0 || prefix[prefix.length - 1] !== IAC);
        const { session, lines } = telnetLines(maxSub === null ? {} : { maxSubnegotiationBytes: maxSub });
        const wire = Buffer.concat([prefix, Buffer.from([IAC, SE, CR, LF]), Buffer.from(line + '\r\n', 'utf8')]);
        for (const chunk of chunks(wire, cuts)) session.receive(chunk);
        expect(lines.at(-1)).toBe(line);
      }),
      RUNS,
    );
  });

  it('after any bytes at all, IAC SE IAC SE + CR LF + a line delivers it (an odd IAC before makes the first IAC a literal 255)', () => {
    fc.assert(
      fc.property(hostilePrefix, typedLine, fc.array(fc.nat(), { maxLength: 12 }), (prefix, line, cuts) => {
        const { session, lines } = telnetLines({ maxSubnegotiationBytes: 32 });
        const wire = Buffer.concat([prefix, Buffer.from([IAC, SE, IAC, SE, CR, LF]), Buffer.from(line + '\r\n', 'utf8')]);
        for (const chunk of chunks(wire, cuts)) session.receive(chunk);
        expect(lines.at(-1)).toBe(line);
      }),
      RUNS,
    );
  });

  it('IAC SB with no IAC SE ever: the next command ends it, and the fault is reported once', () => {
    const { session, lines, faults, gmcp } = telnetLines();
    session.receive(Buffer.from([IAC, DO, GMCP]));
    session.receive(Buffer.concat([Buffer.from([IAC, SB, GMCP]), Buffer.from('Core.Hello {"cli'), Buffer.from('look\r\n')]));
    expect(lines).toEqual([]); // still inside the subnegotiation: nothing tells it apart from its data
    session.receive(Buffer.concat([Buffer.from([IAC, SB, GMCP]), Buffer.from('Core.Ping'), Buffer.from([IAC, SE]), Buffer.from('north\r\n')]));
    expect(gmcp).toEqual([['Core.Ping', '']]);
    expect(lines).toEqual(['north']);
    expect(faults.map((f) => f.code)).toEqual(['IMI_BAD_TELNET']);
  });

  it('a stray IAC SB (cp1251 "яъ" unescaped) costs at most MAX_STRAY_SUBNEGOTIATION_BYTES of typing; the bound is reported once', () => {
    const { session, lines, faults } = telnetLines();
    session.receive(Buffer.from([0xff, 0xfa, 0xe0])); // "яъа" in cp1251: IAC SB <option 224, never enabled>
    const typed = Array.from({ length: 40 }, (_, n) => `line ${n}`);
    for (const text of typed) session.receive(Buffer.from(text + '\r\n'));
    expect(faults.map((f) => f.code)).toEqual(['IMI_BAD_TELNET']);
    // 256 bytes are lines 0 to 28 and "line " of line 29: the rest of it is
    // skipped to its end, which ends the (empty) line the stray IAC SB cut.
    expect(lines).toEqual(['', ...typed.slice(30)]);
  });

  it('a subnegotiation of an enabled option over maxSubnegotiationBytes is dropped up to the next line end: IMI_LIMIT, once', () => {
    const { session, lines, faults, gmcp } = telnetLines({ maxSubnegotiationBytes: 64 });
    session.receive(Buffer.from([IAC, DO, GMCP]));
    session.receive(Buffer.concat([Buffer.from([IAC, SB, GMCP]), Buffer.from('Core.Hello ' + 'x'.repeat(100) + '\r\nsay hi\r\n')]));
    expect(lines).toEqual(['', 'say hi']);
    expect(gmcp).toEqual([]);
    expect(faults).toHaveLength(1);
    expect(faults[0]!).toMatchObject({ code: 'IMI_LIMIT', limit: 'maxSubnegotiationBytes', value: 64 });
  });
});

/** The line ends RFC 854 clients send, old and new. */
const LINE_ENDS: Record<string, number[]> = {
  'CR LF': [CR, LF],
  'CR NUL': [CR, NUL],
  LF: [LF],
  CR: [CR],
  'LF CR': [LF, CR],
  'CR CR LF': [CR, CR, LF],
};

describe('telnet: one line end, one line', () => {
  it('every line end style gives exactly the lines typed, empty ones included, however cut', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(LINE_ENDS)), fc.array(typedLine, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), (style, typed, cuts) => {
        // The last line is not empty: after a bare CR, a CR may be the start of CR CR LF, so that empty line waits for the next byte.
        const all = [...typed, 'end'];
        const eol = Buffer.from(LINE_ENDS[style]!);
        const wire = Buffer.concat(all.flatMap((text) => [Buffer.from(text, 'utf8'), eol]));
        const { session, lines } = telnetLines();
        for (const chunk of chunks(wire, cuts)) session.receive(chunk);
        expect(lines).toEqual(all);
      }),
      RUNS,
    );
  });

  it('tells a bare CR then an empty line apart where the bytes allow it', () => {
    const cases: Array<[number[], string[]]> = [
      [[0x61, CR, CR, NUL, 0x62, CR, NUL], ['a', '', 'b']], // CR, then CR NUL
      [[0x61, CR, CR, 0x62, CR], ['a', '', 'b']], // bare CRs
      [[0x61, CR, LF, CR, LF, 0x62, CR, LF], ['a', '', 'b']],
      [[0x61, LF, CR, LF, CR, 0x62, LF, CR], ['a', '', 'b']],
      [[0x61, LF, LF, 0x62, LF], ['a', '', 'b']],
      [[0x61, CR, CR, CR, LF, 0x62, CR], ['a', '', 'b']], // CR, then CR CR LF
    ];
    for (const [wire, expected] of cases) {
      const whole = telnetLines();
      whole.session.receive(Buffer.from(wire));
      expect(whole.lines, JSON.stringify(wire)).toEqual(expected);
      const bytewise = telnetLines();
      for (const byte of wire) bytewise.session.receive(Buffer.from([byte]));
      expect(bytewise.lines, JSON.stringify(wire)).toEqual(expected);
    }
  });
});

describe('LineSplitter (tcp, and telnet after the parser): line ends and editing', () => {
  const TCP_ENDS = ['\n', '\r\n', '\r\r\n', '\n\r'];

  it('LF, CR LF, CR CR LF and LF CR are each one line end on plain tcp, however cut', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TCP_ENDS), fc.array(typedLine, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), (eol, typed, cuts) => {
        const lines: string[] = [];
        const splitter = new LineSplitter(1 << 20, { onLine: (line) => lines.push(line) });
        for (const chunk of chunks(Buffer.from(typed.map((text) => text + eol).join(''), 'utf8'), cuts)) splitter.write(chunk);
        expect(lines).toEqual(typed);
      }),
      RUNS,
    );
  });

  it('BS and DEL erase one character (a whole UTF-8 one) of the line being typed, nothing when it is empty, however cut', () => {
    const key = fc.oneof(fc.constantFrom('a', 'b', ' ', 'é', 'я', '😀', '€'), fc.constantFrom('\b', '\x7f'));
    fc.assert(
      fc.property(fc.array(key, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 12 }), fc.constantFrom('\n', '\r\n'), (keys, cuts, eol) => {
        const model: string[] = [];
        for (const k of keys) {
          if (k === '\b' || k === '\x7f') model.pop();
          else model.push(k);
        }
        const lines: Array<[string, number]> = [];
        const splitter = new LineSplitter(1 << 20, { onLine: (line, _truncated, bytes) => lines.push([line, bytes]) });
        for (const chunk of chunks(Buffer.from(keys.join('') + eol, 'utf8'), cuts)) splitter.write(chunk);
        expect(lines).toEqual([[model.join(''), Buffer.byteLength(model.join(''))]]);
      }),
      RUNS,
    );
  });

  it('erases byte by byte in text that is not UTF-8 (cp1251), and a cut line stays cut', () => {
    const lines: Array<[string, boolean]> = [];
    const splitter = new LineSplitter(4, { onLine: (line, truncated) => lines.push([line, truncated]) });
    splitter.write(Buffer.from([0xcf, 0xf0, 0xe8, BS, 0x21, LF])); // "При" in cp1251, BS, "!"
    expect(Buffer.from(lines[0]![0], 'utf8').equals(Buffer.from('\ufffd\ufffd!', 'utf8'))).toBe(true);
    splitter.write(Buffer.from('abcdef\b\b\bx\n'));
    expect(lines[1]).toEqual(['abcd', true]);
  });
});
