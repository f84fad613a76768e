// Every row of protocol.md's two tables, the optional fields of app
// messages, and the compatibility rules, checked on the wire with a raw
// socket app.
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, MAX_KNOWN_IN_HELLO } from '@imi/core';
import { perlAnswer, sleep, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('intermediary → app', () => {
  it('connect: id, transport, remote, connectedAt, resumed: false, state: {} for a new user', async () => {
    const { ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'rows' });
    await app.synced();
    const before = Date.now();
    const user = await scope.user(ports.externalPort);
    const [connect] = await app.waitForParam('connect');
    const after = Date.now();
    expect(connect!.txn_id).toMatch(UUID);
    expect(connect!.seq).toBeUndefined();
    expect(connect!.data['id']).toMatch(UUID);
    expect(connect!.data['transport']).toBe('tcp');
    expect(connect!.data['remote']).toEqual({ address: '127.0.0.1', port: user.socket.localPort });
    expect(connect!.data['connectedAt']).toBeGreaterThanOrEqual(before - 1);
    expect(connect!.data['connectedAt']).toBeLessThanOrEqual(after + 1);
    expect(connect!.data['resumed']).toBe(false);
    expect(connect!.data['state']).toEqual({});
  });

  it('gives every user their own id', async () => {
    const { ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'rows' });
    await app.synced();
    for (let i = 0; i < 5; i++) await scope.user(ports.externalPort);
    const connects = await app.waitForParam('connect', 5);
    expect(new Set(connects.map((c) => c.data['id'])).size).toBe(5);
  });

  it('input: id and the line, end of line stripped', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    user.send('look north');
    const [input] = await app.waitForParam('input');
    expect(input!.data).toEqual({ id, value: 'look north' });
    expect(input!.txn_id).toMatch(UUID);
  });

  it('disconnect: id and reason "closed" when the user leaves', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    user.close();
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
    expect(disconnect!.txn_id).toMatch(UUID);
  });

  it('synced: count is the number of live users announced before it', async () => {
    const { ports } = await scope.start();
    const first = await scope.app(ports.clientPort, { name: 'first' });
    expect((await first.synced()).data).toEqual({ count: 0, maxFrameBytes: 1024 * 1024 });
    await scope.user(ports.externalPort);
    await scope.user(ports.externalPort);
    await first.waitForParam('connect', 2);
    first.destroy();
    const second = await scope.app(ports.clientPort, { name: 'second' });
    const synced = await second.synced();
    expect(synced.data).toEqual({ count: 2, maxFrameBytes: 1024 * 1024 });
    const beforeSynced = second.frames.slice(0, second.frames.indexOf(synced));
    expect(beforeSynced.map((f) => f.param)).toEqual(['connect', 'connect']);
    expect(beforeSynced.every((f) => f.data['resumed'] === true)).toBe(true);
  });

  it('hello.known: the users an app names are not announced again; those gone get a disconnect, the others a connect; synced says known', async () => {
    const { ports, imi } = await scope.start();
    const first = await scope.app(ports.clientPort, { name: 'first', instance: 'i1' });
    await first.synced();
    await scope.user(ports.externalPort);
    const leaving = await scope.user(ports.externalPort);
    const [stays, left] = (await first.waitForParam('connect', 2)).map((frame) => frame.data['id'] as string);
    first.destroy();
    // Once no app is connected, a user who leaves is remembered with the reason for the next app.
    await waitFor(() => !imi.appConnected, 5000, 'the intermediary to see the app go');
    leaving.close();
    await waitFor(() => imi.stats().sessions === 1, 5000, 'the intermediary to see the user leave');
    await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 2, 5000, 'the new user');
    // The app also names the user who came while it was away (a guess, a bug): it never heard of them, so they are announced.
    const unheard = [...imi.sessions()].map((session) => session.id).find((id) => id !== stays)!;
    const second = await scope.app(ports.clientPort, { name: 'second', instance: 'i1', known: [stays, left, 'never-a-session', unheard] });
    const synced = await second.synced();
    expect(synced.data).toEqual({ count: 2, maxFrameBytes: 1024 * 1024, known: true });
    expect(imi.stats().lastResyncAnnounced).toBe(1);
    const beforeSynced = second.frames.slice(0, second.frames.indexOf(synced));
    expect(beforeSynced.filter((frame) => frame.param === 'disconnect').map((frame) => frame.data)).toEqual([
      { id: left, reason: 'closed' },
      { id: 'never-a-session', reason: 'gone' },
    ]);
    const announced = beforeSynced.filter((frame) => frame.param === 'connect').map((frame) => frame.data['id']);
    expect(announced).toEqual([unheard]);
    expect(announced).not.toContain(stays);
    expect(announced).not.toContain(left);
    // Without the list, every live user is announced, as before.
    second.destroy();
    await waitFor(() => !imi.appConnected, 5000, 'the intermediary to see the app go');
    const third = await scope.app(ports.clientPort, { name: 'third', instance: 'i1' });
    expect((await third.synced()).data).toEqual({ count: 2, maxFrameBytes: 1024 * 1024 });
    expect(third.frames.filter((frame) => frame.param === 'connect')).toHaveLength(2);
    expect(imi.stats().lastResyncAnnounced).toBe(2);
    // Nor from another process (another instance): it was told nothing, whatever it says it knows.
    third.destroy();
    await waitFor(() => !imi.appConnected, 5000, 'the intermediary to see the app go');
    const other = await scope.app(ports.clientPort, { name: 'other', instance: 'i2', known: [stays] });
    expect((await other.synced()).data).toEqual({ count: 2, maxFrameBytes: 1024 * 1024 });
    expect(other.frames.filter((frame) => frame.param === 'connect')).toHaveLength(2);
  });

  it.each([
    ['not an array', 'everyone'],
    ['too many ids', Array.from({ length: MAX_KNOWN_IN_HELLO + 1 }, (_, i) => `u${i}`)],
    ['an id too long', ['x'.repeat(129)]],
    ['not strings', [1, 2]],
  ])('hello.known must be at most MAX_KNOWN_IN_HELLO session ids: %s is refused with IMI_BAD_MESSAGE', async (_what, known) => {
    const { ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'bad', known });
    const [error] = await app.waitForParam('error');
    expect(error!.data['code']).toBe('IMI_BAD_MESSAGE');
    expect(error!.data['message']).toMatch(/hello: data\.known must be an array of at most 16384 session ids/);
  });

  it('ping: ts; a pong answers it and is not an error', async () => {
    const { ports, imi } = await scope.start({ heartbeatIntervalMs: 30, heartbeatTimeoutMs: 1000 });
    const app = await scope.app(ports.clientPort, { name: 'pinged' });
    const pings = await app.waitForParam('ping', 3);
    for (const ping of pings) {
      expect(typeof ping.data['ts']).toBe('number');
      expect(ping.txn_id).toMatch(UUID);
      expect(ping.seq).toBeUndefined();
    }
    await app.barrier();
    expect(app.errors()).toEqual([]);
    expect(imi.appConnected).toBe(true);
  });

  it('error: code, message and the txn_id of the message at fault', async () => {
    const { app } = await withAppAndUser(scope);
    app.send({ param: 'teleport', data: {}, txn_id: 'my-txn' });
    const error = await app.waitForError('IMI_UNKNOWN_PARAM');
    expect(error.data['txn_id']).toBe('my-txn');
    expect(error.data['message']).toMatch(/teleport/);
    expect(error.txn_id).toMatch(UUID);
    expect(error.seq).toBeUndefined();
  });

  it('shutdown: reason, then the connection is closed', async () => {
    const { imi, app } = await withAppAndUser(scope);
    await imi.close('maintenance');
    const [shutdown] = await app.waitForParam('shutdown');
    expect(shutdown!.data).toEqual({ reason: 'maintenance' });
    await app.waitClosed();
  });
});

