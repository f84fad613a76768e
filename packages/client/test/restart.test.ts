/**
 * Restarts and outages, for real: an app process killed with SIGKILL, an
 * intermediary closed and started again on the same port, a link cut under
 * a live app, and the refusals (auth, busy, replaced).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import { Client } from '../src/index.js';
import { LinkProxy, makeClient, onCleanup, runCleanups, startImi, User, waitFor } from './helpers.js';

afterEach(runCleanups);

const FIXTURE = fileURLToPath(new URL('./fixtures/state-app.mjs', import.meta.url));

interface AppProcess {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<NodeJS.Signals | number | null>;
}

/** Runs the fixture app (built from dist) as a child process and waits until it is resynced. */
async function startAppProcess(port: number, generation: number): Promise<AppProcess> {
  const child = spawn(process.execPath, [FIXTURE, String(port), String(generation)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const app: AppProcess = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code))),
  };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (app.stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (app.stderr += text));
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(() => app.stdout.includes('"ready":true') || child.exitCode !== null, `app ${generation} to be ready`, 15_000);
  if (!app.stdout.includes('"ready":true')) throw new Error(`app ${generation} failed: ${app.stderr}`);
  return app;
}


describe('app restart (real child processes, SIGKILL)', () => {
  it('hands state back to the next app, redelivers the input a killed app was handling, and never sends its partial reply', async () => {
    const { externalPort, clientPort } = await startImi({ appDownNotice: false });
    const first = await startAppProcess(clientPort, 1);
    const user = await User.connect(externalPort);
    await user.waitFor('hello from app 1; resumed=false; state={}\r\n');
    user.line('set 42');
    await user.waitFor('stored 42\r\n');

    // The app SIGKILLs itself in the middle of handling this line, 100 ms
    // after sending a reply: reply and ack go together or not at all.
    user.line('crash');
    expect(await first.exit).toBe('SIGKILL');

    const second = await startAppProcess(clientPort, 2);
    expect(second.stdout).toContain('"sessions":1');
    await user.waitFor('hello from app 2; resumed=true; state={"value":"42"}\r\n');
    await user.waitFor('crash handled by app 2\r\n');

    // Killed from outside this time, while idle.
    second.child.kill('SIGKILL');
    expect(await second.exit).toBe('SIGKILL');
    await startAppProcess(clientPort, 3);
    await user.waitFor('hello from app 3; resumed=true; state={"value":"42"}\r\n');

    expect(user.received).not.toContain('PARTIAL REPLY');
    expect(user.received.match(/crash handled/g)).toHaveLength(1);
    expect(user.received.match(/stored 42/g)).toHaveLength(1);
  });
});

describe('intermediary restart', () => {
  it('reconnects with backoff, resyncs, and sessions end up equal to the new intermediary\'s users', async () => {
    const old = await startImi();
    const { app, errors } = makeClient({ port: old.clientPort }, 50);
    const status: string[] = [];
    const gone: string[] = [];
    app.on('linkUp', () => status.push('linkUp'));
    app.on('linkDown', (reason) => status.push(`linkDown ${reason.code}`));
    app.on('reconnecting', () => {
      if (status[status.length - 1] !== 'reconnecting') status.push('reconnecting');
    });
    app.on('synced', (count) => status.push(`synced ${count}`));
    app.on('disconnect', (session, reason) => gone.push(`${session.id} ${reason}`));
    app.hooks.buildResponse.tap('Echo', (_reply, _session, line) => `echo ${line}\r\n`);
    await app.connect();
    await User.connect(old.externalPort);
    await waitFor(() => app.sessions.size === 1, 'first user');
    const firstId = [...app.sessions.keys()][0]!;

    await old.imi.close('restart');
    await waitFor(() => status.includes('reconnecting'), 'a failed reconnect attempt');
    expect(app.status === 'waiting' || app.status === 'connecting').toBe(true);

    const fresh = await startImi({ clientPort: old.clientPort });
    await waitFor(() => status.filter((entry) => entry === 'linkUp').length === 2, 'link back up');
    expect(status).toEqual(['synced 0', 'linkUp', 'linkDown IMI_LINK_DOWN', 'reconnecting', 'synced 0', 'linkUp']);
    await waitFor(() => gone.length === 1, 'the old user reported gone');
    expect(gone).toEqual([`${firstId} gone`]);
    expect(app.sessions.size).toBe(0);

    const user = await User.connect(fresh.externalPort);
    await waitFor(() => app.sessions.size === 1, 'new user');
    user.line('again');
    await user.waitFor('echo again\r\n');
    expect(errors).toEqual([]);
  });
});

