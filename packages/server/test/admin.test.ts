// The admin HTTP listener over real HTTP on 127.0.0.1: the token, the
// probes, sessions, broadcast and kick, errors, the bind address.
import net from 'node:net';
import os from 'node:os';
import { once } from 'node:events';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ADMIN_MAX_BODY_BYTES, Intermediary, type AdminSessionInfo, type AdminStatsResponse } from '@imi/server';
import { request } from './admin-harness.js';
import { sleep, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();
const TOKEN = 'admin-secret';

/** A non-loopback IPv4 address of this host, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const entry of list ?? []) if (entry.family === 'IPv4' && !entry.internal) return entry.address;
  }
  return undefined;
}

/** Whether a TCP connection to host:port is accepted. */
function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(2000);
    const done = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** A pino logger that keeps every line, parsed. */
function memoryLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('admin API: the token', () => {
  it('every route but the probes wants the bearer token: 401 without it or with a wrong one', async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const port = ports.adminPort!;
    for (const [method, path] of [['GET', '/metrics'], ['GET', '/stats'], ['GET', '/sessions'], ['GET', '/sessions/x'], ['DELETE', '/sessions/x'], ['POST', '/broadcast'], ['GET', '/no-such-route']] as const) {
      const none = await request(port, path, { method });
      expect(none.status, `${method} ${path} without a token`).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(none.json()['error']).toMatch(/token/);
      const wrong = await request(port, path, { method, token: 'admin-secreT' });
      expect(wrong.status, `${method} ${path} with a wrong token`).toBe(401);
    }
    expect((await request(port, '/metrics', { headers: { authorization: `Basic ${TOKEN}` } })).status).toBe(401);
    expect((await request(port, '/metrics', { token: TOKEN })).status).toBe(200);
    expect((await request(port, '/metrics', { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await request(port, '/healthz')).status).toBe(200);
    expect((await request(port, '/readyz')).status).toBe(200);
  });

  it('the admin token defaults to the app token; a separate adminToken replaces it', async () => {
    const shared = await scope.start({ adminPort: 0, token: 'app-token' });
    expect((await request(shared.ports.adminPort!, '/stats', { token: 'app-token' })).status).toBe(200);
    expect((await request(shared.ports.adminPort!, '/stats')).status).toBe(401);

    const separate = await scope.start({ adminPort: 0, token: 'app-token', adminToken: TOKEN });
    expect((await request(separate.ports.adminPort!, '/stats', { token: 'app-token' })).status).toBe(401);
    expect((await request(separate.ports.adminPort!, '/stats', { token: TOKEN })).status).toBe(200);
  });

  it('without any token it is open on loopback, and says so in the log', async () => {
    const { logger, lines } = memoryLogger();
    const { ports } = await scope.start({ adminPort: 0, logger });
    expect((await request(ports.adminPort!, '/stats')).status).toBe(200);
    const warning = lines.find((line) => String(line['msg']).includes('admin API has no token'));
    expect(warning?.['level']).toBe(40);
    expect(warning?.['adminPort']).toBe(ports.adminPort);
  });

  it('refuses (IMI_CONFIG) a non-loopback adminHost without a token, and bad admin options', () => {
    expect(() => new Intermediary({ adminPort: 0, adminHost: '0.0.0.0' })).toThrow(expect.objectContaining({ code: 'IMI_CONFIG', message: expect.stringMatching(/adminHost 0\.0\.0\.0 is not a loopback address/) }));
    expect(() => new Intermediary({ adminPort: 0, adminHost: '::' })).toThrow(expect.objectContaining({ code: 'IMI_CONFIG' }));
    expect(() => new Intermediary({ adminPort: 70000 })).toThrow(expect.objectContaining({ code: 'IMI_CONFIG', message: expect.stringMatching(/adminPort/) }));
    expect(() => new Intermediary({ adminPort: 0, adminToken: '' })).toThrow(expect.objectContaining({ code: 'IMI_CONFIG' }));
    // With a token, any host; without an admin port, nothing is checked.
    expect(() => new Intermediary({ adminPort: 0, adminHost: '0.0.0.0', adminToken: TOKEN })).not.toThrow();
    expect(() => new Intermediary({ adminPort: 0, adminHost: '::1' })).not.toThrow();
    expect(() => new Intermediary({ adminHost: '0.0.0.0' })).not.toThrow();
  });
});

describe('admin API: the bind address', () => {
  const address = externalAddress();

  it.skipIf(address === undefined)('is not reachable on a non-loopback address by default; it is with adminHost 0.0.0.0 (and the token)', async () => {
    const byDefault = await scope.start({ adminPort: 0, adminToken: TOKEN });
    expect(await reachable('127.0.0.1', byDefault.ports.adminPort!)).toBe(true);
    expect(await reachable(address!, byDefault.ports.adminPort!)).toBe(false);

    const everywhere = await scope.start({ adminPort: 0, adminHost: '0.0.0.0', adminToken: TOKEN });
    expect(await reachable(address!, everywhere.ports.adminPort!)).toBe(true);
    expect((await request(everywhere.ports.adminPort!, '/stats', { host: address! })).status).toBe(401);
    expect((await request(everywhere.ports.adminPort!, '/stats', { host: address!, token: TOKEN })).status).toBe(200);
  });

  it('is off unless adminPort is set; listen() reports it; close() closes it even with a connection open', async () => {
    const { ports: plain } = await scope.start();
    expect(plain.adminPort).toBeUndefined();

    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', adminPort: 0, adminToken: TOKEN });
    const ports = await imi.listen();
    expect(ports.adminPort).toBeGreaterThan(0);
    expect(imi.metrics).toBeDefined();
    const idle = net.connect({ host: '127.0.0.1', port: ports.adminPort! });
    await once(idle, 'connect');
    idle.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'); // keep-alive: stays open after the answer
    await once(idle, 'data');
    await imi.close();
    expect(await reachable('127.0.0.1', ports.adminPort!)).toBe(false);
    idle.destroy();
  });
});

describe('admin API: probes and numbers', () => {
  it('/healthz is 200; /readyz is 200 while listening, and with ?app=1 only while an app is connected', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const port = ports.adminPort!;
    expect((await request(port, '/healthz')).json()).toEqual({ status: 'ok' });
    expect((await request(port, '/readyz')).json()).toEqual({ ready: true, listening: true, appConnected: false });
    const noApp = await request(port, '/readyz?app=1');
    expect(noApp.status).toBe(503);
    expect(noApp.json()).toEqual({ ready: false, listening: true, appConnected: false });
    const app = await scope.app(ports.clientPort, { name: 'ready' });
    await app.synced();
    expect((await request(port, '/readyz?app=1')).status).toBe(200);
    app.destroy();
    await waitFor(() => !imi.appConnected);
    expect((await request(port, '/readyz?app=1')).status).toBe(503);
    expect((await request(port, '/readyz')).status).toBe(200);
    expect((await request(port, '/healthz', { method: 'HEAD' })).status).toBe(200);
  });

  it('/stats answers stats() and the process', async () => {
    const { imi, ports } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN });
    const answer = await request(ports.adminPort!, '/stats', { token: TOKEN });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    const body = answer.json<AdminStatsResponse>();
    expect(body.stats).toEqual(JSON.parse(JSON.stringify(imi.stats())));
    expect(body.stats.sessionsByTransport).toEqual({ tcp: 1 });
    expect(body.listening).toBe(true);
    expect(body.process.pid).toBe(process.pid);
    expect(body.process.heapUsedBytes).toBeGreaterThan(0);
  });
});

