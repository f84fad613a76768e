// The transports against a real intermediary on real sockets: telnet (with
// a hand-written client that negotiates like a MUD client), TLS, WebSocket
// and the browser page's HTTP side, several listeners at once.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { ImiError } from '@imi/core';
import { Intermediary, NULL_SINK, TELNET, TELNET_OPTION, type ChannelSink, type IntermediaryOptions, type ListenerOptions, type Transport, type UserChannel } from '@imi/server';
import { RawApp, sleep, testScope, waitFor, type Frame } from './harness.js';
import { TelnetPeer, WsUser, makeCertificate, nawsBytes } from './transport-harness.js';

const scope = testScope();
const { IAC, NOP, WILL } = TELNET;
const { ECHO, GMCP } = TELNET_OPTION;

const peers: Array<TelnetPeer | WsUser> = [];
afterEach(() => {
  for (const peer of peers.splice(0)) {
    if (peer instanceof TelnetPeer) peer.socket.destroy();
    else peer.ws.terminate();
  }
});

async function telnetUser(port: number, options?: Parameters<typeof TelnetPeer.connect>[1]): Promise<TelnetPeer> {
  const peer = await TelnetPeer.connect(port, options);
  peers.push(peer);
  return peer;
}

async function wsUser(url: string, options?: Parameters<typeof WsUser.connect>[1]): Promise<WsUser> {
  const user = await WsUser.connect(url, options);
  peers.push(user);
  return user;
}

/** An intermediary with the given extra listeners and a synced app. */
async function start(listeners: ListenerOptions[], options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ listeners, ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  const port = (index: number): number => ports.listeners[index + 1]!.port;
  return { imi, ports, app, port };
}

function connects(app: RawApp): Frame[] {
  return app.of('connect').filter((frame) => frame.data['resumed'] === false);
}

function inputs(app: RawApp, id: string): string[] {
  return app.of('input').filter((frame) => frame.data['id'] === id).map((frame) => frame.data['value'] as string);
}