describe('link outage with the intermediary still up', () => {
  it('keeps what is sent while down, flushes it after the resync, announces nobody twice and handles nothing twice', async () => {
    const { externalPort, clientPort } = await startImi({ appDownNotice: false });
    const proxy = await LinkProxy.start(clientPort);
    const { app, errors } = makeClient({ port: proxy.port }, 50);
    const connects: string[] = [];
    const departures: string[] = [];
    const linkEvents: string[] = [];
    let slowRuns = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    app.on('connect', (session) => {
      connects.push(session.id);
    });
    app.on('disconnect', (session, reason) => departures.push(`${session.id} ${reason}`));
    app.on('linkDown', () => linkEvents.push('down'));
    app.on('linkUp', () => linkEvents.push('up'));
    app.on('input', async (session, line) => {
      if (line !== 'slow') return;
      slowRuns++;
      await gate;
      session.send('slow done\r\n');
    });
    await app.connect();
    const a = await User.connect(externalPort);
    const b = await User.connect(externalPort);
    const leaver = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 3, 'three sessions');
    const idOf = (user: User): string => [...app.sessions.values()].find((session) => session.remote.port === user.socket.localPort)!.id;
    const [idA, idB, idLeaver] = [idOf(a), idOf(b), idOf(leaver)];

    a.line('slow');
    await waitFor(() => slowRuns === 1, 'slow handler running');

    await proxy.refuse();
    proxy.cut();
    await waitFor(() => linkEvents.includes('down'), 'linkDown');
    const queuedTxn = app.send(idB, 'sent while down\r\n');
    expect(queuedTxn).toBeTypeOf('string');
    expect(app.bufferedBytes).toBeGreaterThan(0);
    leaver.end();
    await waitFor(() => leaver.closed, 'leaver gone');
    // Let a refused reconnect attempt or two happen, then bring the link back.
    await new Promise((resolve) => setTimeout(resolve, 30));
    await proxy.resume();

    await b.waitFor('sent while down\r\n');
    await waitFor(() => linkEvents.join(' ') === 'up down up', 'link up again');
    expect([...app.sessions.keys()].sort()).toEqual([idA, idB].sort());
    await waitFor(() => departures.length === 1, 'departure reported');
    expect(departures[0]).toMatch(new RegExp(`^${idLeaver} (closed|gone)$`));

    // The intermediary redelivered the unacked "slow" line; it must not run again.
    await waitFor(() => proxy.imiFrames.of('input').some((frame) => frame.redelivered === true), 'redelivery');
    release();
    await a.waitFor('slow done\r\n');
    const redelivered = proxy.imiFrames.of('input').find((frame) => frame.redelivered === true)!;
    await waitFor(
      () => proxy.appFrames.frames.some((frame) => (frame.ack ?? (frame.param === 'ack' ? frame.data?.['seq'] : -1)) === redelivered.seq),
      'ack of the redelivered input',
    );
    expect(slowRuns).toBe(1);
    expect(a.received.match(/slow done/g)).toHaveLength(1);
    expect(connects).toEqual([idA, idB, idLeaver]);
    // The app named in hello whom it knew, and the intermediary announced none of them again: its second resync is
    // the departure and `synced` with `known: true`, not a `connect` per user.
    expect(new Set(proxy.appFrames.of('hello').at(-1)!.data!['known'] as string[])).toEqual(new Set([idA, idB, idLeaver]));
    expect(proxy.imiFrames.of('synced').at(-1)!.data).toMatchObject({ count: 2, known: true });
    expect(proxy.imiFrames.of('connect').map((frame) => frame.data!['id'])).toEqual([idA, idB, idLeaver]);
    expect(errors).toEqual([]);
  });
});