describe('seq and acks', () => {
  it('no seq on any message when the app did not ask for acks', async () => {
    const { app, user } = await withAppAndUser(scope, {}, { name: 'no-acks', acks: false });
    user.send('one');
    await app.waitForParam('input');
    user.close();
    await app.waitForParam('disconnect');
    expect(app.frames.every((f) => f.seq === undefined)).toBe(true);
  });

  it('with acks: connect, input and disconnect carry a seq growing by one; other messages carry none', async () => {
    const { ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'acker', acks: true });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.waitForParam('connect');
    user.send('one');
    user.send('two');
    await app.waitForParam('input', 2);
    user.close();
    await app.waitForParam('disconnect');
    const events = app.frames.filter((f) => ['connect', 'input', 'disconnect'].includes(f.param));
    expect(events.map((f) => f.param)).toEqual(['connect', 'input', 'input', 'disconnect']);
    const seqs = events.map((f) => f.seq!);
    for (const seq of seqs) expect(Number.isInteger(seq)).toBe(true);
    expect(seqs).toEqual([seqs[0]!, seqs[0]! + 1, seqs[0]! + 2, seqs[0]! + 3]);
    app.send({ param: 'output', data: { id: 'nobody', value: 'x' } }); // an error frame too
    await app.barrier();
    const others = app.frames.filter((f) => !['connect', 'input', 'disconnect'].includes(f.param));
    expect(others.map((f) => f.param)).toEqual(expect.arrayContaining(['synced', 'error']));
    for (const frame of others) expect(frame.seq).toBeUndefined();
  });

  it('seq keeps growing across app connections (one counter per intermediary lifetime)', async () => {
    const { ports } = await scope.start();
    const a1 = await scope.app(ports.clientPort, { name: 'a1', acks: true });
    await a1.synced();
    const user = await scope.user(ports.externalPort);
    await a1.waitForParam('connect');
    user.send('one');
    const [input] = await a1.waitForParam('input');
    a1.send({ param: 'ack', data: { seq: input!.seq } });
    await a1.barrier();
    a1.destroy();
    const a2 = await scope.app(ports.clientPort, { name: 'a2', acks: true });
    await a2.synced();
    const [resumed] = a2.of('connect');
    expect(resumed!.seq).toBe(input!.seq! + 1);
  });

  it('a lone ack is cumulative: it acknowledges every input up to its seq', async () => {
    const { imi, app, user } = await withAppAndUser(scope, {}, { name: 'acker', acks: true });
    user.send('one');
    user.send('two');
    user.send('three');
    const inputs = await app.waitForParam('input', 3);
    await waitFor(() => imi.stats().unacked === 3);
    app.send({ param: 'ack', data: { seq: inputs[1]!.seq } });
    await app.barrier();
    expect(imi.stats().unacked).toBe(1);
    app.send({ param: 'ack', data: { seq: inputs[2]!.seq } });
    await app.barrier();
    expect(imi.stats().unacked).toBe(0);
    expect(app.errors()).toEqual([]);
  });

  it('an ack can ride on another message (the ack field of an output)', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, {}, { name: 'acker', acks: true });
    user.send('hello');
    const [input] = await app.waitForParam('input');
    await waitFor(() => imi.stats().unacked === 1);
    app.output(id, 'hi there\r\n', { ack: input!.seq });
    await user.waitFor('hi there\r\n');
    await app.barrier();
    expect(imi.stats().unacked).toBe(0);
  });

  it('an ack from an app that did not ask for acks is ignored, not an error', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, {}, { name: 'no-acks' });
    user.send('hello');
    await app.waitForParam('input');
    app.send({ param: 'ack', data: { seq: 1 } });
    app.output(id, 'ok', { ack: 1 });
    await user.waitFor('ok');
    await app.barrier();
    expect(app.errors()).toEqual([]);
    expect(imi.stats().unacked).toBe(0);
  });
});

