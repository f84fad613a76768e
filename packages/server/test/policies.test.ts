// Who may be the app: one at a time (refuse or replace), with a token, and
// only while it answers heartbeats (protocol.md "Life of an app connection").
import { describe, expect, it } from 'vitest';
import type { AppInfo } from '@imi/server';
import { DEFAULT_APP_DOWN_NOTICE } from '@imi/server';
import { arrivalOf, count, sleep, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();
const NOTICE = DEFAULT_APP_DOWN_NOTICE;

describe('appPolicy "refuse" (the default)', () => {
  it('refuses a second app with IMI_APP_BUSY and closes it; the first keeps working', async () => {
    const { imi, ports, app, user, id } = await withAppAndUser(scope);
    const intruder = await scope.app(ports.clientPort, { name: 'intruder' });
    const error = await intruder.waitForError('IMI_APP_BUSY');
    expect(error.data['message']).toMatch(/replace/);
    await intruder.waitClosed();
    expect(intruder.frames.map((f) => f.param)).toEqual(['error']); // never told about users
    expect(imi.stats().errors.IMI_APP_BUSY).toBe(1);
    expect(imi.stats().appName).toBe('test');
    user.send('still here');
    await app.waitForParam('input');
    app.output(id, 'and so am I');
    await user.waitFor('and so am I');
    expect(count(user.received, NOTICE)).toBe(0);
  });

  it('refuses a legacy app (no hello) too, once it would have become active', async () => {
    const { ports } = await withAppAndUser(scope);
    const legacy = await scope.app(ports.clientPort);
    await legacy.waitForError('IMI_APP_BUSY');
    await legacy.waitClosed();
  });

  it('lets the next app in once the first is gone', async () => {
    const { imi, ports, app } = await withAppAndUser(scope);
    app.destroy();
    await waitFor(() => !imi.appConnected);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    expect(next.errors()).toEqual([]);
  });
});

describe('appPolicy "replace"', () => {
  it('resyncs the new app, then tells the old one IMI_REPLACED and closes it; its unacked input goes to the new one, redelivered', async () => {
    const { imi, ports, app: old, user, id } = await withAppAndUser(scope, { appPolicy: 'replace' }, { name: 'old', acks: true });
    old.send({ param: 'state', data: { id }, updates: { level: 3 } });
    user.send('handled by old');
    user.send('not acked by old');
    const sent = await old.waitForParam('input', 2);
    old.send({ param: 'ack', data: { seq: sent[0]!.seq } });
    await old.barrier();

    const fresh = await scope.app(ports.clientPort, { name: 'new', acks: true });
    const synced = await fresh.synced();
    const replaced = await old.waitForError('IMI_REPLACED');
    await old.waitClosed();
    // The old app hears it is replaced only after the new one was sent its whole resync.
    expect(arrivalOf(synced)).toBeLessThan(arrivalOf(replaced));
    const [resumed] = fresh.of('connect');
    expect(resumed!.data).toMatchObject({ id, resumed: true, state: { level: 3 } });
    const [again] = await fresh.waitForParam('input');
    expect(again!.data).toEqual({ id, value: 'not acked by old' });
    expect(again!.redelivered).toBe(true);
    expect(again!.txn_id).toBe(sent[1]!.txn_id);
    expect(fresh.traffic.map((f) => f.param)).toEqual(['connect', 'synced', 'input']);

    const stats = imi.stats();
    expect(stats.appName).toBe('new');
    expect(stats.appReplacements).toBe(1);
    expect(stats.appConnects).toBe(2);
    expect(stats.errors.IMI_REPLACED).toBe(1);
    // No outage: users were never told the app was away.
    fresh.output(id, '|from new');
    await user.waitFor('|from new');
    expect(user.received).toBe('|from new');
    expect(user.closed).toBe(false);
  });

  it('input typed after the handover goes to the new app only', async () => {
    const { ports, app: old, user } = await withAppAndUser(scope, { appPolicy: 'replace' }, { name: 'old' });
    const fresh = await scope.app(ports.clientPort, { name: 'new' });
    await fresh.synced();
    await old.waitClosed();
    user.send('after');
    const [input] = await fresh.waitForParam('input');
    expect(input!.data['value']).toBe('after');
    expect(old.of('input')).toEqual([]);
  });

  it('reports the old app gone with reason "replaced"', async () => {
    const { imi, ports } = await withAppAndUser(scope, { appPolicy: 'replace' }, { name: 'old' });
    const reasons: string[] = [];
    imi.on('appDisconnect', (_app: AppInfo, reason: string) => reasons.push(reason));
    const fresh = await scope.app(ports.clientPort, { name: 'new' });
    await fresh.synced();
    await waitFor(() => reasons.length === 1);
    expect(reasons).toEqual(['replaced']);
  });
});

describe('hello without a token', () => {
  it('a hello that arrives in pieces, slower than legacyHelloWaitMs, is still taken as a hello', async () => {
    const { imi, ports } = await scope.start({ legacyHelloWaitMs: 300 });
    await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 1);
    const app = await scope.app(ports.clientPort);
    const hello = JSON.stringify({ param: 'hello', data: { name: 'slow', acks: true } }) + '\n';
    app.sendRaw(hello.slice(0, 10));
    await sleep(700);
    expect(imi.appConnected).toBe(false);
    app.sendRaw(hello.slice(10));
    await app.synced();
    expect(imi.stats().appName).toBe('slow');
    // Taken as an app with acks: its connect events are numbered.
    const [connect] = await app.waitForParam('connect');
    expect(connect!.seq).toBeGreaterThan(0);
    expect(app.errors()).toEqual([]);
  });

  it('bytes that never make a whole frame: taken for a legacy app after helloTimeoutMs', async () => {
    const { imi, ports } = await scope.start({ legacyHelloWaitMs: 300, helloTimeoutMs: 1_500 });
    const app = await scope.app(ports.clientPort);
    app.sendRaw('{"param":');
    await sleep(700);
    expect(imi.appConnected).toBe(false);
    await waitFor(() => imi.appConnected, 3_000);
  });

  it('a legacy first frame that is not valid is no hello: the app is served at once and told what was wrong', async () => {
    const { imi, ports } = await scope.start({ legacyHelloWaitMs: 10_000 });
    const app = await scope.app(ports.clientPort);
    app.sendRaw('{"param":"output","data":{"id":5}}\n');
    const error = await app.waitForError('IMI_BAD_MESSAGE');
    expect(error.data['message']).not.toMatch(/hello refused/);
    // Long before legacyHelloWaitMs: the first frame decided.
    expect(imi.appConnected).toBe(true);
    expect(imi.stats().errors.IMI_BAD_MESSAGE).toBe(1);
  });

  it.each([
    ['without a token', {}],
    ['with a token', { token: 's3cret' }],
  ])('%s, a first frame already over maxFrameBytes is refused while it still arrives, not when its timers run out', async (_what, options) => {
    const { imi, ports } = await scope.start({ maxFrameBytes: 1_024, legacyHelloWaitMs: 30_000, helloTimeoutMs: 30_000, ...options });
    const app = await scope.app(ports.clientPort);
    app.sendRaw(`{"param":"hello","data":{"token":"s3cret","name":"${'x'.repeat(2_000)}`);
    const error = await app.waitForError('IMI_BAD_FRAME');
    expect(error.data['message']).toMatch(/hello refused: a first frame larger than maxFrameBytes \(1024 bytes\)/);
    await app.waitClosed();
    expect(imi.appConnected).toBe(false);
    expect(imi.stats().errors.IMI_BAD_FRAME).toBe(1);
    expect(imi.stats().errors.IMI_AUTH ?? 0).toBe(0);
  });

  it('blank lines before the first frame do not hold back a legacy app past legacyHelloWaitMs', async () => {
    const { imi, ports } = await scope.start({ legacyHelloWaitMs: 100, helloTimeoutMs: 60_000 });
    const app = await scope.app(ports.clientPort);
    app.sendRaw('\n\n');
    await waitFor(() => imi.appConnected, 5_000);
  });

  it.each([
    ['a hello of the wrong shape', JSON.stringify({ param: 'hello', data: { acks: 'yes' } }) + '\n', 'IMI_BAD_MESSAGE'],
    ['a hello longer than maxFrameBytes', JSON.stringify({ param: 'hello', data: { name: 'x'.repeat(2_000) } }) + '\n', 'IMI_BAD_FRAME'],
    ['a hello with a bad envelope', JSON.stringify({ param: 'hello', data: {}, ack: 'x' }) + '\n', 'IMI_BAD_MESSAGE'],
  ] as const)('refuses %s (not taken for a legacy app): error, close, no user announced', async (_what, raw, code) => {
    const { imi, ports } = await scope.start({ maxFrameBytes: 1_024 });
    await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 1);
    const app = await scope.app(ports.clientPort);
    app.sendRaw(raw);
    const error = await app.waitForError(code);
    expect(error.data['message']).toMatch(/hello refused/);
    await app.waitClosed();
    expect(app.frames.map((f) => f.param)).toEqual(['error']);
    expect(imi.appConnected).toBe(false);
    expect(imi.stats().errors[code]).toBe(1);
  });
});

