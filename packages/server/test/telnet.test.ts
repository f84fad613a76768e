// The telnet codec (telnet.ts) on its own: fed one byte at a time and in
// arbitrary chunks, it must strip every protocol byte from the input, answer
// negotiation without loops, and report what the client told it.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_TTYPE_REQUESTS, NvtEncoder, TELNET, TELNET_OPTION, TelnetSession, escapeIac, type TelnetSessionOptions, type TelnetSink } from '@imi/server';

const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 500) };
const { IAC, DO, DONT, WILL, WONT, SB, SE, NOP, GA } = TELNET;
const IAC_EOR = TELNET.EOR;
const { ECHO, SGA, TTYPE, NAWS, MCCP2, GMCP, EOR, BINARY } = TELNET_OPTION;
const TTYPE_IS = 0;
const TTYPE_SEND = 1;

/** Everything a session reported. */
class Recorder implements TelnetSink {
  readonly data: Buffer[] = [];
  readonly sent: Buffer[] = [];
  readonly gmcp: Array<[string, string]> = [];
  infos = 0;
  compressionStarts = 0;
  compressionStops = 0;
  settles = 0;
  onData(bytes: Buffer): void {
    this.data.push(Buffer.from(bytes));
  }
  onSend(bytes: Buffer): void {
    this.sent.push(Buffer.from(bytes));
  }
  onInfo(): void {
    this.infos++;
  }
  onGmcp(packageName: string, json: string): void {
    this.gmcp.push([packageName, json]);
  }
  onStartCompression(): void {
    this.compressionStarts++;
  }
  onStopCompression(): void {
    this.compressionStops++;
  }
  onSettled(): void {
    this.settles++;
  }
  /** The input as bytes. */
  get input(): Buffer {
    return Buffer.concat(this.data);
  }
  /** What was sent to the client, as bytes. */
  get output(): Buffer {
    return Buffer.concat(this.sent);
  }
  /** Forgets what was sent so far. */
  clearSent(): void {
    this.sent.length = 0;
  }
}

/** Bytes from numbers, number arrays and text (UTF-8). */
function bytes(...parts: Array<number | number[] | string>): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(Array.isArray(part) ? part : [part]))));
}

function session(options?: TelnetSessionOptions): { telnet: TelnetSession; sink: Recorder } {
  const sink = new Recorder();
  return { telnet: new TelnetSession(sink, options), sink };
}

/** Feeds one byte per call, as a client typing on a slow link would. */
function feedBytewise(telnet: TelnetSession, data: Buffer): void {
  for (const byte of data) telnet.receive(Buffer.from([byte]));
}

const sb = (option: number, ...body: Array<number | number[] | string>): Buffer => bytes(IAC, SB, option, bytes(...body).toJSON().data, IAC, SE);

describe('TelnetSession: input', () => {
  const stream = bytes(
    'look',
    [IAC, WILL, NAWS],
    sb(NAWS, [0, 80, 0, 24]).toJSON().data,
    'ing',
    [0x0d, 0x0a],
    'north',
    [0x0d, 0x00],
    'x',
    [IAC, NOP],
    'y',
    [IAC, IAC],
    'z',
    [0x0d],
    'w',
    [IAC, GA],
    'é😀',
    [0x0a],
  );
  const expected = bytes('looking\r\nnorth\r\nxy', [0xff], 'z\r\nwé😀\n');

  it('strips every protocol byte and keeps the text: CR LF, CR NUL and a lone CR end the line, IAC IAC is a 255', () => {
    const whole = session();
    whole.telnet.receive(stream);
    expect(whole.sink.input).toEqual(expected);
  });

  it('gives the same input and the same replies fed one byte at a time', () => {
    const whole = session();
    whole.telnet.receive(stream);
    const bytewise = session();
    feedBytewise(bytewise.telnet, stream);
    expect(bytewise.sink.input).toEqual(expected);
    expect(bytewise.sink.output).toEqual(whole.sink.output);
    expect(bytewise.telnet.info).toEqual(whole.telnet.info);
  });

  it('passes plain text through as subarrays of the chunk, in one piece per run', () => {
    const { telnet, sink } = session();
    telnet.receive(Buffer.from('just text, no commands'));
    expect(sink.data.map(String)).toEqual(['just text, no commands']);
  });

  it('drops a subnegotiation longer than maxSubnegotiationBytes whole, and goes on', () => {
    const { telnet, sink } = session({ maxSubnegotiationBytes: 16 });
    telnet.start();
    feedBytewise(telnet, bytes([IAC, DO, GMCP], sb(GMCP, 'Core.Hello ' + '{"client":"' + 'x'.repeat(100) + '"}').toJSON().data, 'after\r\n'));
    expect(sink.gmcp).toEqual([]);
    expect(sink.input.toString()).toBe('after\r\n');
  });

  it('ends a subnegotiation at an IAC that is neither IAC SE nor IAC IAC: drops it and reads the command (RFC 855 has no other way out)', () => {
    const { telnet, sink } = session();
    telnet.start();
    feedBytewise(telnet, bytes([IAC, DO, GMCP], [IAC, SB, GMCP], 'Core.Ping', [IAC, NOP, IAC, SE], 'ok\n'));
    expect(sink.gmcp).toEqual([]);
    expect(sink.input.toString()).toBe('ok\n');
    // The command that cut it short is read as one: IAC WILL NAWS after a cut GMCP message is answered.
    const { telnet: second, sink: secondSink } = session();
    second.receive(bytes([IAC, SB, GMCP], 'Core.Pi', [IAC, WILL, SGA], 'ok\r\n'));
    expect(secondSink.output).toEqual(bytes([IAC, DO, SGA]));
    expect(secondSink.input.toString()).toBe('ok\r\n');
  });
});