describe('telnet listener', () => {
  it('negotiates with a MUD client before announcing it, and tells the app in connect.data.telnet', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0), { size: [132, 43] });
    const id = await app.nextUserId();
    const connect = connects(app)[0]!;
    expect(connect.data['transport']).toBe('telnet');
    expect(connect.data['telnet']).toEqual({
      echo: true,
      sga: false,
      gmcp: true,
      mccp2: false,
      eor: false,
      msdp: false,
      naws: { width: 132, height: 43 },
      ttype: ['MUDLET', 'XTERM-256COLOR', 'MTTS 2825'],
      mtts: 2825,
    });
    expect(peer.commands.slice(0, 3)).toEqual([`DO ${TELNET_OPTION.NAWS}`, `DO ${TELNET_OPTION.TTYPE}`, `WILL ${GMCP}`]);
    // Negotiation done: nothing reached the app as input, and nothing more is asked.
    await app.barrier();
    expect(inputs(app, id)).toEqual([]);
    expect(app.of('telnet')).toEqual([]);
  });

  it('never leaks protocol bytes into input lines, even split into one-byte segments', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0));
    const id = await app.nextUserId();
    await peer.writeSlowly([...Buffer.from('lo'), IAC, NOP, ...Buffer.from('ok'), ...nawsBytes(80, 24), ...Buffer.from('\r\nsay hé'), IAC, WILL, 99, ...Buffer.from('\r\0')]);
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'say hé');
    expect(inputs(app, id)).toEqual(['look', 'say hé']);
    await peer.waitForCommand('DONT 99');
  });

  it('announces a client that never answers after negotiationMs, with what it typed meanwhile', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0, negotiationMs: 150 }]);
    const peer = await telnetUser(port(0), { answer: false });
    peer.send('early');
    const id = await app.nextUserId();
    expect(connects(app)[0]!.data['telnet']).toEqual({ echo: true, sga: false, gmcp: false, mccp2: false, eor: false, msdp: false });
    await app.waitForParam('input');
    expect(inputs(app, id)).toEqual(['early']);
  });

  it('tells the app when the window changes, once per change (a telnet message)', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0), { size: [80, 24] });
    const id = await app.nextUserId();
    peer.resize(100, 30);
    const update = await app.waitForParam('telnet');
    expect(update[0]!.data).toEqual({ id, telnet: expect.objectContaining({ naws: { width: 100, height: 30 } }) });
    peer.resize(100, 30);
    peer.send('same size again');
    await app.waitForParam('input');
    await app.barrier();
    expect(app.of('telnet').length).toBe(1);
  });

  it('hides and shows typing when the app asks ({"param":"telnet","data":{"id","echo":false}})', async () => {
    const { ports, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0));
    const id = await app.nextUserId();
    app.output(id, 'Password: ');
    app.send({ param: 'telnet', data: { id, echo: false } });
    await peer.waitForCommand(`WILL ${ECHO}`);
    expect(peer.text).toContain('Password: ');
    const hidden = await app.waitForParam('telnet');
    expect(hidden[0]!.data['telnet']).toMatchObject({ echo: false });
    peer.send('s3cret');
    await app.waitForParam('input');
    app.send({ param: 'telnet', data: { id, echo: true } });
    await peer.waitForCommand(`WONT ${ECHO}`);
    await app.waitForParam('telnet', 2);
    expect(app.of('telnet')[1]!.data['telnet']).toMatchObject({ echo: true });
    // A tcp user has no echo to turn off: ignored, no error. An unknown id is an error.
    const tcp = await scope.user(ports.externalPort);
    const tcpId = await app.nextUserId(1);
    app.send({ param: 'telnet', data: { id: tcpId, echo: false } });
    app.send({ param: 'telnet', data: { id: 'nobody', echo: false }, txn_id: 'x1' });
    await app.waitForError('IMI_UNKNOWN_ID');
    await app.barrier();
    expect(app.errors().map((e) => e.data['txn_id'])).toEqual(['x1']);
    expect(tcp.received).toBe('');
  });

  it('relays GMCP both ways: the client\'s messages as {"param":"gmcp"}, the app\'s as IAC SB GMCP', async () => {
    const { ports, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0));
    const id = await app.nextUserId();
    peer.gmcp('Core.Hello', '{"client":"Mudlet","version":"4.17.2"}');
    peer.gmcp('Core.Supports.Set', '["Char 1", "Room 1"]');
    peer.gmcp('Core.Ping');
    peer.gmcp('Broken', '{not json');
    peer.gmcp('Char.Login.Credentials', '{"account":"bob","password":"é"}');
    await app.waitForParam('gmcp', 4);
    expect(app.of('gmcp').map((frame) => frame.data)).toEqual([
      { id, package: 'Core.Hello', value: { client: 'Mudlet', version: '4.17.2' } },
      { id, package: 'Core.Supports.Set', value: ['Char 1', 'Room 1'] },
      { id, package: 'Core.Ping' },
      { id, package: 'Char.Login.Credentials', value: { account: 'bob', password: 'é' } },
    ]);
    // Core.Hello and Core.Supports are kept for a restarted app.
    await app.waitForFrame((frame) => frame.param === 'telnet' && (frame.data['telnet'] as { gmcpSupports?: unknown }).gmcpSupports !== undefined);
    app.output(id, 'HP: 10\r\n');
    app.send({ param: 'gmcp', data: { id, package: 'Char.Vitals', value: { hp: 10, maxhp: 20 } } });
    app.send({ param: 'gmcp', data: { id, package: 'Core.Goodbye' } });
    await waitFor(() => peer.gmcpMessages.length >= 2, 5000, 'GMCP to reach the client');
    expect(peer.gmcpMessages).toEqual([
      ['Char.Vitals', '{"hp":10,"maxhp":20}'],
      ['Core.Goodbye', ''],
    ]);
    expect(peer.text).toContain('HP: 10');
    // A tcp user has no GMCP: dropped without an error.
    await scope.user(ports.externalPort);
    const tcpId = await app.nextUserId(1);
    app.send({ param: 'gmcp', data: { id: tcpId, package: 'Char.Vitals', value: 1 } });
    app.send({ param: 'gmcp', data: { id, package: 'Bad Name' }, txn_id: 'bad' });
    await app.waitForError('IMI_BAD_MESSAGE');
    await app.barrier();
    expect(app.errors().map((e) => e.data['txn_id'])).toEqual(['bad']);
  });

  it('keeps the negotiated state across an app restart: the new app gets it at once, the client is not asked again', async () => {
    const { ports, app, port } = await start([{ kind: 'telnet', port: 0 }]);
    const peer = await telnetUser(port(0), { size: [90, 33] });
    const id = await app.nextUserId();
    app.send({ param: 'telnet', data: { id, echo: false } });
    await app.waitForParam('telnet');
    const telnet = app.of('telnet')[0]!.data['telnet'];
    const commandsBefore = peer.commands.length;
    const subsBefore = peer.subs.length;
    app.destroy();
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    const resumed = next.of('connect')[0]!;
    expect(resumed.data['resumed']).toBe(true);
    expect(resumed.data['telnet']).toEqual(telnet);
    expect(resumed.data['telnet']).toMatchObject({ echo: false, naws: { width: 90, height: 33 }, ttype: ['MUDLET', 'XTERM-256COLOR', 'MTTS 2825'] });
    peer.send('still here');
    await next.waitForParam('input');
    expect(peer.commands.length).toBe(commandsBefore);
    expect(peer.subs.length).toBe(subsBefore);
  });

  it('MCCP2 (when enabled): output is a zlib stream after IAC SB MCCP2 IAC SE; input still works', async () => {
    const { app, port } = await start([{ kind: 'telnet', port: 0, mccp2: true }]);
    const peer = await telnetUser(port(0), { mccp2: true });
    const id = await app.nextUserId();
    await waitFor(() => peer.compressed, 5000, 'compression to start');
    expect(connects(app)[0]!.data['telnet']).toMatchObject({ mccp2: true });
    const text = 'You are in a maze of twisty little passages, all alike. '.repeat(40) + '\r\n';
    app.output(id, text);
    app.send({ param: 'gmcp', data: { id, package: 'Room.Info', value: { num: 1 } } });
    await peer.waitFor(text);
    await waitFor(() => peer.gmcpMessages.length === 1, 5000, 'compressed GMCP');
    expect(peer.wireBytes).toBeLessThan(text.length / 4);
    peer.send('north');
    await app.waitForParam('input');
    expect(inputs(app, id)).toEqual(['north']);
  });

  it('cuts a long telnet line at maxLineBytes and tells the user, as for tcp', async () => {
    const { imi, app, port } = await start([{ kind: 'telnet', port: 0 }], { maxLineBytes: 16 });
    const peer = await telnetUser(port(0));
    const id = await app.nextUserId();
    peer.send('x'.repeat(40));
    await app.waitForParam('input');
    expect(inputs(app, id)).toEqual(['x'.repeat(16)]);
    await peer.waitFor('cut to 16 bytes');
    expect(imi.stats().limits['maxLineBytes']).toBe(1);
  });

  it('turns away a telnet user past maxConnections with the notice only, no negotiation', async () => {
    const { ports, port } = await start([{ kind: 'telnet', port: 0 }], { maxConnections: 1 });
    await scope.user(ports.externalPort);
    const peer = await telnetUser(port(0));
    await peer.waitClosed();
    expect(peer.text).toContain('the server is full');
    expect(peer.commands).toEqual([]);
  });
});

