// MSSP (telnet option 70) for MUD listing crawlers and MSDP (option 69) next
// to GMCP, against a real intermediary on real sockets: a crawler written
// byte for byte from the MSSP spec, and the hand-written telnet client.
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_MSDP_DEPTH, MSDP, MSDP_OPTION, MSSP_OPTION, MSSP_VAL, MSSP_VAR, TELNET, TELNET_OPTION, decodeMsdp, encodeMsdp, type ListenerOptions, type IntermediaryOptions } from '@imi/server';
import { RawApp, sleep, testScope, waitFor, type Frame } from './harness.js';
import { TelnetPeer } from './transport-harness.js';

const scope = testScope();
const { IAC, DO, DONT, WILL, WONT, SB, SE } = TELNET;
const { NAWS, TTYPE, GMCP, EOR } = TELNET_OPTION;
const { VAR, VAL, TABLE_OPEN, TABLE_CLOSE, ARRAY_OPEN, ARRAY_CLOSE } = MSDP;

const peers: TelnetPeer[] = [];
afterEach(() => {
  for (const peer of peers.splice(0)) peer.socket.destroy();
});

async function telnetUser(port: number, options?: Parameters<typeof TelnetPeer.connect>[1]): Promise<TelnetPeer> {
  const peer = await TelnetPeer.connect(port, options);
  peers.push(peer);
  return peer;
}

async function start(listener: Partial<Extract<ListenerOptions, { kind: 'telnet' }>> = {}, options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, ...listener }], ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  return { imi, ports, app, port: ports.listeners[1]!.port };
}

function connects(app: RawApp): Frame[] {
  return app.of('connect').filter((frame) => frame.data['resumed'] === false);
}

/** Bytes from numbers and strings (latin1 for the spec's ASCII names). */
function bytes(...parts: Array<number | string | number[]>): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'number' ? Buffer.from([part]) : Array.isArray(part) ? Buffer.from(part) : Buffer.from(part, 'utf8'))));
}

/** A listing crawler as the MSSP spec describes one: it waits for `IAC WILL MSSP`, answers `IAC DO MSSP`, reads the one subnegotiation. */
class Crawler {
  readonly chunks: Buffer[] = [];
  private constructor(readonly user: Awaited<ReturnType<typeof scope.user>>) {}

  static async connect(port: number): Promise<Crawler> {
    return new Crawler(await scope.user(port));
  }

  get received(): Buffer {
    return this.user.bytes;
  }

  /** Answers the opening like a crawler that only wants MSSP: refuses the rest, asks `DO MSSP`. */
  async askForMssp(): Promise<Buffer> {
    await waitFor(() => this.received.includes(bytes(IAC, WILL, MSSP_OPTION)), 5000, 'IAC WILL MSSP');
    this.user.write(bytes(IAC, WONT, NAWS, IAC, WONT, TTYPE, IAC, DONT, GMCP, IAC, DONT, EOR, IAC, DO, MSSP_OPTION, IAC, DONT, MSDP_OPTION));
    const start = bytes(IAC, SB, MSSP_OPTION);
    await waitFor(() => this.received.indexOf(start) !== -1 && this.received.indexOf(bytes(IAC, SE), this.received.indexOf(start)) !== -1, 5000, 'the MSSP subnegotiation');
    const all = this.received;
    const at = all.indexOf(start);
    return all.subarray(at, all.indexOf(bytes(IAC, SE), at) + 2);
  }
}