describe('app → intermediary', () => {
  it('hello: name shows in stats, protocol and acks are taken', async () => {
    const { imi, ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'my-game', acks: true });
    await app.synced();
    expect(imi.stats().appName).toBe('my-game');
    expect(imi.currentApp?.acks).toBe(true);
  });

  it('output: written to the user verbatim (no line ending added, UTF-8 intact)', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    app.output(id, 'Prompt> ');
    app.output(id, 'naïve €\n\tindented\r\n');
    await user.waitFor('indented\r\n');
    expect(user.bytes.equals(Buffer.from('Prompt> naïve €\n\tindented\r\n', 'utf8'))).toBe(true);
  });

  it('output whose value is not a string: IMI_BAD_MESSAGE, and the user gets nothing', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    app.send({ param: 'output', data: { id, value: { text: 'no' } }, txn_id: 'obj' });
    app.send({ param: 'output', data: { id, value: 42 }, txn_id: 'num' });
    app.send({ param: 'output', data: { id }, txn_id: 'missing' });
    app.output(id, '|sentinel');
    await user.waitFor('|sentinel');
    expect(user.received).toBe('|sentinel');
    await app.barrier();
    expect(app.errors().map((e) => [e.data['code'], e.data['txn_id']])).toEqual([
      ['IMI_BAD_MESSAGE', 'obj'],
      ['IMI_BAD_MESSAGE', 'num'],
      ['IMI_BAD_MESSAGE', 'missing'],
    ]);
    expect(app.errors()[0]!.data['message']).toMatch(/value/);
  });

  it('disconnect: writes the farewell after pending output, closes, and tells the app "kicked"', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.output(id, 'last words: ');
    app.send({ param: 'disconnect', data: { id, value: 'Goodbye €\r\n' } });
    await user.waitClosed();
    expect(user.received).toBe('last words: Goodbye €\r\n');
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id, reason: 'kicked' });
    expect(imi.session(id)).toBeUndefined();
  });

  it('disconnect without a value just closes the user', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false });
    app.send({ param: 'disconnect', data: { id } });
    await user.waitClosed();
    expect(user.received).toBe('');
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data['reason']).toBe('kicked');
  });

  it('broadcast: every user, or every user but those in except', async () => {
    const { ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { name: 'caster' });
    await app.synced();
    const users = [await scope.user(ports.externalPort), await scope.user(ports.externalPort), await scope.user(ports.externalPort)];
    const connects = await app.waitForParam('connect', 3);
    // Match sockets to ids by the remote port the intermediary reports.
    const idOf = (i: number): string => connects.find((c) => (c.data['remote'] as { port: number }).port === users[i]!.socket.localPort)!.data['id'] as string;
    app.send({ param: 'broadcast', data: { value: 'to all\r\n' } });
    app.send({ param: 'broadcast', data: { value: 'not to 1\r\n', except: [idOf(1)] } });
    app.send({ param: 'broadcast', data: { value: 'only 1\r\n', except: [idOf(0), idOf(2)] } });
    for (let i = 0; i < 3; i++) app.output(idOf(i), '|end');
    for (const u of users) await u.waitFor('|end');
    expect(users[0]!.received).toBe('to all\r\nnot to 1\r\n|end');
    expect(users[1]!.received).toBe('to all\r\nonly 1\r\n|end');
    expect(users[2]!.received).toBe('to all\r\nnot to 1\r\n|end');
  });

  it('state + updates: merged into the user\'s state, a null deletes a key, and the state survives an app restart', async () => {
    const { imi, ports, app, id } = await withAppAndUser(scope);
    app.send({ param: 'state', data: { id }, updates: { room: 'hall', hp: 10, inv: ['sword'] } });
    app.send({ param: 'state', data: { id }, updates: { hp: null, level: 2 } });
    // updates may ride on any message about a user.
    app.send({ param: 'output', data: { id, value: 'ok' }, updates: { room: 'garden' } });
    await app.barrier();
    expect(imi.session(id)?.state).toEqual({ room: 'garden', inv: ['sword'], level: 2 });
    expect(app.errors()).toEqual([]);
    app.destroy();
    await waitFor(() => !imi.appConnected);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    const [resumed] = next.of('connect');
    expect(resumed!.data['id']).toBe(id);
    expect(resumed!.data['state']).toEqual({ room: 'garden', inv: ['sword'], level: 2 });
  });

  it('state over the per-user bound is refused with IMI_LIMIT and leaves the state unchanged', async () => {
    const { imi, app, id } = await withAppAndUser(scope);
    app.send({ param: 'state', data: { id }, updates: { small: 1 } });
    app.send({ param: 'state', data: { id }, updates: { huge: 'x'.repeat(100 * 1024) }, txn_id: 'too-big' });
    const error = await app.waitForError('IMI_LIMIT');
    expect(error.data['txn_id']).toBe('too-big');
    expect(imi.session(id)?.state).toEqual({ small: 1 });
  });

  it('updates on a message without data.id: IMI_BAD_MESSAGE, the message itself still processed', async () => {
    const { imi, app, user } = await withAppAndUser(scope);
    app.send({ param: 'broadcast', data: { value: 'hi all' }, updates: { x: 1 }, txn_id: 'no-id' });
    await user.waitFor('hi all');
    const error = await app.waitForError('IMI_BAD_MESSAGE');
    expect(error.data['txn_id']).toBe('no-id');
    await app.barrier();
    expect(app.errors().length).toBe(1);
    expect(imi.stats().errors.IMI_BAD_MESSAGE).toBe(1);
  });

  it('pong and null: accepted silently', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.send({ param: 'pong', data: { ts: Date.now() } });
    app.send({ param: 'pong', data: {} });
    app.send({ param: 'null' });
    app.send({ param: 'null', data: {} });
    app.output(id, 'ok');
    await user.waitFor('ok');
    await app.barrier();
    expect(app.traffic.filter((f) => f.param !== 'connect' && f.param !== 'synced')).toEqual([]);
    expect(imi.stats().errors.IMI_BAD_MESSAGE).toBe(0);
  });
});