describe('TLS listeners', () => {
  let certificate: ReturnType<typeof makeCertificate>;
  beforeAll(() => {
    certificate = makeCertificate();
  });
  afterAll(() => certificate.remove());

  it('carries plain lines over TLS ("tls") and telnet over TLS ("telnet+tls"), cert and key given as files or PEM', async () => {
    const { app, ports } = await start([
      { kind: 'tcp', port: 0, tls: { cert: certificate.certFile, key: certificate.keyFile } },
      { kind: 'telnet', port: 0, tls: { cert: certificate.cert, key: certificate.key } },
    ]);
    expect(ports.listeners.map((listener) => listener.transport)).toEqual(['tcp', 'tls', 'telnet+tls']);
    const socket = tls.connect({ port: ports.listeners[1]!.port, host: '127.0.0.1', ca: certificate.cert, servername: 'localhost' });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (received += text));
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const tlsId = await app.nextUserId();
    expect(connects(app)[0]!.data['transport']).toBe('tls');
    socket.write('over tls\r\n');
    await app.waitForParam('input');
    app.output(tlsId, 'secret reply\r\n');
    await waitFor(() => received.includes('secret reply'), 5000, 'TLS reply');
    socket.destroy();

    const peer = await telnetUser(ports.listeners[2]!.port, { ca: certificate.cert, size: [70, 20] });
    const telnetId = await app.nextUserId(1);
    const connect = connects(app)[1]!;
    expect(connect.data['transport']).toBe('telnet+tls');
    expect(connect.data['telnet']).toMatchObject({ naws: { width: 70, height: 20 } });
    app.output(telnetId, 'hello over telnet+tls\r\n');
    await peer.waitFor('hello over telnet+tls');
  });

  it('refuses to listen with an unreadable certificate (IMI_CONFIG), leaving nothing bound', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', listeners: [{ kind: 'telnet', port: 0, tls: { cert: '/nonexistent/cert.pem', key: certificate.keyFile } }] });
    const error = await imi.listen().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ImiError);
    expect((error as ImiError).code).toBe('IMI_CONFIG');
    expect((error as ImiError).message).toContain('/nonexistent/cert.pem');
    await imi.close();
  });
});