describe('MSSP', () => {
  it('answers DO MSSP with NAME, PLAYERS, UPTIME and the app variables, laid out as the spec says; the crawler never reaches the app', async () => {
    const before = Math.floor(Date.now() / 1000);
    // A window long enough that the crawler leaves within it however slow
    // the machine is (at 300 ms a loaded machine let the crawler's window end first).
    const { imi, app, port } = await start({ negotiationMs: 2000 }, { msspName: 'Dark Realms' });
    const after = Math.floor(Date.now() / 1000);
    app.send({ param: 'mssp', data: { variables: { GENRE: 'Fantasy', PORT: [4000, '4443'], PLAYERS: 999, UPTIME: 1, 'CRAWL DELAY': -1 } } });
    await app.barrier();
    const player = await telnetUser(port);
    await app.nextUserId();
    const crawler = await Crawler.connect(port);
    const sub = await crawler.askForMssp();
    const uptime = Number(/UPTIME\x02(\d+)/.exec(sub.toString('latin1'))![1]);
    expect(uptime).toBeGreaterThanOrEqual(before);
    expect(uptime).toBeLessThanOrEqual(after);
    expect(sub).toEqual(
      bytes(
        [IAC, SB, MSSP_OPTION],
        MSSP_VAR, 'NAME', MSSP_VAL, 'Dark Realms',
        MSSP_VAR, 'PLAYERS', MSSP_VAL, '1',
        MSSP_VAR, 'UPTIME', MSSP_VAL, String(uptime),
        MSSP_VAR, 'GENRE', MSSP_VAL, 'Fantasy',
        MSSP_VAR, 'PORT', MSSP_VAL, '4000', MSSP_VAL, '4443',
        MSSP_VAR, 'CRAWL DELAY', MSSP_VAL, '-1',
        [IAC, SE],
      ),
    );
    crawler.user.close();
    // Past the negotiation window: a crawler that left within it was never announced.
    await sleep(2200);
    await app.barrier();
    expect(connects(app)).toHaveLength(1);
    expect(app.of('disconnect')).toHaveLength(0);
    expect(imi.stats().sessions).toBe(1);
    expect(player.closed).toBe(false);
  });

  it('answers the plain-text MSSP-REQUEST of a crawler that does not speak telnet, as text, and hangs up; the crawler never reaches the app, a player typing something else does', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { imi, app, port } = await start({ negotiationMs: 2000 }, { msspName: 'Dark Realms' });
    const after = Math.floor(Date.now() / 1000);
    app.send({ param: 'mssp', data: { variables: { GENRE: 'Fantasy', PORT: [4000, '4443'] } } });
    await app.barrier();
    // Sent at once, ignoring the server's negotiation (a plain TCP crawler).
    const crawler = await scope.user(port);
    crawler.write('MSSP-REQUEST\r\n');
    await crawler.waitClosed();
    const text = crawler.bytes.toString('latin1');
    const uptime = Number(/UPTIME\t(\d+)/.exec(text)![1]);
    expect(uptime).toBeGreaterThanOrEqual(before);
    expect(uptime).toBeLessThanOrEqual(after);
    // After the server's own negotiation, nothing but the reply (the crawler is no player).
    expect(text.slice(text.indexOf('\r\nMSSP-REPLY-START'))).toBe(`\r\nMSSP-REPLY-START\r\nNAME\tDark Realms\r\nPLAYERS\t0\r\nUPTIME\t${uptime}\r\nGENRE\tFantasy\r\nPORT\t4000\t4443\r\nMSSP-REPLY-END\r\n`);
    expect(text.indexOf('\r\nMSSP-REPLY-START')).toBe(text.indexOf('\r'));
    // Any case, white space around it, split over several writes.
    const slow = await scope.user(port);
    for (const part of ['  mssp-', 'Request ', '\n']) {
      slow.write(part);
      await sleep(20);
    }
    await slow.waitClosed();
    expect(slow.bytes.toString('latin1')).toContain('MSSP-REPLY-END\r\n');
    // Other first lines are input as always.
    const player = await telnetUser(port, { answer: false });
    player.send('MSSP-REQUESTS');
    player.send('MSSP-REQUEST');
    await app.waitForParam('input', 2);
    expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['MSSP-REQUESTS', 'MSSP-REQUEST']);
    expect(player.text).not.toContain('MSSP-REPLY-START');
    await app.barrier();
    expect(connects(app)).toHaveLength(1);
    expect(app.of('disconnect')).toHaveLength(0);
    expect(imi.stats().sessions).toBe(1);
  });

  it('keeps the app variables and the uptime across an app restart; the app NAME replaces the option', async () => {
    const { ports, app, port } = await start({}, { msspName: 'Configured' });
    app.send({ param: 'mssp', data: { variables: { NAME: 'From The App', CODEBASE: ['imi-mud', '1.0'] } } });
    await app.barrier();
    const first = await (await Crawler.connect(port)).askForMssp();
    app.destroy();
    await sleep(50);
    const next = await scope.app(ports.clientPort, { name: 'test' });
    await next.synced();
    const second = await (await Crawler.connect(port)).askForMssp();
    expect(second).toEqual(first);
    expect(second.toString('latin1')).toContain('\x01NAME\x02From The App\x01PLAYERS\x020\x01UPTIME');
    expect(second.toString('latin1')).toContain('\x01CODEBASE\x02imi-mud\x021.0\xff\xf0');
    // A new set replaces the old one.
    next.send({ param: 'mssp', data: { variables: { GENRE: 'Science Fiction' } } });
    await next.barrier();
    const third = (await (await Crawler.connect(port)).askForMssp()).toString('latin1');
    expect(third).toContain('\x01NAME\x02Configured\x01');
    expect(third).toContain('\x01GENRE\x02Science Fiction\xff\xf0');
    expect(third).not.toContain('CODEBASE');
  });

  it('holds a client that asked for MSSP until the negotiation window ends, then announces it if it stayed', async () => {
    const { app, port } = await start({ negotiationMs: 400 });
    const crawler = await Crawler.connect(port);
    const connectedAt = Date.now();
    await crawler.askForMssp();
    // Every offer is answered: without the MSSP rule it would be announced now.
    await sleep(150);
    expect(connects(app)).toHaveLength(0);
    await app.waitForParam('connect');
    expect(Date.now() - connectedAt).toBeGreaterThanOrEqual(350);
    // A client that refused MSSP is announced as soon as it answered.
    const player = await telnetUser(port);
    const answeredAt = Date.now();
    await app.waitForParam('connect', 2);
    expect(Date.now() - answeredAt).toBeLessThan(300);
    expect(player.commands).toContain(`WILL ${MSSP_OPTION}`);
  });

  it('an app that names a telnet user in hello.known hears only a change of its telnet info made while it was away', async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0 }] });
    const app = await scope.app(ports.clientPort, { name: 'first', instance: 'i1' });
    await app.synced();
    const player = await telnetUser(ports.listeners[1]!.port, { size: [80, 24] });
    const [connect] = await app.waitForParam('connect');
    const id = connect!.data['id'] as string;
    expect(connect!.data['telnet']).toMatchObject({ naws: { width: 80, height: 24 } });
    // Not told to the app (it is away) until it comes back.
    app.destroy();
    await waitFor(() => !imi.appConnected, 5000, 'the intermediary to see the app go');
    player.resize(132, 50);
    await waitFor(() => imi.snapshotSession(id)?.telnet?.info.naws?.width === 132, 5000, 'the new window size');
    const back = await scope.app(ports.clientPort, { name: 'back', instance: 'i1', known: [id] });
    const synced = await back.synced();
    const beforeSynced = back.frames.slice(0, back.frames.indexOf(synced));
    expect(beforeSynced.map((frame) => frame.param)).toEqual(['telnet']);
    expect(beforeSynced[0]!.data).toMatchObject({ id, telnet: { naws: { width: 132, height: 50 } } });
    expect(imi.stats().lastResyncAnnounced).toBe(0);
  });

  it('a telnet change written to an app link that is then lost or replaced is told again to the app that names the user in hello.known', async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0 }], appPolicy: 'replace' });
    const first = await scope.app(ports.clientPort, { name: 'first', instance: 'i1' });
    await first.synced();
    const player = await telnetUser(ports.listeners[1]!.port, { size: [80, 24] });
    const id = (await first.waitForParam('connect'))[0]!.data['id'] as string;
    // Written to the first link: the same process reconnecting on a new link (the first one half-open, say) may not
    // have read it, so the intermediary does not take it as known.
    player.resize(100, 30);
    await first.waitForParam('telnet');
    const second = await scope.app(ports.clientPort, { name: 'second', instance: 'i1', known: [id] });
    const synced = await second.synced();
    expect(synced.data).toMatchObject({ count: 1, known: true });
    const told = second.frames.slice(0, second.frames.indexOf(synced));
    expect(told.map((frame) => frame.param)).toEqual(['telnet']);
    expect(told[0]!.data).toMatchObject({ id, telnet: { naws: { width: 100, height: 30 } } });
    // Told on a link that then closed: told again.
    second.destroy();
    await waitFor(() => !imi.appConnected, 5000, 'the intermediary to see the app go');
    const third = await scope.app(ports.clientPort, { name: 'third', instance: 'i1', known: [id] });
    const thirdSynced = await third.synced();
    expect(third.frames.slice(0, third.frames.indexOf(thirdSynced)).map((frame) => frame.param)).toEqual(['telnet']);
    // Told on a link that is still up when the same process names the user again on another link (replace): told again.
    const fourth = await scope.app(ports.clientPort, { name: 'fourth', instance: 'i1', known: [id] });
    const fourthSynced = await fourth.synced();
    expect(fourth.frames.slice(0, fourth.frames.indexOf(fourthSynced)).map((frame) => frame.param)).toEqual(['telnet']);
    expect(imi.stats().lastResyncAnnounced).toBe(0);
  });

  it('is not offered with mssp: false, and DO MSSP is refused', async () => {
    const { port } = await start({ mssp: false });
    const user = await scope.user(port);
    await waitFor(() => user.bytes.includes(bytes(IAC, WILL, EOR)), 5000, 'the opening');
    await sleep(50);
    expect(user.bytes.includes(bytes(IAC, WILL, MSSP_OPTION))).toBe(false);
    user.write(bytes(IAC, DO, MSSP_OPTION));
    await waitFor(() => user.bytes.includes(bytes(IAC, WONT, MSSP_OPTION)), 5000, 'WONT MSSP');
    expect(user.bytes.includes(bytes(IAC, SB, MSSP_OPTION))).toBe(false);
  });

  it('opens with DO NAWS, DO TTYPE, WILL GMCP, WILL EOR, WILL MSSP, WILL MSDP on a telnet listener', async () => {
    const { port } = await start();
    const user = await scope.user(port);
    const opening = bytes(IAC, DO, NAWS, IAC, DO, TTYPE, IAC, WILL, GMCP, IAC, WILL, EOR, IAC, WILL, MSSP_OPTION, IAC, WILL, MSDP_OPTION);
    await waitFor(() => user.bytes.length >= opening.length, 5000, 'the opening');
    expect(user.bytes.subarray(0, opening.length)).toEqual(opening);
  });

  it('rejects an mssp message with control characters (IMI_BAD_MESSAGE) and keeps the previous set', async () => {
    const { app, port } = await start();
    app.send({ param: 'mssp', data: { variables: { GENRE: 'Horror' } } });
    app.send({ param: 'mssp', data: { variables: { GENRE: 'a\u0001b' } }, txn_id: 'bad-mssp' });
    await app.waitForError('IMI_BAD_MESSAGE');
    expect(app.errors('IMI_BAD_MESSAGE')[0]!.data['txn_id']).toBe('bad-mssp');
    expect((await (await Crawler.connect(port)).askForMssp()).toString('latin1')).toContain('\x01GENRE\x02Horror\xff\xf0');
  });
});

