import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import { Client, HandlerError, type Session } from '../src/index.js';
import { LinkProxy, makeClient, onCleanup, runCleanups, startImi, User, waitFor } from './helpers.js';

afterEach(runCleanups);


describe('events', () => {
  it('connect, input and disconnect carry the session, the line and the reason', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    const log: string[] = [];
    let connected: Session | undefined;
    app.on('connect', (session) => {
      connected = session;
      log.push(`connect resumed=${session.resumed}`);
    });
    app.on('input', (session, line) => {
      log.push(`input ${session.id === connected?.id} ${line}`);
    });
    app.on('disconnect', (session, reason) => {
      log.push(`disconnect ${session.id === connected?.id} ${reason} connected=${session.connected}`);
    });
    await app.connect();
    expect(app.status).toBe('up');

    const user = await User.connect(externalPort);
    await waitFor(() => connected !== undefined, 'connect event');
    const session = connected!;
    expect(session.transport).toBe('tcp');
    expect(session.remote.address).toMatch(/127\.0\.0\.1/);
    expect(session.remote.port).toBe(user.socket.localPort);
    expect(typeof session.connectedAt).toBe('number');
    expect(session.state).toEqual({});
    expect(session.connected).toBe(true);
    expect([...app.sessions.keys()]).toEqual([session.id]);

    user.line('héllo wörld');
    await waitFor(() => log.length >= 2, 'input event');
    user.end();
    await waitFor(() => log.length >= 3, 'disconnect event');
    expect(log).toEqual(['connect resumed=false', 'input true héllo wörld', 'disconnect true closed connected=false']);
    expect(app.sessions.size).toBe(0);
    expect(errors).toEqual([]);
  });

  it('announces users already connected as resumed, then synced with their count', async () => {
    const { externalPort, clientPort } = await startImi();
    const users = [await User.connect(externalPort), await User.connect(externalPort), await User.connect(externalPort)];
    const { app, errors } = makeClient({ port: clientPort });
    const events: string[] = [];
    app.on('connect', (session) => {
      events.push(`connect ${session.resumed}`);
    });
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('linkUp', () => events.push('linkUp'));
    // connect() resolves after the resync: sessions are complete by then.
    await app.connect();
    expect(app.sessions.size).toBe(users.length);
    expect(events).toEqual(['connect true', 'connect true', 'connect true', 'synced 3', 'linkUp']);
    expect(errors).toEqual([]);
  });

  it('emits tick(n) every tickIntervalMs, counting from 1', async () => {
    const { clientPort } = await startImi();
    const { app } = makeClient({ port: clientPort, tickIntervalMs: 5 });
    const ticks: number[] = [];
    app.on('tick', (n) => ticks.push(n));
    await app.connect();
    await waitFor(() => ticks.length >= 3, 'three ticks');
    expect(ticks.slice(0, 3)).toEqual([1, 2, 3]);
    await app.close();
    const after = ticks.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(ticks.length).toBe(after);
  });

  it('awaits async listeners, and handles one user\'s lines one at a time, in order', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    let running = 0;
    let overlapped = false;
    const handled: string[] = [];
    app.on('input', async (session, line) => {
      running++;
      if (running > 1) overlapped = true;
      // Later lines finish sooner: only sequential handling keeps the order.
      await new Promise((resolve) => setTimeout(resolve, 25 - Number(line) * 5));
      handled.push(line);
      session.send(`done ${line}\r\n`);
      running--;
    });
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.socket.write('0\r\n1\r\n2\r\n3\r\n4\r\n');
    await user.waitFor('done 4\r\n');
    expect(handled).toEqual(['0', '1', '2', '3', '4']);
    expect(user.received).toBe('done 0\r\ndone 1\r\ndone 2\r\ndone 3\r\ndone 4\r\n');
    expect(overlapped).toBe(false);
    expect(errors).toEqual([]);
  });

  it('handles different users concurrently', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const started: string[] = [];
    app.on('input', async (session, line) => {
      started.push(line);
      if (line === 'wait') await gate;
    });
    await app.connect();
    const a = await User.connect(externalPort);
    const b = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 2, 'two sessions');
    a.line('wait');
    await waitFor(() => started.includes('wait'), 'first handler to start');
    b.line('go');
    // B's handler starts while A's is still blocked.
    await waitFor(() => started.includes('go'), "second user's handler to start while the first waits");
    release();
    expect(errors).toEqual([]);
  });
});

