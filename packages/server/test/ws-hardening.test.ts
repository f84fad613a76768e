// The WebSocket listener against hostile or broken peers, on real sockets:
// upgrades from other sites' pages (the Origin allow-list, 403 and
// IMI_BAD_ORIGIN), the echo control message of the imi.v1 subprotocol, and
// peers that stop answering pings (dropped as "timeout", the app told),
// while a peer we stopped reading from is not mistaken for a dead one.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import WebSocket from 'ws';
import { ImiError } from '@imi/core';
import { Intermediary, type IntermediaryOptions, type ListenerOptions } from '@imi/server';
import { sleep, testScope, waitFor, type Frame } from './harness.js';
import { CLI, commandsAvailable, startServer, stopAll } from './process-harness.js';
import { WsUser, makeCertificate } from './transport-harness.js';

const scope = testScope();
afterAll(stopAll);

const sockets: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

/** An intermediary with one extra listener, a synced app, and its log lines. */
async function start(listener: ListenerOptions, options: IntermediaryOptions = {}) {
  const log: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void log.push(JSON.parse(line) as Record<string, unknown>) });
  const { imi, ports } = await scope.start({ listeners: [listener], logger, ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  return { imi, ports, app, log, port: ports.listeners[1]!.port };
}

/** Opens a WebSocket; resolves with it once open, or with the HTTP status the upgrade was refused with. */
async function tryConnect(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket | number> {
  const ws = new WebSocket(url, options);
  sockets.push({ destroy: () => ws.terminate() });
  ws.on('error', () => {});
  const refused = new Promise<number>((resolve) => ws.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)));
  const opened = once(ws, 'open').then(() => ws);
  return Promise.race([refused, opened]);
}