describe('errors sent to the app', () => {
  it('IMI_BAD_MESSAGE: JSON that is not a valid message, naming the field', async () => {
    const { imi, app, id } = await withAppAndUser(scope);
    const cases: Array<[unknown, RegExp]> = [
      [{ data: { id, value: 'x' } }, /param/],
      [{ param: 42 }, /param/],
      [{ param: 'output', data: 'text' }, /data/],
      [{ param: 'output', data: { id: 7, value: 'x' } }, /id/],
      [{ param: 'broadcast', data: { value: 'x', except: 'all' } }, /except/],
      [{ param: 'ack', data: { seq: -1 } }, /seq/],
      [{ param: 'output', data: { id, value: 'x' }, dep_txns: 'a' }, /dep_txns/],
      [{ param: 'output', data: { id, value: 'x' }, updates: [1] }, /updates/],
      [{ param: 'hello', data: { acks: 'yes' } }, /acks/],
    ];
    for (const [message] of cases) app.send(message);
    await app.barrier();
    const errors = app.errors();
    expect(errors.map((e) => e.data['code'])).toEqual(cases.map(() => 'IMI_BAD_MESSAGE'));
    cases.forEach(([, pattern], i) => expect(errors[i]!.data['message']).toMatch(pattern));
    expect(imi.stats().errors.IMI_BAD_MESSAGE).toBe(cases.length);
  });

  it('IMI_UNKNOWN_PARAM: a param the intermediary does not know', async () => {
    const { imi, app } = await withAppAndUser(scope);
    app.send({ param: 'fly', data: {}, txn_id: 't1' });
    const error = await app.waitForError('IMI_UNKNOWN_PARAM');
    expect(error.data['txn_id']).toBe('t1');
    await app.barrier();
    expect(imi.stats().errors.IMI_UNKNOWN_PARAM).toBe(2); // the test's own barrier is one too
  });

  it('IMI_UNKNOWN_ID: output to a user who is gone is dropped and reported once, with its txn_id', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    user.close();
    await app.waitForParam('disconnect');
    app.output(id, 'too late', { txn_id: 'late-output' });
    app.send({ param: 'disconnect', data: { id }, txn_id: 'late-kick' });
    app.send({ param: 'state', data: { id }, updates: { x: 1 }, txn_id: 'late-state' });
    app.output(id, 'too late again', { txn_id: 'late-output-with-updates', updates: { y: 2 } });
    app.send({ param: 'state', data: { id: 'never-existed' }, txn_id: 'no-such' });
    await app.barrier();
    expect(app.errors().map((e) => [e.data['code'], e.data['txn_id']])).toEqual([
      ['IMI_UNKNOWN_ID', 'late-output'],
      ['IMI_UNKNOWN_ID', 'late-kick'],
      ['IMI_UNKNOWN_ID', 'late-state'],
      ['IMI_UNKNOWN_ID', 'late-output-with-updates'],
      ['IMI_UNKNOWN_ID', 'no-such'],
    ]);
    expect(imi.stats().errors.IMI_UNKNOWN_ID).toBe(5);
    expect(imi.appConnected).toBe(true);
  });

  it('every code the intermediary sends is a known IMI_* code', async () => {
    const { app, id } = await withAppAndUser(scope);
    app.sendRaw('nonsense\n');
    app.send({ param: 'output', data: { id: 'gone', value: 'x' } });
    app.send({ param: 'output', data: { id } });
    await app.barrier();
    expect(app.errors().length).toBe(3);
    for (const error of app.errors()) expect(ERROR_CODES).toContain(error.data['code']);
  });
});