describe('hooks', () => {
  it('runs connect, input, buildResponse and disconnect taps with their arguments', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    const calls: string[] = [];
    app.hooks.connect.tap('Greeter', (session) => {
      calls.push('connect');
      session.send('hi\r\n');
    });
    app.hooks.input.tapPromise('Logger', async (session, line) => {
      calls.push(`input ${line} ${app.sessions.get(session.id) === session}`);
    });
    app.hooks.buildResponse.tap('Echo', (reply, _session, line) => {
      calls.push(`build ${String(reply)}`);
      return `echo:${line}`;
    });
    app.hooks.buildResponse.tapPromise('Brackets', async (reply) => `[${reply}]`);
    app.hooks.buildResponse.tapAsync('Newline', (reply, _session, _line, callback) => callback(null, `${reply}\r\n`));
    app.hooks.buildResponse.tap('Observer', () => undefined); // undefined keeps the reply
    app.hooks.disconnect.tap('Bye', (session, reason) => {
      calls.push(`disconnect ${reason} ${session.connected}`);
    });
    await app.connect();
    const user = await User.connect(externalPort);
    await user.waitFor('hi\r\n');
    user.line('abc');
    await user.waitFor('[echo:abc]\r\n');
    user.end();
    await waitFor(() => calls.length === 4, 'disconnect tap');
    expect(calls).toEqual(['connect', 'input abc true', 'build undefined', 'disconnect closed false']);
    expect(errors).toEqual([]);
  });

  it('awaits async functions given to tap() (not only tapPromise), as plain JS apps write them', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    // tapable's typings want tapPromise here; JavaScript apps get no such warning.
    const slow = async (_reply: string | undefined, _session: Session, line: string): Promise<string> => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return `slow ${line}\r\n`;
    };
    app.hooks.buildResponse.tap('Slow', slow as never);
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.line('x');
    await user.waitFor('slow x\r\n');
    expect(user.received).not.toContain('[object Promise]');
    expect(errors).toEqual([]);
  });

  it('the hooks object is frozen, its hooks declared with argument names', () => {
    const app = new Client({ tickIntervalMs: 0 });
    expect(Object.isFrozen(app.hooks)).toBe(true);
    expect(Object.keys(app.hooks)).toEqual(['connect', 'input', 'buildResponse', 'disconnect']);
    expect((app.hooks.buildResponse as unknown as { _args: string[] })._args).toEqual(['reply', 'session', 'line']);
  });
});

