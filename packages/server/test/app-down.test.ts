// While no app is connected: users stay, their input is queued (bounded)
// or dropped, and the next app is resynced (protocol.md "Life of an app
// connection", step 2).
import { describe, expect, it } from 'vitest';
import { DEFAULT_APP_DOWN_NOTICE, DEFAULT_QUEUE_FULL_NOTICE } from '@imi/server';
import { count, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();
const NOTICE = DEFAULT_APP_DOWN_NOTICE;

describe('app crash', () => {
  it('keeps users connected, tells them once, and resyncs them with their state, then their queued input in order', async () => {
    const { imi, ports } = await scope.start();
    const a1 = await scope.app(ports.clientPort, { name: 'first' });
    await a1.synced();
    const alice = await scope.user(ports.externalPort);
    const aliceId = await a1.nextUserId();
    const bob = await scope.user(ports.externalPort);
    const bobId = await a1.nextUserId(1);
    a1.send({ param: 'state', data: { id: aliceId }, updates: { name: 'Alice', room: 1 } });
    await a1.barrier();
    a1.destroy();
    await alice.waitFor(NOTICE);
    await bob.waitFor(NOTICE);
    alice.send('a1');
    bob.send('b1');
    alice.send('a2');
    bob.send('b2');
    alice.send('a3');
    await waitFor(() => imi.stats().queuedLines === 5);
    expect(count(alice.received, NOTICE)).toBe(1);
    expect(imi.stats().appConnected).toBe(false);

    const a2 = await scope.app(ports.clientPort, { name: 'second' });
    const synced = await a2.synced();
    expect(synced.data['count']).toBe(2);
    const inputs = await a2.waitForParam('input', 5);
    const params = a2.traffic.map((f) => f.param);
    expect(params).toEqual(['connect', 'connect', 'synced', 'input', 'input', 'input', 'input', 'input']);
    const connects = a2.of('connect');
    expect(connects.map((c) => c.data['id']).sort()).toEqual([aliceId, bobId].sort());
    expect(connects.every((c) => c.data['resumed'] === true)).toBe(true);
    expect(connects.find((c) => c.data['id'] === aliceId)!.data['state']).toEqual({ name: 'Alice', room: 1 });
    expect(connects.find((c) => c.data['id'] === bobId)!.data['state']).toEqual({});
    // In order per user.
    expect(inputs.filter((f) => f.data['id'] === aliceId).map((f) => f.data['value'])).toEqual(['a1', 'a2', 'a3']);
    expect(inputs.filter((f) => f.data['id'] === bobId).map((f) => f.data['value'])).toEqual(['b1', 'b2']);
    expect(inputs.every((f) => f.redelivered === undefined)).toBe(true);
    expect(imi.stats().queuedLines).toBe(0);
    expect(imi.stats().queuedBytes).toBe(0);
    expect(alice.closed).toBe(false);
    expect(bob.closed).toBe(false);
    // And traffic flows again.
    a2.output(aliceId, 'welcome back');
    await alice.waitFor('welcome back');
  });

  it('a resync of several hundred KiB (written 64 KiB at a time as it is built) arrives whole and in order: every connect with its state, synced, then the queued input', async () => {
    const { imi, ports } = await scope.start();
    const a1 = await scope.app(ports.clientPort, { name: 'first' });
    await a1.synced();
    const USERS = 300;
    const users = [];
    for (let i = 0; i < USERS; i++) users.push(await scope.user(ports.externalPort));
    await a1.waitForParam('connect', USERS);
    const ids = a1.of('connect').map((c) => c.data['id'] as string);
    expect(ids).toHaveLength(USERS);
    // About 1 KiB of state each: the resync is about 400 KiB, several early writes.
    for (const [i, id] of ids.entries()) a1.send({ param: 'state', data: { id }, updates: { n: i, pad: 'x'.repeat(1000) } });
    await a1.barrier();
    a1.destroy();
    await waitFor(() => !imi.stats().appConnected);
    for (const [i, user] of users.entries()) user.send(`line ${i}`);
    await waitFor(() => imi.stats().queuedLines === USERS);

    const a2 = await scope.app(ports.clientPort, { name: 'second', acks: true });
    const synced = await a2.synced();
    expect(synced.data['count']).toBe(USERS);
    await a2.waitForParam('input', USERS);
    expect(a2.badLines).toEqual([]);
    const params = a2.traffic.map((f) => f.param);
    expect(params).toEqual([...Array<string>(USERS).fill('connect'), 'synced', ...Array<string>(USERS).fill('input')]);
    const stateOf = new Map(a2.of('connect').map((c) => [c.data['id'] as string, c.data['state'] as { n: number; pad: string }]));
    for (const [i, id] of ids.entries()) expect(stateOf.get(id)).toEqual({ n: i, pad: 'x'.repeat(1000) });
    const lineOf = new Map(a2.of('input').map((f) => [f.data['id'] as string, f.data['value']]));
    for (const [i, id] of ids.entries()) expect(lineOf.get(id)).toBe(`line ${i}`);
    const seqs = a2.traffic.filter((f) => f.seq !== undefined).map((f) => f.seq!);
    expect(seqs).toHaveLength(2 * USERS);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(users.every((u) => !u.closed)).toBe(true);
  });

  it('treats a graceful close of the app like a crash: users stay', async () => {
    const { imi, app, user } = await withAppAndUser(scope);
    app.close();
    await user.waitFor(NOTICE);
    await waitFor(() => !imi.appConnected);
    expect(user.closed).toBe(false);
    expect(imi.stats().appDisconnects).toBe(1);
  });

  it('announces users who connected during the outage in the next resync (resumed: true)', async () => {
    const { ports } = await scope.start();
    const user = await scope.user(ports.externalPort);
    await user.waitFor(NOTICE); // told at once: no app
    user.send('early');
    const app = await scope.app(ports.clientPort, { name: 'late' });
    const synced = await app.synced();
    expect(synced.data['count']).toBe(1);
    expect(app.of('connect')[0]!.data['resumed']).toBe(true);
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('early');
  });

  it('delivers input typed while the app was still saying hello after its resync', async () => {
    const { imi, ports } = await scope.start({ token: 'secret', helloTimeoutMs: 2000 });
    const user = await scope.user(ports.externalPort);
    const app = await scope.app(ports.clientPort); // connected, no hello yet
    await waitFor(() => imi.stats().sessions === 1);
    user.send('during handshake');
    await waitFor(() => imi.stats().queuedLines === 1);
    app.send({ param: 'hello', data: { protocol: 1, token: 'secret' } });
    await app.synced();
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('during handshake');
    expect(app.traffic.map((f) => f.param)).toEqual(['connect', 'synced', 'input']);
  });

  it('appDownNotice: false keeps users uninformed; a custom notice is written verbatim', async () => {
    const quiet = await withAppAndUser(scope, { appDownNotice: false });
    quiet.app.destroy();
    await waitFor(() => !quiet.imi.appConnected);
    quiet.user.send('typed while down');
    await waitFor(() => quiet.imi.stats().queuedLines === 1);
    quiet.imi.broadcast('|end'); // written after anything the outage could have written
    await quiet.user.waitFor('|end');
    expect(quiet.user.received).toBe('|end');

    const custom = await withAppAndUser(scope, { appDownNotice: '[brb]\n' });
    custom.app.destroy();
    await custom.user.waitFor('[brb]\n');
    custom.user.send('typed while down');
    await waitFor(() => custom.imi.stats().queuedLines === 1);
    custom.imi.broadcast('|end');
    await custom.user.waitFor('|end');
    expect(custom.user.received).toBe('[brb]\n|end');
  });
});

describe('queue bounds while the app is down', () => {
  it('maxQueuedLinesPerSession: the oldest lines are dropped, the user is told once, stats().dropped.queueFull counts them', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { maxQueuedLinesPerSession: 3 });
    app.destroy();
    await user.waitFor(NOTICE);
    for (let i = 1; i <= 7; i++) user.send(`line ${i}`);
    await waitFor(() => imi.stats().inputLines === 7);
    await user.waitFor(DEFAULT_QUEUE_FULL_NOTICE);
    const stats = imi.stats();
    expect(stats.dropped.queueFull).toBe(4);
    expect(stats.queuedLines).toBe(3);
    expect(stats.limits['maxQueuedLinesPerSession']).toBeGreaterThanOrEqual(1);
    expect(count(user.received, DEFAULT_QUEUE_FULL_NOTICE)).toBe(1);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    const inputs = await next.waitForParam('input', 3);
    await next.barrier();
    expect(next.of('input').map((f) => f.data['value'])).toEqual(['line 5', 'line 6', 'line 7']);
    expect(inputs.length).toBe(3);
  });

  it('maxQueuedBytesPerSession bounds the bytes the same way', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { maxQueuedBytesPerSession: 10, queueFullNotice: false });
    app.destroy();
    await user.waitFor(NOTICE);
    user.send('aaaa');
    user.send('bbbb');
    user.send('cccc'); // 12 bytes queued > 10: 'aaaa' goes
    await waitFor(() => imi.stats().inputLines === 3);
    expect(imi.stats().dropped.queueFull).toBe(1);
    expect(imi.stats().queuedBytes).toBe(8);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    const inputs = await next.waitForParam('input', 2);
    expect(inputs.map((f) => f.data['value'])).toEqual(['bbbb', 'cccc']);
    expect(user.received).not.toContain('Too much typed');
  });

  it('tells the user again in a later outage', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { maxQueuedLinesPerSession: 1 });
    app.destroy();
    await user.waitFor(NOTICE);
    user.send('1');
    user.send('2');
    await user.waitFor(DEFAULT_QUEUE_FULL_NOTICE);
    const second = await scope.app(ports.clientPort, { name: 'second' });
    await second.waitForParam('input');
    second.destroy();
    await waitFor(() => count(user.received, NOTICE) === 2);
    user.send('3');
    user.send('4');
    await waitFor(() => count(user.received, DEFAULT_QUEUE_FULL_NOTICE) === 2);
    expect(imi.stats().dropped.queueFull).toBe(2);
  });
});

