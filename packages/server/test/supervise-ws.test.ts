// WebSocket users through crashes of the intermediary under `imi-server
// --supervise`, with real processes: the worker is SIGKILLed again and
// again; each imi.v1 user (the `ws` client speaking like the browser page)
// sees its connection drop, resumes on the restarted worker with its token,
// and goes on in the same session — the app sees the same session id
// (announced `resumed: true` with its journaled state on the wire; kept by
// @imi/client), never a disconnect, and each line typed while the worker
// was down is answered exactly once. Output the app writes before the page
// is back is replayed once; ws+tls users resume too; a planned restart
// hands WebSocket sessions on whole. A spent token and a forged one are
// refused with close 4001 and IMI_WS_RESUME_REFUSED; a user who does not
// come back within wsResumeWindowMs ends with exactly one disconnect at the
// app. Broken WebSocket journal entries are IMI_BAD_JOURNAL, counted, and
// cost nothing else.
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawApp, waitFor } from './harness.js';
import { CRASH_WORKER, SUPERVISE_APP, count, startedWorkers, workerPid } from './supervise-harness.js';
import { App, Server, TcpUser, cleanUp, tempDir } from './upgrade-harness.js';
import { commandsAvailable } from './process-harness.js';
import { makeCertificate } from './transport-harness.js';
import { PlainWsUser, ResumingWsUser, dropWsUsers } from './ws-resume-harness.js';

const CRASHES = 3;
const WS_USERS = 6;

afterEach(() => {
  dropWsUsers();
  cleanUp();
});

/** Opens a connection that presents `token` and resolves with how it was closed. */
async function presentToken(url: string, token: string, received = 0): Promise<number> {
  const ws = new WebSocket(url, ['imi.v1', 'imi.resume']);
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send(Buffer.from(JSON.stringify({ type: 'resume', token, received })));
  const [code] = (await once(ws, 'close')) as [number];
  return code;
}

async function start(config: object = {}, env: Record<string, string> = {}): Promise<{ server: Server; app: App; url: string }> {
  const file = join(tempDir(), 'imi.json');
  writeFileSync(file, JSON.stringify(config));
  const server = await Server.start(['--supervise', '--ws-port', '0', '--restart-delay-ms', '50', '--config', file], env);
  const url = `ws://127.0.0.1:${Number(/ws on port (\d+)/.exec(server.out)![1])}/`;
  const app = await App.start(server.clientPort, SUPERVISE_APP);
  return { server, app, url };
}

/** Waits until `user` got the reply to `line`. */
async function answered(users: ResumingWsUser[], line: (user: ResumingWsUser) => string, what: string): Promise<void> {
  await waitFor(() => users.every((user) => user.replies().includes(line(user))), 20_000, () => `${what}: ${users.map((u) => `${u.name} ${u.replies().length}/${u.sent.length} resumes ${u.resumes} closes ${JSON.stringify(u.closes)}`).join('; ')}`);
}

