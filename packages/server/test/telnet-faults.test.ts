// Telnet faults seen with real clients, each against a real intermediary on
// real sockets (port 0): a subnegotiation never ended, line end pairs, line
// editing in character mode, MCCP2 turned off and on again at once, GMCP
// package names with a line end.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import zlib from 'node:zlib';
import { once } from 'node:events';
import pino from 'pino';
import { TELNET, TELNET_OPTION, type IntermediaryOptions, type ListenerOptions } from '@imi/server';
import { RawApp, testScope, waitFor } from './harness.js';
import { TelnetPeer } from './transport-harness.js';

const scope = testScope();
const { IAC, SB, SE, DO, DONT, WILL, NOP } = TELNET;
const { GMCP, MCCP2 } = TELNET_OPTION;
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

const sockets: net.Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

async function telnetUser(port: number, options?: Parameters<typeof TelnetPeer.connect>[1]): Promise<TelnetPeer> {
  const peer = await TelnetPeer.connect(port, options);
  sockets.push(peer.socket);
  return peer;
}

/** A pino logger that keeps every line, parsed. */
function memoryLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

async function start(listeners: ListenerOptions[], options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ listeners, ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  return { imi, ports, app, port: ports.listeners[1]?.port ?? 0 };
}

function inputs(app: RawApp, id: string): string[] {
  return app.of('input').filter((frame) => frame.data['id'] === id).map((frame) => frame.data['value'] as string);
}

async function waitForInputs(app: RawApp, id: string, count: number): Promise<string[]> {
  await waitFor(() => inputs(app, id).length >= count, 5000, () => `${count} inputs (got ${JSON.stringify(inputs(app, id))})`);
  await app.barrier();
  return inputs(app, id);
}

const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part))));

describe('a subnegotiation that never ends (IAC SB with no IAC SE)', () => {
  it('a GMCP message cut short: the next command ends it, the user goes on typing, IMI_BAD_TELNET counted and logged once', async () => {
    const { logger, lines: log } = memoryLogger();
    const { imi, app, port } = await start([{ kind: 'telnet', port: 0 }], { logger });
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    const other = await telnetUser(port);
    const otherId = await app.nextUserId(1);
    peer.write(bytes([IAC, SB, GMCP], 'Core.Hello {"client":"Mud'));
    peer.write(bytes('look\r\n'));
    peer.write(bytes([IAC, NOP], 'north\r\n'));
    other.send('the other user');
    const got = await waitForInputs(app, id, 1);
    expect(got).toEqual(['north']);
    await waitFor(() => inputs(app, otherId).length === 1, 5000, 'the other user');
    expect(imi.stats().errors['IMI_BAD_TELNET']).toBe(1);
    expect(log.filter((line) => line['code'] === 'IMI_BAD_TELNET')).toEqual([expect.objectContaining({ session: id, level: 40 })]);
    expect(peer.closed).toBe(false);
  });

  it('a cp1251 client typing "яъ" unescaped (IAC SB): its lines come through again within MAX_STRAY_SUBNEGOTIATION_BYTES', async () => {
    const { imi, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    peer.write(bytes('say ', [0xff, 0xfa, 0xe0], '\r\n')); // "say яъа" in cp1251
    const typed = Array.from({ length: 40 }, (_, n) => `line ${n}`);
    for (const text of typed) peer.send(text);
    const got = await waitForInputs(app, id, 11);
    expect(got).toEqual(['say ', ...typed.slice(30)]);
    expect(imi.stats().errors['IMI_BAD_TELNET']).toBe(1);
  });

  it('a GMCP message over maxSubnegotiationBytes (8 KiB) is dropped up to the next line end: IMI_LIMIT counted once', async () => {
    const { imi, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    peer.write(bytes([IAC, SB, GMCP], 'Char.Notes "' + 'x'.repeat(9000) + '\r\n'));
    peer.send('still here');
    const got = await waitForInputs(app, id, 2);
    expect(got).toEqual(['', 'still here']);
    expect(app.of('gmcp')).toEqual([]);
    expect(imi.stats().limits['maxSubnegotiationBytes']).toBe(1);
    expect(imi.stats().errors['IMI_LIMIT']).toBe(1);
  });
});

describe('line ends: one line end, one line', () => {
  it('telnet: CR LF, CR NUL, LF, CR, LF CR and CR CR LF, whole or one byte per segment; a real empty line still counts', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    const wire = bytes('a', [CR, LF], 'b', [CR, NUL], 'c', [LF], 'd', [CR], 'e', [LF, CR], 'f', [CR, CR, LF], [CR, LF], 'g', [CR, LF]);
    const expected = ['a', 'b', 'c', 'd', 'e', 'f', '', 'g'];
    peer.write(wire);
    expect(await waitForInputs(app, id, expected.length)).toEqual(expected);
    await peer.writeSlowly(wire);
    expect(await waitForInputs(app, id, expected.length * 2)).toEqual([...expected, ...expected]);
  });

  it('plain tcp: LF, CR LF, CR CR LF and LF CR, also split across segments; a lone CR inside a line stays text', async () => {
    const { app, ports } = await start([]);
    const user = await scope.user(ports.externalPort);
    const id = await app.nextUserId();
    user.write('a\nb\r\nc\r\r\nd\n\re\r\n\r\nx\ry\n');
    const expected = ['a', 'b', 'c', 'd', 'e', '', 'x\ry'];
    expect(await waitForInputs(app, id, expected.length)).toEqual(expected);
    for (const piece of ['f\r', '\r', '\n', 'g\n', '\r', 'h\n']) {
      user.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await waitForInputs(app, id, expected.length + 3)).toEqual([...expected, 'f', 'g', 'h']);
  });
});

describe('line editing: BS and DEL', () => {
  it('a password typed in character mode with a typo, corrected with DEL and BS, reaches the app corrected', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    app.output(id, 'Password: ');
    app.send({ param: 'telnet', data: { id, echo: false } });
    await peer.waitForCommand(`WILL ${TELNET_OPTION.ECHO}`);
    // One key per segment, as a client in character mode sends: "hunter3", DEL, "2", then "é€", BS, Enter.
    await peer.writeSlowly(bytes('hunter3', [0x7f], '2é€', [0x08], [CR, NUL]));
    await peer.writeSlowly(bytes('lo;', [0x08, 0x08], 'ok', [CR, LF]));
    await peer.writeSlowly(bytes([0x08, 0x7f], 'x', [CR, LF]));
    expect(await waitForInputs(app, id, 3)).toEqual(['hunter2é', 'lok', 'x']);
  });

  it('plain tcp edits too, and IAC EC (telnet erase character) is a BS', async () => {
    const { app, ports, port } = await start([{ kind: 'telnet', port: 0 }]);
    const user = await scope.user(ports.externalPort);
    const tcpId = await app.nextUserId();
    user.write(bytes('passwrod', [0x08, 0x08, 0x08], 'ord\r\n'));
    expect(await waitForInputs(app, tcpId, 1)).toEqual(['password']);
    const peer = await telnetUser(port);
    const id = await app.nextUserId(1);
    peer.write(bytes('looj', [IAC, 247], 'k\r\n'));
    expect(await waitForInputs(app, id, 1)).toEqual(['look']);
  });
});