describe('dep_txns', () => {
  it('holds a message until the txn it depends on has been processed, even when that txn comes later', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.output(id, 'second ', { txn_id: 'B', dep_txns: ['A'] });
    app.output(id, 'third ', { txn_id: 'C', dep_txns: ['B'] });
    await app.barrier();
    expect(user.received).toBe('');
    expect(imi.stats().heldMessages).toBe(2);
    app.output(id, 'first ', { txn_id: 'A' });
    await user.waitFor('third ');
    expect(user.received).toBe('first second third ');
    expect(imi.stats().heldMessages).toBe(0);
    await app.barrier();
    expect(app.errors()).toEqual([]);
  });

  it('waits for every listed txn; deps already processed do not hold anything', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    app.output(id, 'a ', { txn_id: 'A' });
    app.output(id, 'b ', { txn_id: 'B', dep_txns: ['A'] }); // A is done: no wait
    app.output(id, 'd ', { txn_id: 'D', dep_txns: ['A', 'C', 'B'] });
    app.output(id, 'c ', { txn_id: 'C' });
    await user.waitFor('d ');
    expect(user.received).toBe('a b c d ');
  });

  it('applies the updates of a held message only when it is released', async () => {
    const { imi, app, id } = await withAppAndUser(scope);
    app.send({ param: 'state', data: { id }, updates: { step: 2 }, txn_id: 'two', dep_txns: ['one'] });
    await app.barrier();
    expect(imi.session(id)?.state).toEqual({});
    app.send({ param: 'state', data: { id }, updates: { step: 1, first: true }, txn_id: 'one' });
    await app.barrier();
    expect(imi.session(id)?.state).toEqual({ step: 2, first: true });
  });

  it('processes a message that waited longer than depWaitTimeoutMs anyway, reported with IMI_DEP_TIMEOUT', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { depWaitTimeoutMs: 100 });
    app.output(id, 'eventually', { txn_id: 'patient', dep_txns: ['never-sent'] });
    await app.barrier();
    expect(imi.stats().heldMessages).toBe(1);
    const error = await app.waitForError('IMI_DEP_TIMEOUT');
    expect(error.data['txn_id']).toBe('patient');
    await user.waitFor('eventually');
    expect(imi.stats().heldMessages).toBe(0);
    expect(imi.stats().errors.IMI_DEP_TIMEOUT).toBe(1);
  });

  it('a dep_txns list over maxDepTxns: IMI_LIMIT, processed without waiting', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxDepTxns: 2 });
    app.output(id, 'fine', { txn_id: 'long', dep_txns: ['x', 'y', 'z'] });
    await user.waitFor('fine');
    const error = await app.waitForError('IMI_LIMIT');
    expect(error.data['txn_id']).toBe('long');
    expect(error.data['message']).toMatch(/maxDepTxns/);
    expect(imi.stats().limits['maxDepTxns']).toBe(1);
    expect(imi.stats().heldMessages).toBe(0);
  });

  it('more held messages than maxHeldMessages: IMI_LIMIT, the extra one processed without waiting', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxHeldMessages: 1 });
    app.output(id, 'held ', { txn_id: 'h1', dep_txns: ['later'] });
    app.output(id, 'overflow ', { txn_id: 'h2', dep_txns: ['later'] });
    await user.waitFor('overflow ');
    const error = await app.waitForError('IMI_LIMIT');
    expect(error.data['txn_id']).toBe('h2');
    expect(imi.stats().heldMessages).toBe(1);
    app.output(id, 'later ', { txn_id: 'later' });
    await user.waitFor('held ');
    expect(user.received).toBe('overflow later held ');
  });

  it('messages still held when the app goes away are processed then (they were its intent)', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { appDownNotice: false });
    app.output(id, 'parting words', { txn_id: 'p', dep_txns: ['never'] });
    await app.barrier();
    expect(user.received).toBe('');
    app.destroy();
    await user.waitFor('parting words');
    expect(imi.stats().heldMessages).toBe(0);
  });
});