function badOriginLines(log: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return log.filter((line) => line['code'] === 'IMI_BAD_ORIGIN');
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('WebSocket Origin allow-list', () => {
  it('with the page served, only its own origin (or no Origin: not a browser) may connect; another site gets 403, counted and logged once', async () => {
    const { imi, app, log, port, ports } = await start({ kind: 'ws', port: 0, web: true }, { adminPort: 0 });
    const url = `ws://127.0.0.1:${port}/ws`;
    const inside = await tryConnect(url, { origin: `http://127.0.0.1:${port}` });
    expect(inside).toBeInstanceOf(WebSocket);
    const insider = inside as WebSocket;
    await app.nextUserId();
    const opened = imi.stats().sessionsOpened;

    expect(await tryConnect(url, { origin: 'https://evil.example' })).toBe(403);
    expect(imi.stats().errors.IMI_BAD_ORIGIN).toBe(1);
    const lines = badOriginLines(log);
    expect(lines).toHaveLength(1);
    expect(lines[0]!['msg']).toContain('"https://evil.example"');
    expect(lines[0]!['msg']).toContain(`port ${port}`);
    expect(await get(`http://127.0.0.1:${ports.adminPort}/metrics`)).toContain('imi_errors_total{code="IMI_BAD_ORIGIN"} 1');

    // The same host on another port, another host name for this one, an opaque origin, garbage: all other origins.
    for (const origin of [`http://127.0.0.1:${port + 1}`, `http://localhost:${port}`, 'null', 'https://evil.example, http://127.0.0.1', `http://127.0.0.1:${port}/ws`]) {
      expect(await tryConnect(url, { origin }), origin).toBe(403);
    }
    expect(imi.stats().errors.IMI_BAD_ORIGIN).toBe(6);
    expect(badOriginLines(log)).toHaveLength(6);
    // Never a session: the app heard of none of them.
    expect(imi.stats().sessionsOpened).toBe(opened);
    expect(app.of('connect')).toHaveLength(1);

    // Own origin, however written; its https form (a TLS-terminating proxy in front); no Origin at all.
    for (const origin of [`HTTP://127.0.0.1:${port}`, `https://127.0.0.1:${port}`]) {
      expect(await tryConnect(url, { origin }), origin).toBeInstanceOf(WebSocket);
    }
    expect(await tryConnect(url)).toBeInstanceOf(WebSocket);
    // The page's origin as a browser names it: Host "localhost:port" makes http://localhost:port its own.
    expect(await tryConnect(url, { origin: `http://localhost:${port}`, headers: { host: `localhost:${port}` } })).toBeInstanceOf(WebSocket);
    expect(imi.stats().errors.IMI_BAD_ORIGIN).toBe(6);

    // The user already in was not disturbed by any of it.
    const id = (app.of('connect')[0]!.data['id'] as string);
    insider.send('still here');
    await app.waitForFrame((frame: Frame) => frame.param === 'input' && frame.data['id'] === id && frame.data['value'] === 'still here');
    expect(insider.readyState).toBe(WebSocket.OPEN);
  });

  it('without the page, any origin may connect (as before)', async () => {
    const { imi, port } = await start({ kind: 'ws', port: 0 });
    expect(await tryConnect(`ws://127.0.0.1:${port}/`, { origin: 'https://evil.example' })).toBeInstanceOf(WebSocket);
    expect(imi.stats().errors.IMI_BAD_ORIGIN).toBe(0);
  });

  it('allowedOrigins replaces the default: listed origins, "self", "*"', async () => {
    const listed = await start({ kind: 'ws', port: 0, allowedOrigins: ['https://Game.Example:443'] });
    const url = `ws://127.0.0.1:${listed.port}/`;
    expect(await tryConnect(url, { origin: 'https://game.example' })).toBeInstanceOf(WebSocket);
    expect(await tryConnect(url, { origin: 'https://evil.example' })).toBe(403);
    expect(await tryConnect(url, { origin: 'http://game.example' })).toBe(403);
    expect(await tryConnect(url, { origin: `http://127.0.0.1:${listed.port}` })).toBe(403); // "self" not listed
    expect(await tryConnect(url)).toBeInstanceOf(WebSocket);
    expect(listed.imi.stats().errors.IMI_BAD_ORIGIN).toBe(3);

    const both = await start({ kind: 'ws', port: 0, web: true, allowedOrigins: ['self', 'https://game.example'] });
    const bothUrl = `ws://127.0.0.1:${both.port}/ws`;
    expect(await tryConnect(bothUrl, { origin: `http://127.0.0.1:${both.port}` })).toBeInstanceOf(WebSocket);
    expect(await tryConnect(bothUrl, { origin: 'https://game.example' })).toBeInstanceOf(WebSocket);
    expect(await tryConnect(bothUrl, { origin: 'https://evil.example' })).toBe(403);

    const any = await start({ kind: 'ws', port: 0, web: true, allowedOrigins: ['*'] });
    expect(await tryConnect(`ws://127.0.0.1:${any.port}/ws`, { origin: 'https://evil.example' })).toBeInstanceOf(WebSocket);
  });

  it.skipIf(!commandsAvailable('openssl'))('over TLS, "self" is the https origin only (an http page cannot use a wss listener)', async () => {
    const certificate = makeCertificate();
    try {
      const { imi, port } = await start({ kind: 'ws', port: 0, web: true, tls: { cert: certificate.cert, key: certificate.key } });
      const url = `wss://127.0.0.1:${port}/ws`;
      expect(await tryConnect(url, { ca: certificate.cert, origin: `https://127.0.0.1:${port}` })).toBeInstanceOf(WebSocket);
      expect(await tryConnect(url, { ca: certificate.cert, origin: `http://127.0.0.1:${port}` })).toBe(403);
      expect(imi.stats().errors.IMI_BAD_ORIGIN).toBe(1);
    } finally {
      certificate.remove();
    }
  });

  it('rejects impossible allowedOrigins with IMI_CONFIG naming the entry', () => {
    const bad: unknown[] = [[], 'https://a.example', [''], ['https://a.example/path'], ['ftp://a.example'], ['a.example'], ['https://user@a.example'], [42]];
    for (const allowedOrigins of bad) {
      let error: unknown;
      try {
        new Intermediary({ listeners: [{ kind: 'ws', port: 1, allowedOrigins } as unknown as ListenerOptions] });
      } catch (caught) {
        error = caught;
      }
      expect(error, JSON.stringify(allowedOrigins)).toBeInstanceOf(ImiError);
      expect((error as ImiError).code).toBe('IMI_CONFIG');
      expect((error as ImiError).message).toContain('listeners[0].allowedOrigins');
    }
  });

  it('imi-server --ws-allowed-origins sets the list of --web-port and --ws-port; without either it is refused', async () => {
    const server = await startServer(['--web-port', '0', '--ws-allowed-origins', 'self, https://game.example']);
    const web = server.listeners[0]!.port;
    expect(await tryConnect(`ws://127.0.0.1:${web}/ws`, { origin: 'https://game.example' })).toBeInstanceOf(WebSocket);
    expect(await tryConnect(`ws://127.0.0.1:${web}/ws`, { origin: `http://127.0.0.1:${web}` })).toBeInstanceOf(WebSocket);
    expect(await tryConnect(`ws://127.0.0.1:${web}/ws`, { origin: 'https://evil.example' })).toBe(403);
    await waitFor(() => server.stderr().includes('IMI_BAD_ORIGIN'), 5000, 'the refusal in the log');

    for (const [args, message] of [
      [['--ws-allowed-origins', 'self'], /--ws-allowed-origins is for --ws-port or --web-port/],
      [['--ws-port', '0', '--ws-allowed-origins', 'https://a.example,'], /allowedOrigins: "" is not an origin/],
    ] as Array<[string[], RegExp]>) {
      const child = spawn(process.execPath, [CLI, '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      const [code] = (await once(child, 'close')) as [number | null];
      expect(code, args.join(' ')).toBe(2);
      expect(stderr).toMatch(message);
    }
  });
});

describe('WebSocket echo control (subprotocol imi.v1)', () => {
  it('a client offering imi.v1 gets its resume token, then echo off/on as binary JSON frames, in order with the text; others get nothing', async () => {
    const { app, port } = await start({ kind: 'ws', port: 0 });
    const url = `ws://127.0.0.1:${port}/`;
    const frames: Array<{ binary: boolean; text: string }> = [];
    const control = new WebSocket(url, ['other', 'imi.v1']);
    sockets.push({ destroy: () => control.terminate() });
    control.on('message', (data: WebSocket.RawData, binary: boolean) => frames.push({ binary, text: String(data) }));
    await once(control, 'open');
    expect(control.protocol).toBe('imi.v1');
    const controlId = await app.nextUserId();
    const plain = await WsUser.connect(url);
    sockets.push({ destroy: () => plain.ws.terminate() });
    const plainId = await app.nextUserId(1);
    // A client offering only other subprotocols keeps getting the first one, as before.
    const other = new WebSocket(url, ['chat']);
    sockets.push({ destroy: () => other.terminate() });
    await once(other, 'open');
    expect(other.protocol).toBe('chat');

    for (const id of [controlId, plainId]) {
      app.output(id, 'Password: ');
      app.send({ param: 'telnet', data: { id, echo: false } });
      app.output(id, '{"type":"echo","visible":true}'); // app text that looks like control stays text
      app.send({ param: 'telnet', data: { id, echo: true } });
      app.output(id, 'done\r\n');
    }
    await waitFor(() => frames.some((frame) => frame.text === 'done\r\n'), 5000, 'the last output');
    // First the session's resume token (a control message too), then what the app sent.
    expect(frames[0]!.binary).toBe(true);
    expect(JSON.parse(frames[0]!.text)).toEqual({ type: 'session', token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) as unknown, resumeWindowMs: 60_000 });
    expect(frames.slice(1)).toEqual([
      { binary: false, text: 'Password: ' },
      { binary: true, text: '{"type":"echo","visible":false}' },
      { binary: false, text: '{"type":"echo","visible":true}' },
      { binary: true, text: '{"type":"echo","visible":true}' },
      { binary: false, text: 'done\r\n' },
    ]);
    await plain.waitFor('done\r\n');
    expect(plain.messages).toEqual(['Password: ', '{"type":"echo","visible":true}', 'done\r\n']);
  });
});

/** A WebSocket client done by hand on a raw socket: it upgrades, then never reads or answers again. */
async function silentPeer(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect');
  socket.write(
    ['GET / HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
  );
  const [head] = (await once(socket, 'data')) as [Buffer];
  expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
  socket.pause(); // gone silent: reads nothing, answers no ping
  return socket;
}

describe('WebSocket dead peers', () => {
  it('a peer that upgraded and went silent is closed as "timeout" and the app told; a lively one stays', async () => {
    const { app, port } = await start({ kind: 'ws', port: 0, pingIntervalMs: 200 });
    const silent = await silentPeer(port);
    const silentId = await app.nextUserId();
    const lively = await WsUser.connect(`ws://127.0.0.1:${port}/`);
    sockets.push({ destroy: () => lively.ws.terminate() });
    const livelyId = await app.nextUserId(1);
    const closed = once(silent, 'close');
    const gone = await app.waitForParam('disconnect', 1, 5000);
    expect(gone[0]!.data).toEqual({ id: silentId, reason: 'timeout' });
    silent.resume(); // to see the end the intermediary sent
    await closed;
    await sleep(600); // three more pings for the lively one
    expect(lively.closed).toBe(false);
    expect(app.of('disconnect')).toHaveLength(1);
    lively.send('still here');
    await app.waitForFrame((frame: Frame) => frame.param === 'input' && frame.data['id'] === livelyId);
  });

  it('a lively peer is not dropped while we stop reading it (a slow connect hook), and is let in after', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { app, port, imi } = await start(
      { kind: 'ws', port: 0, pingIntervalMs: 100 },
      { plugins: [{ apply: (intermediary) => void intermediary.hooks.connect.tapPromise('Slow', () => gate) }] },
    );
    const user = await WsUser.connect(`ws://127.0.0.1:${port}/`);
    sockets.push({ destroy: () => user.ws.terminate() });
    await waitFor(() => imi.stats().sessionsOpened === 1, 5000, 'the user to be taken in');
    await sleep(800); // eight ping intervals with reading stopped
    expect(user.closed).toBe(false);
    release();
    const id = await app.nextUserId();
    user.send('hello after the hook');
    await app.waitForFrame((frame: Frame) => frame.param === 'input' && frame.data['id'] === id && frame.data['value'] === 'hello after the hook');
    await sleep(400); // pings go on once reading resumed, and are answered
    expect(user.closed).toBe(false);
    expect(app.of('disconnect')).toHaveLength(0);
  });
});