describe('WebSocket listener', () => {
  it('one message is one line in, one output is one message out', async () => {
    const { app, port } = await start([{ kind: 'ws', port: 0 }]);
    const user = await wsUser(`ws://127.0.0.1:${port(0)}/`);
    const id = await app.nextUserId();
    expect(connects(app)[0]!.data['transport']).toBe('ws');
    expect(connects(app)[0]!.data['telnet']).toBeUndefined();
    user.send('look');
    user.send('say hé 😀\n');
    user.send('');
    user.send(Buffer.from('binary too'));
    user.send('two\nlines');
    await waitFor(() => inputs(app, id).length === 6, 5000, 'six inputs');
    expect(inputs(app, id)).toEqual(['look', 'say hé 😀', '', 'binary too', 'two', 'lines']);
    app.output(id, 'one\r\n');
    app.output(id, 'two\r\n');
    await user.waitFor('two\r\n');
    expect(user.messages).toEqual(['one\r\n', 'two\r\n']);
  });

  it('cuts a message longer than maxLineBytes and reports it as for tcp; closes on one over maxPayloadBytes (1009, reason "limit")', async () => {
    const { imi, app, port } = await start([{ kind: 'ws', port: 0, maxPayloadBytes: 1024 }], { maxLineBytes: 16 });
    const user = await wsUser(`ws://127.0.0.1:${port(0)}`);
    const id = await app.nextUserId();
    user.send('y'.repeat(100));
    await app.waitForParam('input');
    expect(inputs(app, id)).toEqual(['y'.repeat(16)]);
    await user.waitFor('cut to 16 bytes');
    expect(imi.stats().limits['maxLineBytes']).toBe(1);
    user.send('z'.repeat(2000));
    await user.waitClosed();
    expect(user.closeCode).toBe(1009);
    const gone = await app.waitForParam('disconnect');
    expect(gone[0]!.data).toEqual({ id, reason: 'limit' });
  });

  it('pings: a client that does not answer is dropped ("timeout"), one that does stays', async () => {
    // A generous interval: a lively client is only dropped if the process stalls longer than it.
    const { app, port } = await start([{ kind: 'ws', port: 0, pingIntervalMs: 1000 }]);
    const silent = await wsUser(`ws://127.0.0.1:${port(0)}`, { autoPong: false });
    const silentId = await app.nextUserId();
    const lively = await wsUser(`ws://127.0.0.1:${port(0)}`);
    const livelyId = await app.nextUserId(1);
    const gone = await app.waitForParam('disconnect', 1, 10_000);
    expect(gone[0]!.data).toEqual({ id: silentId, reason: 'timeout' });
    await silent.waitClosed();
    await sleep(1500); // a ping and its pong more for the lively one
    expect(lively.closed).toBe(false);
    lively.send('still here');
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['id'] === livelyId);
  });

  it('accepts upgrades on its path only, and answers plain HTTP with 426', async () => {
    const { port } = await start([{ kind: 'ws', port: 0, path: '/play' }]);
    await expect(WsUser.connect(`ws://127.0.0.1:${port(0)}/other`)).rejects.toThrow(/404/);
    const user = await wsUser(`ws://127.0.0.1:${port(0)}/play`);
    expect(user.closed).toBe(false);
    const response = await get(`http://127.0.0.1:${port(0)}/`);
    expect(response.status).toBe(426);
  });

  it('serves the browser client page (web: true) with a strict CSP, and its WebSocket at /ws', async () => {
    const { app, port, ports } = await start([{ kind: 'ws', port: 0, web: true }]);
    expect(ports.listeners[1]).toEqual({ transport: 'ws', port: port(0), host: '127.0.0.1', path: '/ws', web: true });
    const page = await get(`http://127.0.0.1:${port(0)}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.body).toContain('<meta name="imi-ws-path" content="/ws">');
    const script = await get(`http://127.0.0.1:${port(0)}/client.js`);
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await get(`http://127.0.0.1:${port(0)}/client.css`)).status).toBe(200);
    expect((await get(`http://127.0.0.1:${port(0)}/nope`)).status).toBe(404);
    await wsUser(`ws://127.0.0.1:${port(0)}/ws`);
    await app.nextUserId();
  });
});