function msdpSub(...body: Array<number | string | number[]>): Buffer {
  return bytes([IAC, SB, MSDP_OPTION], ...body, [IAC, SE]);
}

describe('MSDP', () => {
  it('a client that agrees gets telnet.msdp true; its variables reach the app as gmcp messages with protocol "msdp"', async () => {
    const { app, port } = await start();
    const peer = await telnetUser(port, { gmcp: false, agree: [MSDP_OPTION] });
    const id = await app.nextUserId();
    expect(connects(app)[0]!.data['telnet']).toMatchObject({ msdp: true, gmcp: false });
    peer.write(msdpSub(VAR, 'REPORT', VAL, 'HEALTH', VAL, 'MANA'));
    peer.write(msdpSub(VAR, 'LIST', VAL, 'COMMANDS', VAR, 'SEND', VAL, 'ROOM'));
    peer.write(
      msdpSub(
        VAR, 'ROOM', VAL, TABLE_OPEN,
        VAR, 'VNUM', VAL, '6008',
        VAR, 'EXITS', VAL, TABLE_OPEN, VAR, 'n', VAL, '6011', VAR, 'e', VAL, '6007', TABLE_CLOSE,
        VAR, 'TAGS', VAL, ARRAY_OPEN, VAL, 'dark', VAL, '', VAL, ARRAY_OPEN, ARRAY_CLOSE, ARRAY_CLOSE,
        TABLE_CLOSE,
      ),
    );
    peer.write(msdpSub(VAR, 'SAY', VAL, 'héllo wörld'));
    const frames = await app.waitForParam('gmcp', 5);
    expect(frames.map((frame) => frame.data)).toEqual([
      { id, package: 'REPORT', value: ['HEALTH', 'MANA'], protocol: 'msdp' },
      { id, package: 'LIST', value: 'COMMANDS', protocol: 'msdp' },
      { id, package: 'SEND', value: 'ROOM', protocol: 'msdp' },
      { id, package: 'ROOM', value: { VNUM: '6008', EXITS: { n: '6011', e: '6007' }, TAGS: ['dark', '', []] }, protocol: 'msdp' },
      { id, package: 'SAY', value: 'héllo wörld', protocol: 'msdp' },
    ]);
  });

  it('drops and counts malformed MSDP (IMI_BAD_TELNET) without losing the input around it', async () => {
    const { imi, app, port } = await start();
    const peer = await telnetUser(port, { gmcp: false, agree: [MSDP_OPTION] });
    const id = await app.nextUserId();
    const deep: number[] = [];
    for (let i = 0; i <= MAX_MSDP_DEPTH; i++) deep.push(VAL, ARRAY_OPEN);
    const bad = [
      msdpSub(VAL, 'x'), // a value without a variable
      msdpSub(VAR, 'HP'), // a variable without a value
      msdpSub(VAR, 'ROOM', VAL, TABLE_OPEN, VAR, 'a', VAL, 'b'), // a table never closed
      msdpSub(VAR, 'L', VAL, ARRAY_OPEN, VAL, 'a', TABLE_CLOSE), // the wrong close
      msdpSub(VAR, 'X', VAL, 'a', ARRAY_CLOSE), // a close without an open
      msdpSub(VAR, 'DEEP', ...deep.slice(1), ...new Array<number>(MAX_MSDP_DEPTH + 1).fill(ARRAY_CLOSE)), // nested too deep
      msdpSub(VAR, 'has space', VAL, '1'), // not a name an app could send back
      msdpSub(), // empty
    ];
    peer.send('before');
    for (const sub of bad) peer.write(sub);
    peer.write(msdpSub(VAR, 'HEALTH', VAL, '10'));
    peer.send('after');
    await app.waitForParam('gmcp');
    await waitFor(() => app.of('input').length >= 2, 5000, 'both lines');
    expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['before', 'after']);
    expect(app.of('gmcp').map((frame) => frame.data)).toEqual([{ id, package: 'HEALTH', value: '10', protocol: 'msdp' }]);
    expect(imi.stats().errors['IMI_BAD_TELNET']).toBe(bad.length);
    // Nested exactly to the bound is fine.
    const edge: number[] = [];
    for (let i = 0; i < MAX_MSDP_DEPTH; i++) edge.push(VAL, ARRAY_OPEN);
    peer.write(msdpSub(VAR, 'EDGE', ...edge, ...new Array<number>(MAX_MSDP_DEPTH).fill(ARRAY_CLOSE)));
    await app.waitForParam('gmcp', 2);
    let expected: unknown = [];
    for (let i = 1; i < MAX_MSDP_DEPTH; i++) expected = [expected];
    expect(app.of('gmcp')[1]!.data['value']).toEqual(expected);
  });

  it('the app sends gmcp to MSDP clients as MSDP, or only one protocol when it names it', async () => {
    const { app, port } = await start();
    const msdpOnly = await telnetUser(port, { gmcp: false, agree: [MSDP_OPTION] });
    const msdpId = await app.nextUserId();
    const both = await telnetUser(port, { gmcp: true, agree: [MSDP_OPTION] });
    const bothId = await app.nextUserId(1);
    const value = { hp: 10, dead: false, gone: null, tags: ['a', 2] };
    app.send({ param: 'gmcp', data: { id: msdpId, package: 'Char.Vitals', value } });
    app.send({ param: 'gmcp', data: { id: msdpId, package: 'HEALTH', value: 10, protocol: 'msdp' } });
    app.send({ param: 'gmcp', data: { id: msdpId, package: 'Only.Gmcp', value: 1, protocol: 'gmcp' } });
    app.send({ param: 'gmcp', data: { id: bothId, package: 'Char.Vitals', value } });
    app.send({ param: 'gmcp', data: { id: bothId, package: 'HEALTH', protocol: 'msdp' } });
    app.output(msdpId, 'done\r\n');
    app.output(bothId, 'done\r\n');
    await msdpOnly.waitFor('done');
    await both.waitFor('done');
    const msdpOf = (peer: TelnetPeer): Buffer[] => peer.subs.filter((sub) => sub.option === MSDP_OPTION).map((sub) => sub.data);
    expect(msdpOf(msdpOnly)).toEqual([
      bytes(VAR, 'Char.Vitals', VAL, TABLE_OPEN, VAR, 'hp', VAL, '10', VAR, 'dead', VAL, '0', VAR, 'gone', VAL, VAR, 'tags', VAL, ARRAY_OPEN, VAL, 'a', VAL, '2', ARRAY_CLOSE, TABLE_CLOSE),
      bytes(VAR, 'HEALTH', VAL, '10'),
    ]);
    expect(msdpOnly.gmcpMessages).toEqual([]);
    expect(both.gmcpMessages).toEqual([['Char.Vitals', JSON.stringify(value)]]);
    expect(msdpOf(both)).toEqual([bytes(VAR, 'HEALTH', VAL)]);
  });

  it('is not offered with msdp: false (no msdp field), and a client without it gets nothing sent as MSDP', async () => {
    const { app, port } = await start({ msdp: false });
    const peer = await telnetUser(port, { gmcp: false, agree: [MSDP_OPTION] });
    const id = await app.nextUserId();
    expect(peer.commands).not.toContain(`WILL ${MSDP_OPTION}`);
    expect(connects(app)[0]!.data['telnet']).not.toHaveProperty('msdp');
    app.send({ param: 'gmcp', data: { id, package: 'HEALTH', value: '1' } });
    app.output(id, 'done\r\n');
    await peer.waitFor('done');
    expect(peer.subs.filter((sub) => sub.option === MSDP_OPTION)).toEqual([]);
  });
});

describe('the MSDP codec', () => {
  it('decodes what it encodes (numbers and booleans become text, null an empty value), __proto__ included', () => {
    const value = { a: ['x', { b: 'y' }], n: 3, t: true, f: false, z: null, ['__proto__']: 'p' } as const;
    const decoded = decodeMsdp(encodeMsdp('V', JSON.parse(JSON.stringify(value))));
    expect(decoded).toEqual([['V', { a: ['x', { b: 'y' }], n: '3', t: '1', f: '0', z: '', ['__proto__']: 'p' }]]);
    expect(Object.getPrototypeOf((decoded as Array<[string, object]>)[0]![1])).toBe(Object.prototype);
    // Structure bytes in the app's text are dropped, so they cannot forge structure.
    expect(encodeMsdp('N\u0001', 'a\u0002b\u0003c')).toEqual(bytes(VAR, 'N', VAL, 'abc'));
  });

  it('never throws on any bytes: a list of variables or a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }).map((array) => Buffer.from(array.map((byte) => (byte % 3 === 0 ? byte % 7 : byte)))), (data) => {
        const result = decodeMsdp(data);
        expect(typeof result === 'string' || Array.isArray(result)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