describe('whileAppDown: "drop"', () => {
  it('drops input typed while no app is connected, counted in stats().dropped.appDownDrop', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, { whileAppDown: 'drop' });
    app.destroy();
    await user.waitFor(NOTICE);
    user.send('lost 1');
    user.send('lost 2');
    await waitFor(() => imi.stats().inputLines === 2);
    expect(imi.stats().dropped.appDownDrop).toBe(2);
    expect(imi.stats().queuedLines).toBe(0);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    await next.synced();
    user.send('kept');
    const [input] = await next.waitForParam('input');
    expect(input!.data['value']).toBe('kept');
    await next.barrier();
    expect(next.of('input').length).toBe(1);
  });
});

describe('users who leave while the app is down', () => {
  it('are not in the next resync, and their queued input goes with them', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope);
    const stayer = await scope.user(ports.externalPort);
    const stayerId = await app.nextUserId(1);
    app.destroy();
    await user.waitFor(NOTICE);
    user.send('never delivered');
    await waitFor(() => imi.stats().queuedLines === 1);
    user.close();
    await waitFor(() => imi.stats().sessions === 1);
    expect(imi.stats().queuedLines).toBe(0);
    expect(imi.stats().dropped.userGone).toBe(1);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    const synced = await next.synced();
    await next.barrier();
    expect(synced.data['count']).toBe(1);
    expect(next.of('connect').map((c) => c.data['id'])).toEqual([stayerId]);
    expect(next.of('input')).toEqual([]);
    expect(stayer.closed).toBe(false);
  });

  it('an app reconnecting with the same instance hears that they left; a new instance does not', async () => {
    const { ports } = await scope.start();
    const a1 = await scope.app(ports.clientPort, { name: 'game', instance: 'process-1' });
    await a1.synced();
    const user = await scope.user(ports.externalPort);
    const id = await a1.nextUserId();
    a1.destroy();
    await user.waitFor(NOTICE);
    user.close();
    await user.waitClosed();
    await waitFor(() => a1.closed);
    // Same process back (a reconnect): it knew the user, so it is told they left.
    const a2 = await scope.app(ports.clientPort, { name: 'game', instance: 'process-1' });
    await a2.synced();
    expect(a2.traffic.map((f) => [f.param, f.data['id'] ?? f.data['count']])).toEqual([
      ['disconnect', id],
      ['synced', 0],
    ]);
    expect(a2.of('disconnect')[0]!.data['reason']).toBe('closed');
    // A different process never knew them.
    const user2 = await scope.user(ports.externalPort);
    const id2 = await a2.nextUserId();
    a2.destroy();
    await user2.waitFor(NOTICE);
    user2.close();
    await user2.waitClosed();
    const a3 = await scope.app(ports.clientPort, { name: 'game', instance: 'process-2' });
    await a3.synced();
    await a3.barrier();
    expect(a3.traffic.map((f) => f.param)).toEqual(['synced']);
    expect(id2).not.toBe(id);
  });
});