describe('compatibility with the original Perl client', () => {
  it('a Perl app (no hello, back-to-back JSON, answers every event) works, and nothing ping-pongs', async () => {
    const { imi, ports } = await scope.start({ heartbeatIntervalMs: 30, heartbeatTimeoutMs: 300 });
    const perl = await scope.app(ports.clientPort, { respond: perlAnswer, separator: '', answerPings: false });
    await perl.synced();
    const user = await scope.user(ports.externalPort);
    const id = await perl.nextUserId();
    user.send('hello perl €');
    await user.waitFor('hello perl €');
    const second = await scope.user(ports.externalPort);
    await perl.nextUserId(1);
    user.close();
    await perl.waitForParam('disconnect');
    // Let the heartbeat run for several timeouts: only the Perl app's `null` answers to pings keep it alive.
    await sleep(700);
    await perl.barrier();
    expect(imi.appConnected).toBe(true);
    expect(second.closed).toBe(false);
    // No error went back for `null` or for {"param":"disconnect","data":{"success":1}}.
    expect(perl.errors()).toEqual([]);
    expect(perl.traffic.map((f) => f.param)).toEqual(['synced', 'connect', 'input', 'connect', 'disconnect']);
    expect(perl.of('input')[0]!.data).toEqual({ id, value: 'hello perl €' });
    const stats = imi.stats();
    for (const code of ERROR_CODES) expect([code, stats.errors[code]]).toEqual([code, code === 'IMI_UNKNOWN_PARAM' ? 1 : 0]);
  });

  it('a numeric txn_id from a legacy app is accepted and can be depended on', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    app.send({ param: 'output', data: { id, value: '2' }, txn_id: 2, dep_txns: ['1'] });
    app.send({ param: 'output', data: { id, value: '1' }, txn_id: 1 });
    await user.waitFor('2');
    expect(user.received).toBe('12');
  });
});