describe('TelnetSession: negotiation', () => {
  it('opens with DO NAWS, DO TTYPE, WILL GMCP, WILL EOR (and WILL MCCP2 when asked); it does not offer SGA or ECHO', () => {
    const plain = session();
    plain.telnet.start();
    expect(plain.sink.output).toEqual(bytes([IAC, DO, NAWS, IAC, DO, TTYPE, IAC, WILL, GMCP, IAC, WILL, EOR]));
    const compressing = session({ mccp2: true, gmcp: false });
    compressing.telnet.start();
    expect(compressing.sink.output).toEqual(bytes([IAC, DO, NAWS, IAC, DO, TTYPE, IAC, WILL, MCCP2, IAC, WILL, EOR]));
    const noEor = session({ eor: false });
    noEor.telnet.start();
    expect(noEor.sink.output).toEqual(bytes([IAC, DO, NAWS, IAC, DO, TTYPE, IAC, WILL, GMCP]));
  });

  it('runs a MUD client through NAWS, the MTTS cycle and GMCP, answering no answer, byte by byte', () => {
    const { telnet, sink } = session();
    telnet.start();
    sink.clearSent();
    // Width 255 travels as 0x00 0xFF 0xFF: IAC doubled inside the subnegotiation.
    feedBytewise(telnet, bytes([IAC, WILL, NAWS], [IAC, SB, NAWS, 0, IAC, IAC, 0, 40, IAC, SE], [IAC, WILL, TTYPE], [IAC, DO, GMCP], [IAC, DO, EOR]));
    expect(sink.output).toEqual(bytes([IAC, SB, TTYPE, TTYPE_SEND, IAC, SE]));
    expect(sink.settles).toBe(0); // the terminal type is still awaited
    for (const name of ['MUDLET', 'XTERM-256COLOR', 'MTTS 2825']) feedBytewise(telnet, sb(TTYPE, TTYPE_IS, name));
    expect(sink.output).toEqual(bytes(...Array.from({ length: MAX_TTYPE_REQUESTS }, () => [IAC, SB, TTYPE, TTYPE_SEND, IAC, SE])));
    expect(telnet.info).toEqual({ echo: true, sga: false, gmcp: true, mccp2: false, eor: true, naws: { width: 255, height: 40 }, ttype: ['MUDLET', 'XTERM-256COLOR', 'MTTS 2825'], mtts: 2825 });
    expect(sink.settles).toBe(1);
    expect(telnet.isSettled).toBe(true);
    expect(sink.input.length).toBe(0);
  });

  it('ends the terminal type cycle when the client repeats its last or its first answer', () => {
    const repeatsLast = session();
    repeatsLast.telnet.start();
    feedBytewise(repeatsLast.telnet, bytes([IAC, WILL, TTYPE], sb(TTYPE, TTYPE_IS, 'XTERM').toJSON().data, sb(TTYPE, TTYPE_IS, 'XTERM').toJSON().data));
    expect(repeatsLast.telnet.info.ttype).toEqual(['XTERM']);
    const wraps = session();
    wraps.telnet.start();
    wraps.sink.clearSent();
    feedBytewise(wraps.telnet, bytes([IAC, WILL, TTYPE], ...['A', 'B', 'A'].map((name) => sb(TTYPE, TTYPE_IS, name).toJSON().data)));
    expect(wraps.telnet.info.ttype).toEqual(['A', 'B']);
    expect(wraps.sink.output).toEqual(bytes(...Array.from({ length: 3 }, () => [IAC, SB, TTYPE, TTYPE_SEND, IAC, SE])));
  });

  it('ignores terminal types nobody asked for, and keeps names printable and short', () => {
    const { telnet } = session();
    telnet.start();
    feedBytewise(telnet, sb(TTYPE, TTYPE_IS, 'SNEAKY'));
    expect(telnet.info.ttype).toBeUndefined();
    feedBytewise(telnet, bytes([IAC, WILL, TTYPE], sb(TTYPE, TTYPE_IS, 'VT\u0007100' + 'x'.repeat(100)).toJSON().data));
    expect(telnet.info.ttype).toEqual(['VT100' + 'x'.repeat(59)]);
  });

  it('settles when the client refuses everything, without answering its refusals', () => {
    const { telnet, sink } = session();
    telnet.start();
    sink.clearSent();
    feedBytewise(telnet, bytes([IAC, WONT, NAWS, IAC, WONT, TTYPE, IAC, DONT, GMCP]));
    expect(sink.settles).toBe(0); // EOR is still unanswered
    feedBytewise(telnet, bytes([IAC, DONT, EOR]));
    expect(sink.output.length).toBe(0);
    expect(sink.settles).toBe(1);
    expect(telnet.info).toEqual({ echo: true, sga: false, gmcp: false, mccp2: false, eor: false });
  });

  it('refuses options it does not know, once per request, and never loops', () => {
    const { telnet, sink } = session();
    feedBytewise(telnet, bytes([IAC, WILL, 99, IAC, DO, 98, IAC, WONT, 97, IAC, DONT, 96]));
    expect(sink.output).toEqual(bytes([IAC, DONT, 99, IAC, WONT, 98]));
  });

  it('agrees to SGA when asked, both ways, and says so in the info', () => {
    const { telnet, sink } = session();
    feedBytewise(telnet, bytes([IAC, DO, SGA, IAC, WILL, SGA]));
    expect(sink.output).toEqual(bytes([IAC, WILL, SGA, IAC, DO, SGA]));
    expect(telnet.info.sga).toBe(true);
    sink.clearSent();
    feedBytewise(telnet, bytes([IAC, DO, SGA]));
    expect(sink.output.length).toBe(0); // already on: no answer
    feedBytewise(telnet, bytes([IAC, DONT, SGA]));
    expect(sink.output).toEqual(bytes([IAC, WONT, SGA]));
    expect(telnet.info.sga).toBe(false);
  });
});