describe('replies lost with a broken link', () => {
  it('sends them again when the intermediary redelivers their input, without running the handlers twice', async () => {
    const { externalPort, clientPort } = await startImi({ appDownNotice: false });
    const proxy = await LinkProxy.start(clientPort);
    const { app, errors } = makeClient({ port: proxy.port }, 50);
    let runs = 0;
    app.on('input', (session, line) => {
      runs++;
      session.send(`reply to ${line}\r\n`);
    });
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');

    // The reply and its ack are written, but the link dies before the intermediary reads them.
    proxy.blackhole = true;
    user.line('important');
    await waitFor(() => proxy.swallowed.of('output').length === 1, 'the reply to be written into the void');
    expect(proxy.swallowed.of('output')[0]!.ack).toBeTypeOf('number');
    proxy.blackhole = false;
    proxy.cut();

    await user.waitFor('reply to important\r\n');
    const redelivered = proxy.imiFrames.of('input').find((frame) => frame.redelivered === true);
    expect(redelivered).toBeDefined();
    // The replayed reply carries the new ack: nothing is redelivered again.
    const replayed = proxy.appFrames.of('output').find((frame) => frame.data?.['value'] === 'reply to important\r\n')!;
    expect(replayed.ack).toBe(redelivered!.seq);
    expect(runs).toBe(1);
    user.line('next');
    await user.waitFor('reply to next\r\n');
    expect(user.received).toBe('reply to important\r\nreply to next\r\n');
    expect(errors).toEqual([]);
  });
});

describe('bounds while the link is down or slow', () => {
  it('rejects sends past maxPendingOutgoing with IMI_LINK_DOWN, keeping what was accepted', async () => {
    const app = new Client({ port: 1, tickIntervalMs: 0, maxPendingOutgoing: 3 });
    onCleanup(() => app.close());
    for (let i = 0; i < 3; i++) app.send('someone', `line ${i}`);
    let thrown: unknown;
    try {
      app.send('someone', 'one too many');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ImiError);
    expect((thrown as ImiError).code).toBe('IMI_LINK_DOWN');
    expect((thrown as ImiError).message).toContain('maxPendingOutgoing');
    expect(() => app.multisend(['a', 'b'], 'x')).toThrow(/maxPendingOutgoing/);
    expect(app.bufferedBytes).toBeGreaterThan(0);
  });

  it('rejects sends past maxOutgoingBytes with IMI_LIMIT when the intermediary does not read', async () => {
    // A stand-in intermediary that resyncs the app and then never reads a byte.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.write(JSON.stringify({ param: 'synced', data: { count: 0 }, txn_id: 'x' }) + '\n');
      socket.pause();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(() => {
      server.close();
      for (const socket of sockets) socket.destroy();
    });
    const port = (server.address() as net.AddressInfo).port;
    const maxOutgoingBytes = 256 * 1024;
    const app = new Client({ port, tickIntervalMs: 0, maxOutgoingBytes, closeTimeoutMs: 100 });
    const drains: number[] = [];
    app.on('drain', () => drains.push(1));
    onCleanup(() => app.close());
    await app.connect();
    const chunk = 'x'.repeat(16 * 1024);
    let limit: unknown;
    // Keep sending, one chunk per turn, until the client says stop: the socket
    // buffer fills, then the client's own bounded queue.
    for (let i = 0; i < 10_000 && limit === undefined; i++) {
      try {
        app.send('someone', chunk);
      } catch (error) {
        limit = error;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(limit).toBeInstanceOf(ImiError);
    expect((limit as ImiError).code).toBe('IMI_LIMIT');
    expect((limit as ImiError).message).toContain('maxOutgoingBytes');
    expect(app.bufferedBytes).toBeLessThanOrEqual(maxOutgoingBytes);
    expect(drains).toEqual([]);

    // Once the intermediary reads again, everything is written, 'drain' is emitted and sending works.
    sockets[0]!.resume();
    await waitFor(() => drains.length > 0 && app.bufferedBytes === 0, 'drain');
    expect(() => app.send('someone', chunk)).not.toThrow();
  });

  it('with linkTimeoutMs, drops a link that went silent and reconnects', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      // Resyncs, then never sends anything again (no pings): a hung intermediary.
      socket.write(JSON.stringify({ param: 'synced', data: { count: 0 }, txn_id: 'x' }) + '\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(() => {
      server.close();
      for (const socket of sockets) socket.destroy();
    });
    const port = (server.address() as net.AddressInfo).port;
    const { app } = makeClient({ port, linkTimeoutMs: 50 }, 50);
    const downs: ImiError[] = [];
    app.on('linkDown', (reason) => downs.push(reason));
    await app.connect();
    await waitFor(() => downs.length > 0, 'linkDown');
    expect(downs[0]!.code).toBe('IMI_LINK_DOWN');
    expect(downs[0]!.message).toContain('linkTimeoutMs');
    await waitFor(() => sockets.length >= 2, 'a new connection');
  });
});