describe('token', () => {
  it('lets in an app whose hello carries the token', async () => {
    const { imi, ports } = await scope.start({ token: 's3cret' });
    const app = await scope.app(ports.clientPort, { token: 's3cret', name: 'trusted' });
    await app.synced();
    expect(imi.stats().appName).toBe('trusted');
    expect(app.errors()).toEqual([]);
  });

  it.each([
    ['no token', { name: 'x' }],
    ['a wrong token', { token: 'guess', name: 'x' }],
    ['a token of another length', { token: 's3cret-and-more', name: 'x' }],
  ])('refuses a hello with %s: IMI_AUTH and close, no user announced', async (_what, hello) => {
    const { imi, ports } = await scope.start({ token: 's3cret' });
    await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 1);
    const app = await scope.app(ports.clientPort, hello);
    await app.waitForError('IMI_AUTH');
    await app.waitClosed();
    expect(app.frames.map((f) => f.param)).toEqual(['error']);
    expect(imi.appConnected).toBe(false);
    expect(imi.stats().errors.IMI_AUTH).toBe(1);
  });

  it('refuses a hello of the wrong shape with IMI_BAD_MESSAGE (what was wrong), not IMI_AUTH', async () => {
    const { imi, ports } = await scope.start({ token: 's3cret' });
    const app = await scope.app(ports.clientPort);
    app.sendRaw(JSON.stringify({ param: 'hello', data: { token: 's3cret', known: 'everyone' } }) + '\n');
    const error = await app.waitForError('IMI_BAD_MESSAGE');
    expect(error.data['message']).toMatch(/hello refused: hello: data\.known/);
    await app.waitClosed();
    expect(imi.appConnected).toBe(false);
    expect(imi.stats().errors.IMI_AUTH ?? 0).toBe(0);
  });

  it('refuses an app whose first frame is not hello', async () => {
    const { ports } = await scope.start({ token: 's3cret' });
    const app = await scope.app(ports.clientPort);
    app.send({ param: 'broadcast', data: { value: 'sneaky' } });
    const error = await app.waitForError('IMI_AUTH');
    expect(error.data['message']).toMatch(/hello/);
    await app.waitClosed();
  });

  it('refuses an app whose first frame is not even JSON', async () => {
    const { ports } = await scope.start({ token: 's3cret' });
    const app = await scope.app(ports.clientPort);
    app.sendRaw('GET / HTTP/1.1\r\n\r\n');
    await app.waitForError('IMI_AUTH');
    await app.waitClosed();
  });

  it('refuses an app that sends no hello within helloTimeoutMs', async () => {
    const { imi, ports } = await scope.start({ token: 's3cret', helloTimeoutMs: 100 });
    const app = await scope.app(ports.clientPort);
    const error = await app.waitForError('IMI_AUTH');
    expect(error.data['message']).toMatch(/helloTimeoutMs/);
    await app.waitClosed();
    expect(imi.stats().errors.IMI_AUTH).toBe(1);
  });

  it('ignores what a refused app sends afterwards, and lets a good app in', async () => {
    const { imi, ports } = await scope.start({ token: 's3cret' });
    const user = await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 1);
    const bad = await scope.app(ports.clientPort, { token: 'nope' });
    bad.send({ param: 'broadcast', data: { value: 'should not arrive' } });
    await bad.waitClosed();
    const good = await scope.app(ports.clientPort, { token: 's3cret' });
    await good.synced();
    good.send({ param: 'broadcast', data: { value: '|good' } });
    await user.waitFor('|good');
    expect(user.received).not.toContain('should not arrive');
  });
});