describe('TelnetSession: ECHO (hidden input for passwords)', () => {
  it('refuses DO ECHO while the app shows input: imi does not echo', () => {
    const { telnet, sink } = session();
    feedBytewise(telnet, bytes([IAC, DO, ECHO]));
    expect(sink.output).toEqual(bytes([IAC, WONT, ECHO]));
    expect(telnet.info.echo).toBe(true);
  });

  it('setEcho(false) says WILL ECHO once; the client agreeing gets no answer; setEcho(true) says WONT ECHO', () => {
    const { telnet, sink } = session();
    telnet.setEcho(false);
    telnet.setEcho(false);
    expect(sink.output).toEqual(bytes([IAC, WILL, ECHO]));
    expect(telnet.info.echo).toBe(false);
    feedBytewise(telnet, bytes([IAC, DO, ECHO]));
    expect(sink.output).toEqual(bytes([IAC, WILL, ECHO]));
    telnet.setEcho(true);
    expect(sink.output).toEqual(bytes([IAC, WILL, ECHO, IAC, WONT, ECHO]));
    expect(telnet.info.echo).toBe(true);
    feedBytewise(telnet, bytes([IAC, DONT, ECHO]));
    expect(sink.output).toEqual(bytes([IAC, WILL, ECHO, IAC, WONT, ECHO]));
  });

  it('a client that will not stop echoing leaves the input visible', () => {
    const { telnet } = session();
    telnet.setEcho(false);
    feedBytewise(telnet, bytes([IAC, DONT, ECHO]));
    expect(telnet.info.echo).toBe(true);
  });
});