describe('acks and redelivery across an app restart', () => {
  it('redelivers exactly the unacked input, marked redelivered, with its txn_id, before queued input', async () => {
    const { imi, ports, app, user, id } = await withAppAndUser(scope, {}, { name: 'a1', acks: true });
    user.send('one');
    user.send('two');
    user.send('three');
    const sent = await app.waitForParam('input', 3);
    app.send({ param: 'ack', data: { seq: sent[0]!.seq } });
    await app.barrier();
    expect(imi.stats().unacked).toBe(2);
    app.destroy();
    await user.waitFor(NOTICE);
    user.send('four');
    await waitFor(() => imi.stats().queuedLines === 1);
    const next = await scope.app(ports.clientPort, { name: 'a2', acks: true });
    await next.synced();
    const inputs = await next.waitForParam('input', 3);
    expect(inputs.map((f) => [f.data['value'], f.redelivered ?? false])).toEqual([
      ['two', true],
      ['three', true],
      ['four', false],
    ]);
    expect(inputs[0]!.txn_id).toBe(sent[1]!.txn_id);
    expect(inputs[1]!.txn_id).toBe(sent[2]!.txn_id);
    expect(inputs.every((f) => f.data['id'] === id)).toBe(true);
    const seqs = inputs.map((f) => f.seq!);
    expect(seqs).toEqual([seqs[0]!, seqs[0]! + 1, seqs[0]! + 2]);
    expect(imi.stats().redelivered).toBe(2);
  });

  it('an app without acks gets nothing redelivered when it restarts', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, {}, { name: 'a1' });
    user.send('handled');
    await app.waitForParam('input');
    app.destroy();
    await user.waitFor(NOTICE);
    const next = await scope.app(ports.clientPort, { name: 'a2', acks: true });
    await next.synced();
    await next.barrier();
    expect(next.of('input')).toEqual([]);
    expect(imi.stats().redelivered).toBe(0);
  });

  it('does not redeliver the unacked input of a user who left while the app was down', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, {}, { name: 'a1', acks: true });
    const stayer = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    user.send('from the leaver');
    stayer.send('from the stayer');
    await app.waitForParam('input', 2);
    app.destroy();
    await user.waitFor(NOTICE);
    user.close();
    await waitFor(() => imi.stats().sessions === 1);
    expect(imi.stats().unacked).toBe(1);
    const next = await scope.app(ports.clientPort, { name: 'a2', acks: true });
    await next.synced();
    const [input] = await next.waitForParam('input');
    await next.barrier();
    expect(next.of('input').length).toBe(1);
    expect(input!.data['value']).toBe('from the stayer');
    expect(input!.redelivered).toBe(true);
    expect(imi.stats().dropped.userGone).toBe(1);
  });

  it('bounds unacked input per user like the queue (an app that never acks cannot grow memory)', async () => {
    const { imi, app, user } = await withAppAndUser(scope, { maxQueuedLinesPerSession: 2 }, { name: 'lazy', acks: true });
    for (let i = 0; i < 5; i++) user.send(`l${i}`);
    await app.waitForParam('input', 5);
    await waitFor(() => imi.stats().inputLines === 5);
    expect(imi.stats().unacked).toBe(2);
    expect(imi.stats().dropped.unackedOverflow).toBe(3);
    expect(imi.stats().limits['maxQueuedLinesPerSession']).toBe(3);
  });

  it('maxUnackedTotal counts live input: one user\'s overflow does not push out another user\'s input', async () => {
    const { imi, ports, app, user: alice } = await withAppAndUser(scope, { maxUnackedTotal: 3, maxQueuedLinesPerSession: 2 }, { name: 'lazy', acks: true });
    const bob = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    alice.send('a1');
    await app.waitForParam('input', 1);
    for (const line of ['b1', 'b2', 'b3', 'b4']) bob.send(line);
    await app.waitForParam('input', 5);
    // Bob's own bound drops b1 and b2; a1, b3 and b4 are 3 inputs: within maxUnackedTotal.
    expect(imi.stats().dropped.unackedOverflow).toBe(2);
    expect(imi.stats().unacked).toBe(3);
    app.destroy();
    await waitFor(() => !imi.appConnected);
    const next = await scope.app(ports.clientPort, { name: 'next', acks: true });
    await next.synced();
    await next.waitForParam('input', 3);
    await next.barrier();
    expect(next.of('input').map((f) => f.data['value'])).toEqual(['a1', 'b3', 'b4']);
  });

  it('names the bound that was hit: maxQueuedBytesPerSession, maxUnackedTotal', async () => {
    const bytes = await withAppAndUser(scope, { maxQueuedBytesPerSession: 10 }, { name: 'lazy', acks: true });
    bytes.user.send('aaaa');
    bytes.user.send('bbbb');
    bytes.user.send('cccc'); // 12 bytes unacked > 10
    await bytes.app.waitForParam('input', 3);
    expect(bytes.imi.stats().dropped.unackedOverflow).toBe(1);
    expect(bytes.imi.stats().limits).toEqual({ maxQueuedBytesPerSession: 1 });

    const total = await withAppAndUser(scope, { maxUnackedTotal: 2 }, { name: 'lazy', acks: true });
    for (const line of ['1', '2', '3']) total.user.send(line);
    await total.app.waitForParam('input', 3);
    expect(total.imi.stats().unacked).toBe(2);
    expect(total.imi.stats().limits).toEqual({ maxUnackedTotal: 1 });
  });
});