describe('sending', () => {
  it('send, multisend (both forms) and broadcast with except reach the right users', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    await app.connect();
    const [a, b, c] = [await User.connect(externalPort), await User.connect(externalPort), await User.connect(externalPort)];
    await waitFor(() => app.sessions.size === 3, 'three sessions');
    const byPort = new Map([...app.sessions.values()].map((session) => [session.remote.port, session.id]));
    const [idA, idB, idC] = [a, b, c].map((user) => byPort.get(user.socket.localPort!)!);

    expect(app.send(idA!, 'to a\r\n')).toMatch(/^[0-9a-f-]{36}$/);
    const txns = app.multisend([idA!, idB!], 'to a and b\r\n');
    expect(txns).toHaveLength(2);
    app.multisend({ [idB!]: 'only b\r\n', [idC!]: 'only c\r\n' });
    app.multisend(new Map([[idC!, 'c again\r\n']]));
    app.broadcast('all but c\r\n', { except: [idC!] });
    app.broadcast('everyone\r\n');
    await a.waitFor('everyone\r\n');
    await b.waitFor('everyone\r\n');
    await c.waitFor('everyone\r\n');
    expect(a.received).toBe('to a\r\nto a and b\r\nall but c\r\neveryone\r\n');
    expect(b.received).toBe('to a and b\r\nonly b\r\nall but c\r\neveryone\r\n');
    expect(c.received).toBe('only c\r\nc again\r\neveryone\r\n');
    expect(errors).toEqual([]);
  });

  it('after: a message waits for the txn it names, even when it reaches the intermediary first', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort, maxReplyHoldMs: Number.POSITIVE_INFINITY });
    let firstTxn: string | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    app.on('input', async (session) => {
      // Sent inside the handler: it is held until the handler finishes.
      firstTxn = session.send('first\r\n');
      await gate;
    });
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    const id = [...app.sessions.keys()][0]!;
    user.line('go');
    await waitFor(() => firstTxn !== undefined, 'handler to send');
    // Sent from outside any handler: written before "first", which its handler still holds.
    app.send(id, 'second\r\n', { after: firstTxn! });
    release();
    await user.waitFor('second\r\n');
    expect(user.received).toBe('first\r\nsecond\r\n');
    expect(errors).toEqual([]);
  });

  it('setState updates session.state at once and returns a txn id', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    await app.connect();
    await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    const session = [...app.sessions.values()][0]!;
    const before = session.state;
    expect(session.setState({ hp: 10, name: 'ann' })).toMatch(/^[0-9a-f-]{36}$/);
    expect(session.state).toEqual({ hp: 10, name: 'ann' });
    session.setState({ name: null });
    expect(session.state).toEqual({ hp: 10 });
    expect(before).toEqual({});
    expect(Object.isFrozen(session.state)).toBe(true);
    session.send('x', { updates: { seen: true } });
    expect(session.state).toEqual({ hp: 10, seen: true });
    expect(errors).toEqual([]);
  });

  it('session.disconnect closes the user after a farewell', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    const reasons: string[] = [];
    app.on('input', (session, line) => {
      if (line === 'quit') session.disconnect('Bye!\r\n');
    });
    app.on('disconnect', (_session, reason) => reasons.push(reason));
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.line('quit');
    await waitFor(() => user.closed, 'user connection closed');
    expect(user.received).toContain('Bye!\r\n');
    await waitFor(() => reasons.length === 1, 'disconnect event');
    expect(reasons).toEqual(['kicked']);
    expect(errors).toEqual([]);
  });

  it('rejects wrong argument types and frames over maxFrameBytes with a clear error', () => {
    const app = new Client({ tickIntervalMs: 0, maxFrameBytes: 1_000 });
    expect(() => app.send(42 as never, 'x')).toThrow(/send: id must be a string/);
    expect(() => app.send('id', undefined as never)).toThrow(/send: text must be a string/);
    let thrown: unknown;
    try {
      app.send('id', 'x'.repeat(2_000));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ImiError);
    expect((thrown as ImiError).code).toBe('IMI_LIMIT');
    expect((thrown as ImiError).message).toContain('maxFrameBytes');
  });
});