describe('TelnetSession: GMCP', () => {
  it('ignores GMCP until the client said DO GMCP', () => {
    const { telnet, sink } = session();
    telnet.start();
    feedBytewise(telnet, sb(GMCP, 'Core.Hello {"client":"x"}'));
    expect(sink.gmcp).toEqual([]);
    expect(telnet.encodeGmcp('Char.Vitals', '{}')).toBeUndefined();
  });

  it('reports messages, keeps Core.Hello and Core.Supports in the info, and encodes messages out', () => {
    const { telnet, sink } = session();
    telnet.start();
    feedBytewise(telnet, bytes([IAC, DO, GMCP]));
    expect(telnet.info.gmcp).toBe(true);
    const messages = [
      'Core.Hello {"client":"Mudlet","version":"4.17.2"}',
      'Core.Supports.Set ["Char 1", "Room 1", "Comm.Channel 1"]',
      'Core.Supports.Add ["Char 2", "IRE.Rift 1"]',
      'core.supports.remove ["Room"]',
      'Core.Ping',
      'Char.Login.Credentials {"account":"bob","password":"é😀"}',
    ];
    for (const message of messages) feedBytewise(telnet, sb(GMCP, message));
    expect(sink.gmcp).toEqual([
      ['Core.Hello', '{"client":"Mudlet","version":"4.17.2"}'],
      ['Core.Supports.Set', '["Char 1", "Room 1", "Comm.Channel 1"]'],
      ['Core.Supports.Add', '["Char 2", "IRE.Rift 1"]'],
      ['core.supports.remove', '["Room"]'],
      ['Core.Ping', ''],
      ['Char.Login.Credentials', '{"account":"bob","password":"é😀"}'],
    ]);
    expect(telnet.info.gmcpHello).toEqual({ client: 'Mudlet', version: '4.17.2' });
    expect(telnet.info.gmcpSupports).toEqual(['Comm.Channel 1', 'Char 2', 'IRE.Rift 1']);
    expect(telnet.encodeGmcp('Char.Vitals', '{"hp":10}')).toEqual(bytes([IAC, SB, GMCP], 'Char.Vitals {"hp":10}', [IAC, SE]));
    expect(telnet.encodeGmcp('Core.Ping')).toEqual(bytes([IAC, SB, GMCP], 'Core.Ping', [IAC, SE]));
    feedBytewise(telnet, bytes([IAC, DONT, GMCP]));
    expect(telnet.info.gmcp).toBe(false);
    expect(telnet.encodeGmcp('Core.Ping')).toBeUndefined();
  });
});

describe('TelnetSession: MCCP2', () => {
  it('starts compression right after IAC SB MCCP2 IAC SE when the client agrees, and stops it on DONT', () => {
    const { telnet, sink } = session({ mccp2: true });
    telnet.start();
    sink.clearSent();
    let sentWhenStarted: Buffer | undefined;
    const start = sink.onStartCompression.bind(sink);
    sink.onStartCompression = () => {
      sentWhenStarted = sink.output;
      start();
    };
    feedBytewise(telnet, bytes([IAC, DO, MCCP2]));
    expect(sentWhenStarted).toEqual(bytes([IAC, SB, MCCP2, IAC, SE]));
    expect(sink.compressionStarts).toBe(1);
    expect(telnet.info.mccp2).toBe(true);
    feedBytewise(telnet, bytes([IAC, DO, MCCP2]));
    expect(sink.compressionStarts).toBe(1);
    feedBytewise(telnet, bytes([IAC, DONT, MCCP2]));
    expect(sink.compressionStops).toBe(1);
    expect(telnet.info.mccp2).toBe(false);
  });

  it('refuses MCCP2 when it was not enabled', () => {
    const { telnet, sink } = session();
    feedBytewise(telnet, bytes([IAC, DO, MCCP2]));
    expect(sink.output).toEqual(bytes([IAC, WONT, MCCP2]));
    expect(sink.compressionStarts).toBe(0);
  });
});