describe('several listeners at once', () => {
  it('reports every port, and users of every transport sit in the same app', async () => {
    const { ports, app } = await start([
      { kind: 'telnet', port: 0 },
      { kind: 'ws', port: 0 },
    ]);
    expect(ports.listeners.map((listener) => listener.transport)).toEqual(['tcp', 'telnet', 'ws']);
    expect(ports.externalPort).toBe(ports.listeners[0]!.port);
    const tcp = await scope.user(ports.externalPort);
    const telnet = await telnetUser(ports.listeners[1]!.port);
    const ws = await wsUser(`ws://127.0.0.1:${ports.listeners[2]!.port}`);
    await waitFor(() => connects(app).length === 3, 5000, 'three users');
    expect(connects(app).map((frame) => frame.data['transport']).sort()).toEqual(['tcp', 'telnet', 'ws']);
    app.send({ param: 'broadcast', data: { value: 'to everyone\r\n' } });
    await tcp.waitFor('to everyone');
    await telnet.waitFor('to everyone');
    await ws.waitFor('to everyone');
  });

  it('close() tells every user on every transport and closes them', async () => {
    const { imi, ports, app } = await start([
      { kind: 'telnet', port: 0 },
      { kind: 'ws', port: 0, web: true },
    ]);
    const tcp = await scope.user(ports.externalPort);
    const telnet = await telnetUser(ports.listeners[1]!.port);
    const ws = await wsUser(`ws://127.0.0.1:${ports.listeners[2]!.port}/ws`);
    await waitFor(() => connects(app).length === 3, 5000, 'three users');
    await get(`http://127.0.0.1:${ports.listeners[2]!.port}/`); // an idle keep-alive HTTP connection must not hold close() up
    await imi.close();
    for (const user of [tcp, telnet, ws]) await user.waitClosed();
    expect(tcp.received).toContain('shutting down');
    expect(telnet.text).toContain('shutting down');
    expect(ws.text).toContain('shutting down');
  });

  it('rejects impossible listeners with IMI_CONFIG naming the entry', () => {
    const bad: unknown[] = [
      [{ kind: 'gopher', port: 1 }],
      [{ kind: 'ssh', port: 1, tls: { cert: 'c', key: 'k' } }],
      [{ kind: 'ssh', port: 1, proxyProtocol: true }],
      [{ kind: 'ssh', port: 1, hostKeyFile: '' }],
      [{ kind: 'ssh', port: 1, authorizedKeysFile: 7 }],
      [{ kind: 'telnet', port: 1, mssp: 'yes' }],
      [{ kind: 'telnet', port: 1, msdp: 1 }],
      [{ kind: 'telnet', port: 70000 }],
      [{ kind: 'telnet', port: 1, tls: { cert: 'c' } }],
      [{ kind: 'ws', port: 1, path: 'ws' }],
      [{ kind: 'ws', port: 1, web: true, path: '/' }],
      [{ kind: 'ws', port: 1, maxPayloadBytes: 0 }],
      [{ kind: 'telnet', port: 1, mccp2: 'yes' }],
      [{ kind: 'telnet', port: 1, nvtOutput: 'crlf' }],
      [{ kind: 'telnet', port: 1, eor: 1 }],
      'telnet',
    ];
    for (const listeners of bad) {
      expect(() => new Intermediary({ listeners: listeners as ListenerOptions[] })).toThrow(/IMI_CONFIG|listeners/);
      try {
        new Intermediary({ listeners: listeners as ListenerOptions[] });
      } catch (error) {
        expect((error as ImiError).code).toBe('IMI_CONFIG');
      }
    }
  });

  it('takes a transport of your own in listeners (here: lines over TCP, with a channel written from scratch)', async () => {
    const servers: net.Server[] = [];
    const custom: Transport = {
      async listen(accept, backlog) {
        const server = net.createServer((socket) => accept(new PlainChannel(socket)));
        servers.push(server);
        await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog }, resolve));
        return { transport: 'custom', port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' };
      },
      close: () => new Promise<void>((resolve) => servers[0]!.close(() => resolve())),
    };
    const { ports, app } = await start([], { listeners: [custom] });
    expect(ports.listeners[1]).toMatchObject({ transport: 'custom' });
    const user = await scope.user(ports.listeners[1]!.port);
    const id = await app.nextUserId();
    expect(connects(app)[0]!.data['transport']).toBe('custom');
    user.send('hello custom');
    await app.waitForParam('input');
    expect(inputs(app, id)).toEqual(['hello custom']);
    app.output(id, 'reply\r\n');
    await user.waitFor('reply');
  });
});

/** A minimal user channel over a socket, as a plugin author would write one. */
class PlainChannel implements UserChannel {
  readonly transport = 'custom';
  readonly remote;
  readonly telnet = undefined;
  private sink: ChannelSink = NULL_SINK;
  constructor(private readonly socket: net.Socket) {
    this.remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    socket.on('error', (error) => this.sink.onError('error', error));
    socket.on('close', () => this.sink.onClose());
  }
  get writableLength(): number {
    return this.socket.writableLength;
  }
  get destroyed(): boolean {
    return this.socket.destroyed;
  }
  attach(sink: ChannelSink): void {
    this.sink = sink;
    this.socket.on('data', (chunk: Buffer) => sink.onData(chunk));
    this.socket.on('end', () => sink.onEnd());
  }
  write(text: string): void {
    this.socket.write(text);
  }
  cork(): void {
    this.socket.cork();
  }
  uncork(): void {
    this.socket.uncork();
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
}

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      })
      .on('error', reject);
  });
}