describe('robustness', () => {
  it('a throwing or rejecting handler is reported with its session and names, and the app goes on', async () => {
    const { externalPort, clientPort } = await startImi();
    const proxy = await LinkProxy.start(clientPort);
    const { app, errors } = makeClient({ port: proxy.port });
    app.on('input', (_session, line) => {
      if (line === 'throw') throw new Error('sync listener broke');
    });
    app.on('input', async (_session, line) => {
      if (line === 'reject') throw new Error('async listener broke');
    });
    app.hooks.input.tap('Fragile', (_session, line) => {
      if (line === 'tap') throw new Error('tap broke');
    });
    app.hooks.buildResponse.tap('Broken', (_reply, _session, line) => {
      if (line === 'build') throw new Error('build broke');
      return undefined;
    });
    app.hooks.buildResponse.tap('Answer', (reply, _session, line) => `${reply ?? ''}answer ${line}\r\n`);
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    const id = [...app.sessions.keys()][0]!;

    for (const line of ['throw', 'reject', 'tap', 'build']) {
      user.line(line);
      // The input's own reply still comes: the failure cost only the failing handler.
      await user.waitFor(`answer ${line}\r\n`);
    }
    expect(errors).toHaveLength(4);
    for (const error of errors) {
      expect(error).toBeInstanceOf(HandlerError);
      expect(error.code).toBe('IMI_PLUGIN');
      expect(error.sessionId).toBe(id);
    }
    const [sync, async_, tap, build] = errors as HandlerError[];
    expect([sync!.kind, sync!.hook, sync!.tap]).toEqual(['event', 'input', undefined]);
    expect(async_!.message).toContain('async listener broke');
    expect([tap!.kind, tap!.hook, tap!.tap]).toEqual(['hook', 'input', 'Fragile']);
    expect([build!.kind, build!.hook, build!.tap]).toEqual(['hook', 'buildResponse', 'Broken']);
    expect((build!.cause as Error).message).toBe('build broke');

    // Every input was acked anyway: the last ack covers the last input's seq.
    const inputs = proxy.imiFrames.of('input');
    const lastSeq = inputs[inputs.length - 1]!.seq;
    await waitFor(() => proxy.appFrames.frames.some((frame) => frame.ack === lastSeq || frame.data?.['seq'] === lastSeq), 'ack of the last input');
  });

  it('a throwing error listener, tick listener or synced listener does not break the client', async () => {
    const { externalPort, clientPort } = await startImi();
    const app = new Client({ port: clientPort, tickIntervalMs: 5 });
    onCleanup(() => app.close());
    const printed: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => printed.push(args);
    onCleanup(() => {
      console.error = original;
    });
    app.on('error', () => {
      throw new Error('error listener broke');
    });
    app.on('tick', () => {
      throw new Error('tick broke');
    });
    app.on('synced', () => {
      throw new Error('synced broke');
    });
    app.hooks.buildResponse.tap('Echo', (_reply, _session, line) => `${line}\r\n`);
    await app.connect();
    await waitFor(() => printed.length >= 2, 'errors printed');
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.line('still alive');
    await user.waitFor('still alive\r\n');
    expect(app.status).toBe('up');
  });

  it('prints errors with console.error when nobody listens for "error"', async () => {
    const { externalPort, clientPort } = await startImi();
    const app = new Client({ port: clientPort, tickIntervalMs: 0 });
    onCleanup(() => app.close());
    const printed: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => printed.push(args);
    onCleanup(() => {
      console.error = original;
    });
    app.on('input', () => {
      throw new Error('nobody listens');
    });
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.line('x');
    await waitFor(() => printed.length === 1, 'printed error');
    expect(printed[0]![1]).toBeInstanceOf(HandlerError);
  });
});