describe('escapeIac and encodeText', () => {
  it('doubles every 255 byte, and leaves other bytes alone', () => {
    expect(escapeIac(bytes([1, 255, 2, 255, 255]))).toEqual(bytes([1, 255, 255, 2, 255, 255, 255, 255]));
    const plain = bytes('no iac');
    expect(escapeIac(plain)).toBe(plain);
  });

  it('encodes text as UTF-8 (which never holds a 255 byte)', () => {
    const { telnet } = session();
    expect(telnet.encodeText('ÿé😀\r\n')).toEqual(Buffer.from('ÿé😀\r\n', 'utf8'));
  });
});

describe('NVT output (RFC 854): encodeText and NvtEncoder', () => {
  const CR = 0x0d;
  const LF = 0x0a;
  const NUL = 0x00;
  /** Every piece a session encodes, then what finish() adds. */
  function encodeAll(telnet: TelnetSession, texts: string[]): Buffer {
    return Buffer.concat([...texts.map((text) => telnet.encodeText(text)), telnet.finish()]);
  }

  it('a bare LF becomes CR LF, a bare CR becomes CR NUL; CR LF and CR NUL stay; CR CR LF is CR NUL CR LF', () => {
    const { telnet } = session();
    expect(encodeAll(telnet, ['line1\nline2\n'])).toEqual(bytes('line1\r\nline2\r\n'));
    expect(encodeAll(telnet, ['50%\r60%\r', 'done\r\n'])).toEqual(bytes('50%\r\x0060%\r\x00done\r\n'));
    expect(encodeAll(telnet, ['a\r\nb\r\0c\r\r\n\n\r'])).toEqual(bytes('a\r\nb\r\0c\r\0\r\n\r\n\r\0'));
  });

  it('returns text that needs nothing as it is (the same buffer), CR LF included', () => {
    const encoder = new NvtEncoder();
    const plain = bytes('Hello é😀\r\nand more\r\n');
    expect(encoder.encode(plain)).toBe(plain);
    expect(encoder.pendingCr).toBe(false);
  });

  it('a CR ending one text is written at once; the next text decides what follows it (LF, or NUL then the text)', () => {
    const { telnet } = session();
    expect(telnet.encodeText('Loading 50%\r')).toEqual(bytes('Loading 50%\r'));
    expect(telnet.encodeText('\nnext')).toEqual(bytes('\nnext'));
    expect(telnet.encodeText('60%\r')).toEqual(bytes('60%\r'));
    expect(telnet.encodeText('\0x')).toEqual(bytes('\0x')); // the app's own CR NUL, split
    expect(telnet.encodeText('70%\r')).toEqual(bytes('70%\r'));
    expect(telnet.encodeText('80%')).toEqual(bytes([NUL], '80%'));
    expect(telnet.finish()).toEqual(bytes());
    telnet.encodeText('end\r');
    expect(telnet.finish()).toEqual(bytes([NUL]));
    expect(telnet.finish()).toEqual(bytes());
  });

  it('a CR left open gets its NUL before anything else the session writes: negotiation, GMCP, a prompt mark', () => {
    const { telnet, sink } = session();
    telnet.encodeText('Password:\r');
    telnet.setEcho(false);
    expect(sink.output).toEqual(bytes([NUL, IAC, WILL, ECHO]));
    sink.clearSent();
    telnet.encodeText('x\r');
    feedBytewise(telnet, bytes([IAC, DO, 99]));
    expect(sink.output).toEqual(bytes([NUL, IAC, WONT, 99]));
    feedBytewise(telnet, bytes([IAC, DO, GMCP]));
    telnet.encodeText('y\r');
    expect(telnet.encodeGmcp('Core.Ping')).toEqual(bytes([NUL, IAC, SB, GMCP], 'Core.Ping', [IAC, SE]));
    telnet.encodeText('z\r');
    expect(telnet.encodePrompt()).toEqual(bytes([NUL, IAC, GA]));
  });

  it('doubles IAC (255) in the bytes it encodes, with the line ends translated around it', () => {
    const encoder = new NvtEncoder();
    expect(encoder.encode(bytes([1, 255, 0x0a, 255, 255, 0x0d]))).toEqual(bytes([1, 255, 255, CR, LF, 255, 255, 255, 255, CR]));
    expect(encoder.close()).toEqual(bytes([NUL]));
    // Text never holds a 255 byte (UTF-8 has none), so encodeText's escaping is a safety net.
    expect(session().telnet.encodeText('ÿ')).toEqual(bytes([0xc3, 0xbf]));
  });

  it('nvtOutput: false leaves the line ends alone (IAC still doubled)', () => {
    const { telnet } = session({ nvtOutput: false });
    expect(encodeAll(telnet, ['a\nb\r', '\nc\r'])).toEqual(bytes('a\nb\r\nc\r'));
    const encoder = session({ nvtOutput: false });
    encoder.telnet.encodeText('x\r');
    expect(encoder.telnet.encodePrompt()).toEqual(bytes([IAC, GA]));
  });

  it('refuses BINARY (RFC 856) both ways, so the output is always NVT', () => {
    const { telnet, sink } = session();
    feedBytewise(telnet, bytes([IAC, DO, BINARY, IAC, WILL, BINARY]));
    expect(sink.output).toEqual(bytes([IAC, WONT, BINARY, IAC, DONT, BINARY]));
    expect(telnet.encodeText('a\n')).toEqual(bytes('a\r\n'));
  });

  /** RFC 854's rule, written as a regular expression over the bytes (latin1), for comparison. */
  function reference(text: string): string {
    return text.replace(/\r\n|\r\0|\r|\n|\xff/g, (match) => (match === '\r' ? '\r\0' : match === '\n' ? '\r\n' : match === '\xff' ? '\xff\xff' : match));
  }

  it('however the text is cut into outputs, the bytes are those of RFC 854\'s rule applied to the whole, and every CR is followed by LF or NUL', () => {
    const piece = fc.array(fc.constantFrom('a', 'é', '\r', '\n', '\0', '\xff', ' '), { maxLength: 12 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const encoder = new NvtEncoder();
        const out = Buffer.concat([...pieces.map((text) => encoder.encode(Buffer.from(text, 'latin1'))), encoder.close()]);
        expect(out.toString('latin1')).toBe(reference(pieces.join('')));
        for (let i = 0; i < out.length; i++) {
          if (out[i] === CR) expect([LF, NUL]).toContain(out[i + 1]);
          if (out[i] === LF) expect(out[i - 1]).toBe(CR);
        }
      }),
      RUNS,
    );
  });
});