describe('imi-server --supervise with WebSocket users', () => {
  it(`${WS_USERS} imi.v1 users resume the same session after each of ${CRASHES} SIGKILLs: no disconnect at the app, lines typed while the worker was down answered exactly once`, { timeout: 120_000 }, async () => {
    const { server, app, url } = await start();
    const users: ResumingWsUser[] = [];
    for (let i = 0; i < WS_USERS; i++) users.push(await ResumingWsUser.connect(`page${i}`, url, { reconnectDelayMs: 20 }));
    // A WebSocket user without imi.v1 has no token: it ends with the worker, as documented.
    const plain = await PlainWsUser.connect('plain', url);
    await waitFor(() => app.connects().length === WS_USERS + 1, 10_000, 'the app to know every user');
    const plainId = app.connects().at(-1)!.id!;
    const ids = new Set(app.connects().slice(0, WS_USERS).map((event) => event.id));
    for (const user of users) user.type(`${user.name}-hello`);
    await answered(users, (user) => `${user.name}-hello`, 'the first lines');

    const spent: string[] = [];
    for (let n = 1; n <= CRASHES; n++) {
      for (const user of users) user.type(`${user.name}-before-${n}`);
      await answered(users, (user) => `${user.name}-before-${n}`, `the lines before crash ${n}`);
      const closesBefore = users.map((user) => user.closes.length);
      const resyncsBefore = app.resyncs().length;
      spent.push(users[0]!.token!);
      process.kill(await workerPid(server), 'SIGKILL');
      // The connection dies with the worker (nothing holds it): each page notices, then types while away.
      await waitFor(() => users.every((user, i) => user.closes.length > closesBefore[i]!), 15_000, `every page to see crash ${n}`);
      for (const user of users) user.type(`${user.name}-away-${n}`);
      await waitFor(() => users.every((user) => user.resumes === n), 20_000, () => `every page to resume after crash ${n} (${users.map((u) => `${u.name} ${u.resumes} ${JSON.stringify(u.closes.slice(-2))}`).join('; ')}; log ${server.err.slice(-1500)})`);
      await answered(users, (user) => `${user.name}-away-${n}`, `the lines typed during crash ${n}`);
      await waitFor(() => app.resyncs().length > resyncsBefore, 20_000, `the app's resync after crash ${n}`);
      const resync = app.resyncs().at(-1)!;
      expect(new Set(resync.sessions!.map((session) => session.id))).toEqual(ids);
      for (const user of users) user.type(`${user.name}-after-${n}`);
      await answered(users, (user) => `${user.name}-after-${n}`, `the lines after crash ${n}`);
    }
    for (const user of users) user.type(`${user.name}-last`);
    await answered(users, (user) => `${user.name}-last`, 'the last lines');

    expect(startedWorkers(server)).toHaveLength(CRASHES + 1);
    for (const user of users) {
      // Every line typed, answered once and in order: before, while the worker was down, after.
      expect(user.replies(), user.name).toEqual(user.sent);
      expect(user.resumes, user.name).toBe(CRASHES);
      expect(user.closes.every((close) => close.code === 1006), JSON.stringify(user.closes)).toBe(true);
    }
    for (const id of ids) {
      const inputs = app.events.filter((event) => event.event === 'input' && event.id === id);
      expect(new Set(inputs.map((event) => event.line)).size, `inputs of ${id}`).toBe(inputs.length);
      // The resyncs announce it `resumed: true`; @imi/client knows it already and keeps its session: one connect event in all.
      expect(app.connects().filter((event) => event.id === id).map((event) => event.resumed)).toEqual([false]);
      expect(app.resyncs().filter((event) => event.sessions!.some((session) => session.id === id))).toHaveLength(CRASHES);
    }
    const disconnects = app.disconnects();
    expect(disconnects.filter((event) => ids.has(event.id))).toEqual([]);
    expect(disconnects.filter((event) => event.id === plainId)).toHaveLength(1);
    expect(plain.closed).toBe(true);

    // Tokens spent before a crash stay spent after it (the journal had the new hash); a forged one is unknown.
    const refusedBefore = (await server.stats()).stats.errors['IMI_WS_RESUME_REFUSED'] ?? 0;
    expect(await presentToken(url, spent[0]!)).toBe(4001);
    expect(await presentToken(url, spent.at(-1)!)).toBe(4001);
    expect(await presentToken(url, randomBytes(32).toString('base64url'))).toBe(4001);
    const stats = (await server.stats()).stats;
    expect(stats.errors['IMI_WS_RESUME_REFUSED']).toBe(refusedBefore + 3);
    expect(stats.sessions).toBe(WS_USERS);
    expect(stats.errors['IMI_BAD_JOURNAL'] ?? 0).toBe(0);
    // And the sessions those tokens belonged to go on.
    users[0]!.type('still-here');
    await answered([users[0]!], () => 'still-here', 'a line after the refusals');
    expect(count(users[0]!, 'still-here!')).toBe(1);
    expect(app.disconnects().filter((event) => ids.has(event.id))).toEqual([]);
  });

  it('on the wire: the restarted intermediary announces the session `resumed: true` with its journaled state, and output the app writes before the page is back is replayed once at its resume', { timeout: 60_000 }, async () => {
    const server = await Server.start(['--supervise', '--ws-port', '0', '--restart-delay-ms', '50']);
    const url = `ws://127.0.0.1:${Number(/ws on port (\d+)/.exec(server.out)![1])}/`;
    const first = await RawApp.connect(server.clientPort, { name: 'raw' });
    await first.synced(10_000);
    const user = await ResumingWsUser.connect('page', url, { autoResume: false });
    const id = await first.nextUserId(0, 10_000);
    first.send({ param: 'state', data: { id }, updates: { mark: 'kept' } });
    user.type('a');
    await first.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'a', 10_000, 'the line a');
    first.output(id, 'one');
    await waitFor(() => user.messages.length === 1, 10_000, 'one');

    process.kill(await workerPid(server), 'SIGKILL');
    await waitFor(() => first.closed && user.closes.length === 1, 15_000, 'the app and the page to see the crash');
    // Until the new worker listens the supervisor closes apps at once: retry, as @imi/client does.
    let app: RawApp | undefined;
    const deadline = Date.now() + 30_000;
    while (app === undefined) {
      if (Date.now() > deadline) throw new Error(`no app link to the restarted worker within 30 s; supervisor said: ${server.err.slice(-2000)}`);
      const attempt = await RawApp.connect(server.clientPort, { name: 'raw' }).catch(() => undefined);
      if (attempt !== undefined) await waitFor(() => attempt.closed || attempt.of('synced').length > 0, 15_000, 'synced or closed');
      if (attempt !== undefined && !attempt.closed) app = attempt;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const announced = app.of('connect').filter((frame) => frame.data['id'] === id);
    expect(announced).toHaveLength(1);
    expect(announced[0]!.data).toMatchObject({ id, transport: 'ws', resumed: true, state: { mark: 'kept' } });
    app.output(id, 'while you were away');
    await app.barrier();

    user.open(true);
    await waitFor(() => user.resumes === 1, 15_000, () => `the resume (${JSON.stringify(user.closes)})`);
    await waitFor(() => user.messages.length === 2, 10_000, 'the replay');
    // The journaled count: the one line that arrived; nothing to resend.
    expect(user.controls.filter((control) => control.type === 'session').at(-1)).toMatchObject({ resumed: true, received: 1 });
    user.type('b');
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'b', 10_000, 'the line b');
    app.output(id, 'two');
    await waitFor(() => user.messages.length === 3, 10_000, 'two');
    await app.barrier();
    expect(user.messages).toEqual(['one', 'while you were away', 'two']);
    expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['b']);
    expect(app.of('disconnect')).toEqual([]);
    app.socket.destroy();
  });

  it.skipIf(!commandsAvailable('openssl'))('over TLS (ws+tls) an imi.v1 user resumes after a SIGKILL too (the TLS state died with the worker; the session did not)', { timeout: 60_000 }, async () => {
    const certificate = makeCertificate();
    try {
      const file = join(tempDir(), 'imi.json');
      writeFileSync(file, JSON.stringify({ listeners: [{ kind: 'ws', port: 0, tls: { cert: certificate.certFile, key: certificate.keyFile } }] }));
      const server = await Server.start(['--supervise', '--restart-delay-ms', '50', '--config', file]);
      const url = `wss://127.0.0.1:${Number(/ws\+tls on port (\d+)/.exec(server.out)![1])}/`;
      const app = await App.start(server.clientPort, SUPERVISE_APP);
      const page = await ResumingWsUser.connect('page', url, { rejectUnauthorized: false, reconnectDelayMs: 20 });
      await waitFor(() => app.connects().length === 1, 10_000, 'the app to know the user');
      const id = app.connects()[0]!.id;
      page.type('one');
      await answered([page], () => 'one', 'the first line');
      process.kill(await workerPid(server), 'SIGKILL');
      await waitFor(() => page.closes.length === 1, 15_000, 'the page to see the crash');
      page.type('two');
      await waitFor(() => page.resumes === 1, 20_000, () => `the resume (${JSON.stringify(page.closes)}; ${server.err.slice(-1500)})`);
      await answered([page], () => 'two', 'the line typed while the worker was down');
      page.type('three');
      await answered([page], () => 'three', 'the line after the resume');
      expect(page.replies()).toEqual(['one', 'two', 'three']);
      expect(app.disconnects()).toEqual([]);
      expect(app.resyncs().at(-1)!.sessions!.map((session) => session.id)).toEqual([id]);
      expect(app.connects()).toEqual([expect.objectContaining({ id, resumed: false, transport: 'ws+tls' })]);
    } finally {
      certificate.remove();
    }
  });

  it('a planned restart (SIGUSR2 to the supervisor) hands WebSocket sessions on whole: users typing steadily resume, every line answered once in order, nothing lost; a plain WebSocket user (no imi.v1, so no resume) is told shutdownNotice and closed with 1012', { timeout: 60_000 }, async () => {
    const { server, app, url } = await start();
    const users: ResumingWsUser[] = [];
    for (let i = 0; i < 3; i++) users.push(await ResumingWsUser.connect(`page${i}`, url, { reconnectDelayMs: 20 }));
    await waitFor(() => app.connects().length === users.length, 10_000, 'the app to know every user');
    const ids = new Set(app.connects().map((event) => event.id));
    // The supervisor keeps no copy of a WebSocket's socket and a plain client cannot resume: it cannot be kept, so it is told.
    const plain = await PlainWsUser.connect('plain', url);
    await waitFor(() => app.connects().length === users.length + 1, 10_000, 'the app to know the plain user');
    const plainId = app.connects().at(-1)!.id!;
    for (const user of users) user.typeSteadily(30);
    await waitFor(() => users.every((user) => user.replies().length >= 3), 20_000, 'replies before the restart');
    const before = await workerPid(server);
    process.kill(server.child.pid!, 'SIGUSR2');
    await waitFor(() => users.every((user) => user.resumes === 1), 20_000, () => `every page to resume (${users.map((u) => JSON.stringify(u.closes)).join('; ')}; ${server.err.slice(-1500)})`);
    const resumedAt = users.map((user) => user.replies().length);
    await waitFor(() => users.every((user, i) => user.replies().length >= resumedAt[i]! + 3), 20_000, 'replies after the restart');
    for (const user of users) user.stop();
    await waitFor(() => users.every((user) => user.replies().length === user.sent.length), 20_000, () => `every line answered (${users.map((u) => `${u.name} ${u.replies().length}/${u.sent.length}`).join(', ')})`);
    expect(await workerPid(server)).not.toBe(before);
    for (const user of users) expect(user.replies(), user.name).toEqual(user.sent);
    expect(plain.closed).toBe(true);
    expect(plain.text).toContain('The server is shutting down.');
    expect(plain.closeCode).toBe(1012);
    expect(app.disconnects()).toEqual([expect.objectContaining({ id: plainId })]);
    expect(new Set(app.resyncs().at(-1)!.sessions!.map((session) => session.id))).toEqual(ids);
    expect((await server.stats()).stats.errors['IMI_WS_RESUME_REFUSED'] ?? 0).toBe(0);
  });

  it('a user who does not resume within wsResumeWindowMs after a crash ends with exactly one disconnect; its token is refused; broken WebSocket journal entries are counted', { timeout: 60_000 }, async () => {
    const modeFile = join(tempDir(), 'mode');
    writeFileSync(modeFile, 'ws-garbage');
    const { server, app, url } = await start({ wsResumeWindowMs: 1000 }, { IMI_SUPERVISE_EXEC: CRASH_WORKER, IMI_TEST_WORKER_MODE: modeFile });
    // The first worker sent three broken WebSocket entries: counted by the supervisor, shown in the worker's /stats.
    await waitFor(() => (server.err.match(/IMI_BAD_JOURNAL/g) ?? []).length === 3, 10_000, () => `three IMI_BAD_JOURNAL log lines (${server.err.slice(-1500)})`);
    writeFileSync(modeFile, 'ok');
    const gone = await ResumingWsUser.connect('gone', url, { autoResume: false });
    // A TCP user (held by the supervisor, no window) for round trips after the crash.
    const tcp = await TcpUser.connect('tcp', server.externalPort);
    await waitFor(() => app.connects().length === 2, 10_000, 'the app to know both users');
    const goneId = app.connects().find((event) => event.transport === 'ws')!.id!;
    gone.type('gone-1');
    await answered([gone], () => 'gone-1', 'the first line');

    process.kill(await workerPid(server), 'SIGKILL');
    await waitFor(() => app.disconnects().some((event) => event.id === goneId), 20_000, () => `the window to expire (${JSON.stringify(app.events.filter((e) => e.event !== 'input'))})`);
    // A round trip after the expiry: no second disconnect came meanwhile.
    tcp.type('tcp-1');
    await waitFor(() => tcp.replies().includes('tcp-1'), 20_000, 'a line after the expiry');
    expect(app.disconnects()).toEqual([expect.objectContaining({ id: goneId })]);
    expect(gone.closes).toHaveLength(1);
    expect(await presentToken(url, gone.token!)).toBe(4001);
    const stats = (await server.stats()).stats;
    expect(stats.errors['IMI_WS_RESUME_REFUSED']).toBe(1);
    expect(stats.errors['IMI_BAD_JOURNAL']).toBe(3);
    expect(stats.sessions).toBe(1);
  });
});