describe('lifecycle', () => {
  it('close() lets a running handler finish and deliver its reply, then refuses to send', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient({ port: clientPort });
    let started = false;
    app.on('input', async (session) => {
      started = true;
      await new Promise((resolve) => setTimeout(resolve, 30));
      session.send('finished\r\n');
    });
    const closes: (ImiError | undefined)[] = [];
    app.on('close', (reason) => closes.push(reason));
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');
    user.line('work');
    await waitFor(() => started, 'handler started');
    await app.close();
    await user.waitFor('finished\r\n');
    expect(app.status).toBe('closed');
    expect(closes).toEqual([undefined]);
    expect(app.sessions.size).toBe(0);
    expect(() => app.send('x', 'y')).toThrow(ImiError);
    await expect(new Client({ tickIntervalMs: 0 }).close()).resolves.toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('connect() after close() rejects with IMI_CLOSED; close() while connecting rejects connect()', async () => {
    const closed = new Client({ tickIntervalMs: 0 });
    await closed.close();
    await expect(closed.connect()).rejects.toMatchObject({ code: 'IMI_CLOSED' });

    // Nothing listens on this port: connect() keeps retrying until close().
    const { clientPort, imi } = await startImi();
    await imi.close();
    const waiting = new Client({ port: clientPort, tickIntervalMs: 0, reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
    const attempts: number[] = [];
    waiting.on('reconnecting', (attempt) => attempts.push(attempt));
    const pending = waiting.connect();
    await waitFor(() => attempts.length >= 2, 'two reconnect attempts');
    expect(attempts.slice(0, 2)).toEqual([1, 2]);
    await waiting.close();
    await expect(pending).rejects.toMatchObject({ code: 'IMI_CLOSED' });
  });

  it('gives up with IMI_LINK_DOWN when the reconnect policy says so', async () => {
    const { clientPort, imi } = await startImi();
    await imi.close();
    const app = new Client({ port: clientPort, tickIntervalMs: 0, reconnect: (attempt) => (attempt <= 2 ? 1 : undefined) });
    const closes: (ImiError | undefined)[] = [];
    app.on('close', (reason) => closes.push(reason));
    const error = await app.connect().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ImiError);
    expect((error as ImiError).code).toBe('IMI_LINK_DOWN');
    expect((error as ImiError).message).toMatch(/gave up reconnecting after 2 attempts/);
    expect(app.status).toBe('closed');
    expect(closes).toHaveLength(1);
  });

  it('a link ended by a `shutdown` for a handover is retried at once; any other shutdown waits for the policy', async () => {
    // A bare intermediary on a real socket: each app connection is resynced (no users), then told `shutdown` and ended.
    const reasons = ['handover', 'SIGTERM', 'handover'];
    let served = 0;
    const server = createServer((socket) => {
      const reason = reasons[served++];
      socket.once('data', () => {
        socket.write('{"param":"synced","data":{"count":0},"txn_id":"s"}\n');
        if (reason !== undefined) socket.end(`{"param":"shutdown","data":{"reason":"${reason}"},"txn_id":"x"}\n`);
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(() => void server.close());
    const app = new Client({ port: (server.address() as AddressInfo).port, tickIntervalMs: 0, reconnect: () => 40 });
    onCleanup(() => app.close());
    const retries: Array<[number, number, string]> = [];
    app.on('reconnecting', (attempt, delay, cause) => retries.push([attempt, delay, cause.message]));
    await app.connect();
    await waitFor(() => served === 4 && app.status === 'up', 'four links');
    expect(retries).toEqual([
      [1, 0, expect.stringContaining('shut down (handover)')],
      [1, 40, expect.stringContaining('shut down (SIGTERM)')],
      [1, 0, expect.stringContaining('shut down (handover)')],
    ]);
  });

  it('after a handover, a link that waits in the accept queue longer than legacySyncWaitMs still waits for synced: nobody is taken for gone', async () => {
    const user = '{"param":"connect","data":{"id":"u1","transport":"tcp","remote":{"address":"127.0.0.1","port":5000},"connectedAt":1795600000000,"resumed":true,"state":{}},"txn_id":"c","seq":1}\n';
    let served = 0;
    const server = createServer((socket) => {
      const link = ++served;
      socket.once('data', () => {
        if (link === 1) {
          socket.write(user + '{"param":"synced","data":{"count":1},"txn_id":"s1"}\n');
          setTimeout(() => socket.end('{"param":"shutdown","data":{"reason":"handover"},"txn_id":"x"}\n'), 20);
        } else {
          // The successor: silent for three legacy waits (as if still booting), then the resync.
          setTimeout(() => socket.write(user.replace('"seq":1', '"seq":2') + '{"param":"synced","data":{"count":1},"txn_id":"s2"}\n'), 300);
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(() => void server.close());
    const app = new Client({ port: (server.address() as AddressInfo).port, tickIntervalMs: 0, legacySyncWaitMs: 100, reconnect: () => 40 });
    onCleanup(() => app.close());
    const events: string[] = [];
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('disconnect', (session, reason) => events.push(`disconnect ${session.id} ${reason}`));
    await app.connect();
    await waitFor(() => events.length >= 2, 'the resync after the handover');
    expect(events).toEqual(['synced 1', 'synced 1']);
    expect([...app.sessions.keys()]).toEqual(['u1']);
  });

  it('with reconnect: false, a refused connection fails connect() at once', async () => {
    const { clientPort, imi } = await startImi();
    await imi.close();
    const app = new Client({ port: clientPort, tickIntervalMs: 0, reconnect: false });
    await expect(app.connect()).rejects.toMatchObject({ code: 'IMI_LINK_DOWN' });
  });
});