describe("admin API: the admin's hands", () => {
  it('GET /sessions lists id, transport, remote, connected since, state keys and queue depth', async () => {
    const { imi, ports, app, user, id } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN }, { name: 'mud', acks: true });
    app.send({ param: 'state', data: { id }, updates: { name: 'Ann', room: 12 } });
    user.send('unacked line');
    await app.waitForParam('input');
    await app.barrier();
    const answer = await request(ports.adminPort!, '/sessions', { token: TOKEN });
    const body = answer.json<{ total: number; sessions: AdminSessionInfo[] }>();
    expect(body.total).toBe(1);
    const session = body.sessions[0]!;
    expect(session).toMatchObject({ id, transport: 'tcp', stateKeys: ['name', 'room'], queuedLines: 0, queuedBytes: 0, unacked: 1 });
    expect(session.remote.address).toMatch(/127\.0\.0\.1/);
    expect(session.remote.port).toBe(user.socket.localPort);
    expect(Date.parse(session.connectedSince)).toBe(imi.session(id)!.connectedAt);
    expect(answer.text).not.toContain('Ann'); // keys, not values

    const one = await request(ports.adminPort!, `/sessions/${id}`, { token: TOKEN });
    expect(one.json()).toEqual(session);
    expect((await request(ports.adminPort!, '/sessions/nobody', { token: TOKEN })).status).toBe(404);
  });

  it('GET /sessions pages with limit/offset and sorts by queue depth with sort=queue', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN, appDownNotice: false });
    const users = [];
    for (let i = 0; i < 3; i++) {
      users.push(await scope.user(ports.externalPort));
      await waitFor(() => imi.stats().sessions === i + 1);
    }
    // No app: lines queue. The second user queues the most.
    users[1]!.send('a');
    users[1]!.send('b');
    users[2]!.send('c');
    await waitFor(() => imi.stats().queuedLines === 3);
    const ids = [...imi.sessions()].map((session) => session.id);
    const page = (await request(ports.adminPort!, '/sessions?limit=2&offset=1', { token: TOKEN })).json<{ total: number; sessions: AdminSessionInfo[] }>();
    expect(page.total).toBe(3);
    expect(page.sessions.map((session) => session.id)).toEqual(ids.slice(1, 3));
    const sorted = (await request(ports.adminPort!, '/sessions?sort=queue', { token: TOKEN })).json<{ sessions: AdminSessionInfo[] }>();
    expect(sorted.sessions.map((session) => session.queuedLines)).toEqual([2, 1, 0]);
    expect((await request(ports.adminPort!, '/sessions?limit=-1', { token: TOKEN })).status).toBe(400);
    expect((await request(ports.adminPort!, '/sessions?sort=name', { token: TOKEN })).status).toBe(400);
  });

  it('DELETE /sessions/:id kicks with a farewell (JSON or ?farewell=); the app hears "kicked"; logged without the text', async () => {
    const { logger, lines } = memoryLogger();
    const { imi, ports, app, user, id } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN, logger });
    const answer = await request(ports.adminPort!, `/sessions/${id}`, {
      method: 'DELETE',
      token: TOKEN,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ farewell: 'Bye from the admin.\r\n' }),
    });
    expect(answer.status).toBe(200);
    expect(answer.json()).toEqual({ kicked: id });
    await user.waitFor('Bye from the admin.\r\n');
    await user.waitClosed();
    const disconnect = await app.waitForFrame((frame) => frame.param === 'disconnect');
    expect(disconnect.data).toEqual({ id, reason: 'kicked' });
    expect(imi.session(id)).toBeUndefined();
    const logged = lines.find((line) => line['msg'] === 'admin kicked a user');
    expect(logged).toMatchObject({ level: 30, session: id, farewell: true });
    expect(JSON.stringify(lines)).not.toContain('Bye from the admin');

    const second = await scope.user(ports.externalPort);
    const secondId = await app.nextUserId(1);
    expect((await request(ports.adminPort!, `/sessions/${secondId}?farewell=${encodeURIComponent('Out.\r\n')}`, { method: 'DELETE', token: TOKEN })).status).toBe(200);
    await second.waitFor('Out.\r\n');
    await second.waitClosed();
    expect((await request(ports.adminPort!, `/sessions/${secondId}`, { method: 'DELETE', token: TOKEN })).status).toBe(404);
  });

  it('POST /broadcast reaches every user while the app is down (JSON with except, or plain text)', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN, appDownNotice: false });
    const ann = await scope.user(ports.externalPort);
    const bob = await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 2);
    const [annId, bobId] = [...imi.sessions()].map((session) => session.id);
    const plain = await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, headers: { 'content-type': 'text/plain' }, body: 'Back in 5 minutes.\r\n' });
    expect(plain.json()).toEqual({ sent: 2 });
    await ann.waitFor('Back in 5 minutes.\r\n');
    await bob.waitFor('Back in 5 minutes.\r\n');
    const json = await request(ports.adminPort!, '/broadcast', {
      method: 'POST',
      token: TOKEN,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Only Bob.\r\n', except: [annId] }),
    });
    expect(json.json()).toEqual({ sent: 1 });
    await bob.waitFor('Only Bob.\r\n');
    expect(bobId).toBeDefined();
    const bad = await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, headers: { 'content-type': 'application/json' }, body: '{"txt":"x"}' });
    expect(bad.status).toBe(400);
    expect((await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, headers: { 'content-type': 'application/json' }, body: '{not json' })).status).toBe(400);
    expect((await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, body: '' })).status).toBe(400);
    await sleep(20);
    expect(ann.received).not.toContain('Only Bob.');
  });

  it('bounds the body: over ADMIN_MAX_BODY_BYTES is 413 and nothing is sent', async () => {
    const { ports, user } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN });
    const big = 'x'.repeat(ADMIN_MAX_BODY_BYTES + 1);
    const declared = await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, headers: { 'content-type': 'text/plain' }, body: big });
    expect(declared.status).toBe(413);
    expect(declared.json()['error']).toMatch(/over 65536 bytes/);
    // Chunked (no content-length): cut off as it arrives.
    const chunked = await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, body: big });
    expect(chunked.status).toBe(413);
    const fits = await request(ports.adminPort!, '/broadcast', { method: 'POST', token: TOKEN, body: 'y'.repeat(ADMIN_MAX_BODY_BYTES) });
    expect(fits.status).toBe(200);
    await user.waitFor('y'.repeat(ADMIN_MAX_BODY_BYTES));
    expect(user.received).not.toContain('xxxx');
  });

  it('answers 404 and 405 (with Allow) as JSON', async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const missing = await request(ports.adminPort!, '/nothing', { token: TOKEN });
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/json/);
    expect(missing.json()).toEqual({ error: 'no route /nothing' });
    const wrongMethod = await request(ports.adminPort!, '/metrics', { method: 'POST', token: TOKEN });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers['allow']).toBe('GET, HEAD');
    expect(wrongMethod.json()['error']).toMatch(/POST is not allowed/);
    expect((await request(ports.adminPort!, '/broadcast', { token: TOKEN })).headers['allow']).toBe('POST');
    expect((await request(ports.adminPort!, '/sessions/a/b', { token: TOKEN })).status).toBe(404);
  });
});

describe('logs', () => {
  it('never log what users type, at any level', async () => {
    const { logger, lines } = memoryLogger();
    const { app, user } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN, logger, maxLineBytes: 32 });
    user.send('my password is hunter2');
    user.send('a line that is far too long for the limit: secret-' + 'z'.repeat(64));
    await app.waitForParam('input', 2);
    await app.barrier();
    const all = JSON.stringify(lines);
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain('secret-');
    expect(lines.some((line) => line['code'] === 'IMI_LIMIT' && typeof line['session'] === 'string')).toBe(true);
  });
});