describe('heartbeat', () => {
  it('drops an app that stops answering pings past heartbeatTimeoutMs; users stay and are told once', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    const reasons: string[] = [];
    imi.on('appDisconnect', (_app: AppInfo, reason: string) => reasons.push(reason));
    await app.waitForParam('ping', 2);
    app.ignorePings();
    await app.waitClosed(); // the intermediary hung up on it
    expect(reasons).toEqual(['timeout']);
    expect(imi.appConnected).toBe(false);
    await user.waitFor(NOTICE);
    user.send('while down 1');
    user.send('while down 2');
    await waitFor(() => imi.stats().queuedLines === 2);
    expect(count(user.received, NOTICE)).toBe(1);
    expect(user.closed).toBe(false);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    const inputs = await next.waitForParam('input', 2);
    expect(inputs.map((f) => f.data['value'])).toEqual(['while down 1', 'while down 2']);
  });

  it('keeps an app that answers pings, over many timeouts', async () => {
    const { imi, app } = await withAppAndUser(scope, { heartbeatIntervalMs: 20, heartbeatTimeoutMs: 100 });
    await app.waitForParam('ping', 20);
    expect(imi.appConnected).toBe(true);
    expect(app.closed).toBe(false);
  });

  it('counts any frame from the app as a sign of life, not only pong', async () => {
    const { imi, app, id } = await withAppAndUser(scope, { heartbeatIntervalMs: 20, heartbeatTimeoutMs: 150 });
    app.ignorePings();
    for (let i = 0; i < 25; i++) {
      app.send({ param: 'state', data: { id }, updates: { tick: i } });
      await sleep(20);
    }
    expect(imi.appConnected).toBe(true);
    expect(app.of('ping').length).toBeGreaterThan(5);
  });

  it('heartbeatIntervalMs: 0 sends no pings and drops no silent app', async () => {
    const { imi, app } = await withAppAndUser(scope, { heartbeatIntervalMs: 0, heartbeatTimeoutMs: 50 });
    app.ignorePings();
    await sleep(300);
    await app.barrier();
    expect(app.of('ping')).toEqual([]);
    expect(imi.appConnected).toBe(true);
  });
});

describe('an app that stops reading', () => {
  it('is dropped once maxAppBufferBytes wait for it (IMI_LIMIT); users stay and their input waits for the next app', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { maxAppBufferBytes: 64 * 1024 });
    const reasons: string[] = [];
    imi.on('appDisconnect', (_app: AppInfo, reason: string) => reasons.push(reason));
    app.socket.pause();
    const line = 'x'.repeat(4000) + '\n';
    // Kernel buffers on loopback absorb a few MiB first; type until the intermediary gives up on the app.
    for (let batch = 0; batch < 200 && imi.appConnected; batch++) {
      user.write(line.repeat(64));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(() => !imi.appConnected, 10_000, 'the app to be dropped');
    expect(imi.stats().limits['maxAppBufferBytes']).toBe(1);
    expect(reasons.length).toBe(1);
    expect(user.closed).toBe(false);
    user.send('after the drop');
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    // Lines typed before it may still have been on their way: it comes last, after them.
    await next.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'after the drop', 10_000, 'the line typed after the drop');
    await next.barrier();
    expect(next.of('input').at(-1)!.data['value']).toBe('after the drop');
  });
});