describe('refusals', () => {
  it('a wrong token rejects connect() with IMI_AUTH and does not retry', async () => {
    const { clientPort } = await startImi({ token: 'right' });
    const proxy = await LinkProxy.start(clientPort);
    const app = new Client({ port: proxy.port, token: 'wrong', tickIntervalMs: 0, reconnect: { initialDelayMs: 1, maxDelayMs: 1 } });
    const closes: (ImiError | undefined)[] = [];
    app.on('close', (reason) => closes.push(reason));
    const error = await app.connect().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ImiError);
    expect((error as ImiError).code).toBe('IMI_AUTH');
    expect(app.status).toBe('closed');
    expect(closes.map((reason) => reason?.code)).toEqual(['IMI_AUTH']);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(proxy.connections).toBe(1);

    const good = new Client({ port: clientPort, token: 'right', tickIntervalMs: 0 });
    onCleanup(() => good.close());
    await good.connect();
    expect(good.status).toBe('up');
  });

  it('IMI_APP_BUSY rejects connect() by default, and is retried with onAppBusy: "retry"', async () => {
    const { clientPort, externalPort } = await startImi();
    const { app: first } = makeClient({ port: clientPort }, 50);
    await first.connect();

    const refused = new Client({ port: clientPort, tickIntervalMs: 0 });
    await expect(refused.connect()).rejects.toMatchObject({ code: 'IMI_APP_BUSY' });
    expect(refused.status).toBe('closed');

    const { app: patient, errors } = makeClient({ port: clientPort, onAppBusy: 'retry' }, 50);
    const causes: string[] = [];
    patient.on('reconnecting', (_attempt, _delay, cause) => causes.push(cause.code));
    const ready = patient.connect();
    await waitFor(() => causes.length >= 2, 'two busy retries');
    expect(new Set(causes)).toEqual(new Set(['IMI_APP_BUSY']));
    await first.close();
    await ready;
    await User.connect(externalPort);
    await waitFor(() => patient.sessions.size === 1, 'the patient app serves users');
    expect(errors).toEqual([]);
  });

  it('IMI_REPLACED closes the old app without reconnecting; the new one gets the users', async () => {
    const { clientPort, externalPort } = await startImi({ appPolicy: 'replace' });
    const old = new Client({ port: clientPort, tickIntervalMs: 0, reconnect: { initialDelayMs: 1, maxDelayMs: 1 } });
    onCleanup(() => old.close());
    const oldErrors: ImiError[] = [];
    const oldCloses: (ImiError | undefined)[] = [];
    old.on('error', (error) => oldErrors.push(error));
    old.on('close', (reason) => oldCloses.push(reason));
    await old.connect();
    await User.connect(externalPort);
    await waitFor(() => old.sessions.size === 1, 'old app has the user');

    const { app: next } = makeClient({ port: clientPort }, 50);
    await next.connect();
    expect(next.sessions.size).toBe(1);
    expect([...next.sessions.values()][0]!.resumed).toBe(true);
    await waitFor(() => old.status === 'closed', 'old app closed');
    expect(oldErrors.map((error) => error.code)).toEqual(['IMI_REPLACED']);
    expect(oldCloses.map((reason) => reason?.code)).toEqual(['IMI_REPLACED']);
    expect(old.sessions.size).toBe(0);
  });
});