/** What a MUD client makes of an MCCP2 connection: plain bytes, then after each start marker a zlib stream, until it ends. */
function decodeMccp(wire: Buffer): { text: string; streams: number } {
  const marker = Buffer.from([IAC, SB, MCCP2, IAC, SE]);
  let text = '';
  let streams = 0;
  let at = 0;
  while (at < wire.length) {
    const start = wire.indexOf(marker, at);
    if (start === -1) {
      text += wire.subarray(at).toString('latin1');
      break;
    }
    text += wire.subarray(at, start).toString('latin1');
    streams++;
    const rest = wire.subarray(start + marker.length);
    // Throws "incorrect header check" when what follows the marker is not a zlib stream.
    const { buffer, engine } = zlib.inflateSync(rest, { info: true, finishFlush: zlib.constants.Z_SYNC_FLUSH }) as unknown as { buffer: Buffer; engine: zlib.Inflate };
    text += buffer.toString('latin1');
    at = start + marker.length + engine.bytesWritten;
  }
  return { text, streams };
}

/** The decoded text so far, or '' while a stream cannot be decoded (yet). */
function decodedText(wire: Buffer): string {
  try {
    return decodeMccp(wire).text;
  } catch {
    return '';
  }
}

describe('MCCP2 turned off and on again at once', () => {
  it('DONT MCCP2 then DO MCCP2 in one segment: the new stream starts after the old one ends, right after its marker', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0, mccp2: true, negotiationMs: 0 }]);
    const socket = net.connect({ port, host: '127.0.0.1' });
    sockets.push(socket);
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const wire = (): Buffer => Buffer.concat(received);
    const id = await app.nextUserId();
    socket.write(Buffer.from([IAC, DO, MCCP2]));
    app.output(id, 'first\r\n');
    await waitFor(() => decodedText(wire()).includes('first'), 5000, 'compressed "first"');
    socket.write(Buffer.from([IAC, DONT, MCCP2, IAC, DO, MCCP2]));
    app.output(id, 'second\r\n');
    await waitFor(() => decodedText(wire()).includes('second'), 5000, () => `compressed "second" after the restart (wire ${wire().toString('hex')})`);
    const { text, streams } = decodeMccp(wire());
    expect(streams).toBe(2);
    // The refusal is in the old stream, the new offer and marker in plain bytes between the two.
    expect(text.indexOf('first')).toBeLessThan(text.indexOf(String.fromCharCode(IAC, 252, MCCP2)));
    expect(text.indexOf(String.fromCharCode(IAC, WILL, MCCP2))).toBeLessThan(text.indexOf('second'));
    // Once more, off and on and off, with output in between: still a stream a client can follow.
    socket.write(Buffer.from([IAC, DONT, MCCP2, IAC, DO, MCCP2, IAC, DONT, MCCP2]));
    app.output(id, 'third\r\n');
    await waitFor(() => decodedText(wire()).includes('third'), 5000, 'plain "third"');
    expect(decodeMccp(wire()).streams).toBe(3);
    socket.write('north\r\n');
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'north');
  });
});

describe('GMCP package names from the client', () => {
  it('a trailing line end is not part of the name (nor of the JSON); a name that is not one is dropped with IMI_BAD_TELNET', async () => {
    const { imi, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port);
    const id = await app.nextUserId();
    peer.gmcp('Core.Ping\n');
    peer.gmcp('Char.Login\t{"name":"ann"}\r\n');
    peer.gmcp('\x01Bad {"x":1}');
    peer.gmcp('Core.Ping\r\n');
    const frames = await app.waitForParam('gmcp', 3);
    expect(frames.map((frame) => frame.data)).toEqual([
      { id, package: 'Core.Ping' },
      { id, package: 'Char.Login', value: { name: 'ann' } },
      { id, package: 'Core.Ping' },
    ]);
    expect(imi.stats().errors['IMI_BAD_TELNET']).toBe(1);
  });
});