describe('TelnetSession: prompts (EOR, RFC 885; GA, RFC 858)', () => {
  it('ends a prompt with IAC GA by default, nothing once SGA is agreed, IAC EOR once EOR is (even with SGA)', () => {
    const { telnet } = session();
    telnet.start();
    expect(telnet.encodePrompt()).toEqual(bytes([IAC, GA]));
    feedBytewise(telnet, bytes([IAC, DO, SGA]));
    expect(telnet.encodePrompt()).toBeUndefined();
    feedBytewise(telnet, bytes([IAC, DO, EOR]));
    expect(telnet.info.eor).toBe(true);
    expect(telnet.encodePrompt()).toEqual(bytes([IAC, IAC_EOR]));
    feedBytewise(telnet, bytes([IAC, DONT, SGA]));
    expect(telnet.encodePrompt()).toEqual(bytes([IAC, IAC_EOR]));
    feedBytewise(telnet, bytes([IAC, DONT, EOR]));
    expect(telnet.info.eor).toBe(false);
    expect(telnet.encodePrompt()).toEqual(bytes([IAC, GA]));
  });

  it('agrees to DO EOR once (the answer to its offer gets no answer), and refuses it when eor is off', () => {
    const offered = session();
    offered.telnet.start();
    offered.sink.clearSent();
    feedBytewise(offered.telnet, bytes([IAC, DO, EOR, IAC, DO, EOR]));
    expect(offered.sink.output).toEqual(bytes());
    const unasked = session();
    feedBytewise(unasked.telnet, bytes([IAC, DO, EOR]));
    expect(unasked.sink.output).toEqual(bytes([IAC, WILL, EOR]));
    const off = session({ eor: false });
    off.telnet.start();
    off.sink.clearSent();
    feedBytewise(off.telnet, bytes([IAC, DO, EOR]));
    expect(off.sink.output).toEqual(bytes([IAC, WONT, EOR]));
    expect(off.telnet.encodePrompt()).toEqual(bytes([IAC, GA]));
  });
});

describe('TelnetSession: properties', () => {
  /** One piece of a client's stream: text, an escaped 255, a command, a subnegotiation. */
  const piece = fc.oneof(
    fc.string({ minLength: 1, maxLength: 12 }).map((text) => ({ wire: Buffer.from(text.replace(/\r/g, ''), 'utf8'), input: Buffer.from(text.replace(/\r/g, ''), 'utf8') })),
    fc.constant({ wire: bytes([IAC, IAC]), input: bytes([255]) }),
    fc.constant({ wire: bytes([0x0d, 0x0a]), input: bytes('\r\n') }),
    fc.constant({ wire: bytes([0x0d, 0x00]), input: bytes('\r\n') }),
    fc.tuple(fc.constantFrom(WILL, WONT, DO, DONT), fc.integer({ min: 0, max: 255 })).map(([verb, option]) => ({ wire: bytes([IAC, verb, option]), input: bytes() })),
    fc.constantFrom(NOP, GA, 246, 244).map((command) => ({ wire: bytes([IAC, command]), input: bytes() })),
    fc.tuple(fc.integer({ min: 0, max: 254 }), fc.uint8Array({ maxLength: 20 })).map(([option, body]) => ({
      wire: bytes([IAC, SB, option], escapeIac(Buffer.from(body)).toJSON().data, [IAC, SE]),
      input: bytes(),
    })),
  );

  it('whatever the client sends and however it is cut, the input is exactly the text, and the replies are the same', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 10 }), (pieces, cuts) => {
        const wire = Buffer.concat(pieces.map((p) => p.wire));
        const input = Buffer.concat(pieces.map((p) => p.input));
        const whole = session({ mccp2: true });
        whole.telnet.start();
        whole.telnet.receive(wire);
        expect(whole.sink.input).toEqual(input);
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const chunked = session({ mccp2: true });
        chunked.telnet.start();
        let from = 0;
        for (const point of [...points, wire.length]) {
          chunked.telnet.receive(wire.subarray(from, point));
          from = point;
        }
        expect(chunked.sink.input).toEqual(input);
        expect(chunked.sink.output).toEqual(whole.sink.output);
        const bytewise = session({ mccp2: true });
        bytewise.telnet.start();
        feedBytewise(bytewise.telnet, wire);
        expect(bytewise.sink.input).toEqual(input);
        expect(bytewise.sink.output).toEqual(whole.sink.output);
      }),
      RUNS,
    );
  });

  it('never amplifies: at most one verb back per verb received, and compression never started twice in a row', () => {
    const verb = fc.tuple(fc.constantFrom(WILL, WONT, DO, DONT), fc.constantFrom(ECHO, SGA, TTYPE, NAWS, GMCP, MCCP2, EOR, BINARY, 99));
    fc.assert(
      fc.property(fc.array(verb, { maxLength: 40 }), fc.boolean(), (requests, hide) => {
        const { telnet, sink } = session({ mccp2: true });
        telnet.start();
        if (hide) telnet.setEcho(false);
        const opening = sink.output.length;
        feedBytewise(telnet, bytes(...requests.map(([v, option]) => [IAC, v, option])));
        const sent = sink.output.subarray(opening);
        let verbs = 0;
        for (let i = 0; i + 2 < sent.length; i++) {
          if (sent[i] === IAC && sent[i + 1]! >= WILL && sent[i + 1]! <= DONT) {
            verbs++;
            i += 2;
          }
        }
        expect(verbs).toBeLessThanOrEqual(requests.length);
        // Compression starts once per DO MCCP2 at most (a client may stop and restart it), and is never started twice in a row.
        expect(sink.compressionStarts).toBeLessThanOrEqual(requests.filter(([v, option]) => v === DO && option === MCCP2).length);
        expect(sink.compressionStarts - sink.compressionStops).toBeLessThanOrEqual(1);
        expect(sink.compressionStarts - sink.compressionStops).toBeGreaterThanOrEqual(0);
        expect(sink.input.length).toBe(0);
      }),
      RUNS,
    );
  });
});
