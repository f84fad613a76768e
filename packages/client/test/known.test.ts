/**
 * `hello.known`: an app that reconnects names the users it holds, and is
 * not sent them again. Against a real intermediary behind a proxy that can
 * cut the link, and against bare intermediaries on real sockets for what a
 * real one does not do on cue (answer late, refuse a hello, announce
 * 16,384 users).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_KNOWN_ID_LENGTH, MAX_KNOWN_IN_HELLO } from '@imi/core';
import { LinkProxy, makeClient, onCleanup, runCleanups, startImi, User, waitFor } from './helpers.js';

afterEach(runCleanups);


const connectFrame = (id: string): string =>
  `{"param":"connect","data":{"id":"${id}","transport":"tcp","remote":{"address":"127.0.0.1","port":5000},"connectedAt":1795600000000,"resumed":false,"state":{}},"txn_id":"c-${id}"}\n`;

/** A first link that announces u1, says `synced` with a maxFrameBytes (so the next hello names u1), and is cut. */
function firstLink(socket: net.Socket): void {
  socket.write(connectFrame('u1') + '{"param":"synced","data":{"count":1,"maxFrameBytes":1048576},"txn_id":"s1"}\n');
  setTimeout(() => socket.destroy(), 30);
}

/**
 * A bare intermediary: `answer(n, hello, socket)` is called with each link's number (from 1) and its parsed hello.
 */
async function bareIntermediary(answer: (link: number, hello: Record<string, unknown>, socket: net.Socket) => void): Promise<{ port: number; hellos: Array<Record<string, unknown>> }> {
  const hellos: Array<Record<string, unknown>> = [];
  const server = net.createServer((socket) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (text.includes('\n')) return;
      text += chunk;
      const end = text.indexOf('\n');
      if (end === -1) return;
      const hello = (JSON.parse(text.slice(0, end)) as { data: Record<string, unknown> }).data;
      hellos.push(hello);
      answer(hellos.length, hello, socket);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => void server.close());
  return { port: (server.address() as net.AddressInfo).port, hellos };
}

describe('hello.known', () => {
  it('names the users the app holds once the intermediary said its maxFrameBytes, and only while the list fits in it', async () => {
    // 3 UUIDs (39 bytes each in the list) fit in a 500-byte frame with the rest of the hello; 10 do not.
    const { externalPort, clientPort } = await startImi({ appDownNotice: false, token: 'secret', maxFrameBytes: 500 });
    const proxy = await LinkProxy.start(clientPort);
    const { app, errors } = makeClient({ port: proxy.port, token: 'secret' }, 50);
    const synced: number[] = [];
    app.on('synced', (count) => synced.push(count));
    await app.connect();
    const users: User[] = [];
    for (let i = 0; i < 3; i++) users.push(await User.connect(externalPort));
    await waitFor(() => app.sessions.size === 3, 'three sessions');
    const firstIds = [...app.sessions.keys()];
    proxy.cut();
    await waitFor(() => synced.length === 2 && app.status === 'up', 'the second resync');
    for (let i = 0; i < 7; i++) users.push(await User.connect(externalPort));
    await waitFor(() => app.sessions.size === 10, 'ten sessions');
    proxy.cut();
    await waitFor(() => synced.length === 3 && app.status === 'up', 'the third resync');

    const hellos = proxy.appFrames.of('hello').map((frame) => frame.data!);
    expect(hellos).toHaveLength(3);
    // The first link knew nothing of this intermediary: no list.
    expect(hellos[0]!['known']).toBeUndefined();
    expect(new Set(hellos[1]!['known'] as string[])).toEqual(new Set(firstIds));
    expect(hellos[2]!['known']).toBeUndefined();
    expect(proxy.imiFrames.of('synced').map((frame) => frame.data)).toEqual([
      { count: 0, maxFrameBytes: 500 },
      { count: 3, maxFrameBytes: 500, known: true },
      { count: 10, maxFrameBytes: 500 },
    ]);
    // Announced: 3 users as they came, nobody in the second resync, 7 as they came, all 10 in the third.
    expect(proxy.imiFrames.of('connect')).toHaveLength(3 + 7 + 10);
    expect(synced).toEqual([0, 3, 10]);
    expect(app.sessions.size).toBe(10);
    expect(errors).toEqual([]);
    // Still a working app with acks: a line typed now is answered.
    app.on('input', (session, line) => session.send(`got ${line}\r\n`));
    users[9]!.line('hi');
    await users[9]!.waitFor('got hi\r\n');
  });

  it('a user named in hello.known and told gone during the resync is not kept, though their departure waits behind a slow handler', async () => {
    const { externalPort, clientPort } = await startImi({ appDownNotice: false, halfCloseGraceMs: 100 });
    const proxy = await LinkProxy.start(clientPort);
    const { app, errors } = makeClient({ port: proxy.port }, 50);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let slowRuns = 0;
    app.on('input', async (_session, line) => {
      if (line !== 'slow') return;
      slowRuns++;
      await gate;
    });
    const departures: string[] = [];
    app.on('disconnect', (session, reason) => departures.push(`${session.id} ${reason}`));
    const atSynced: string[][] = [];
    app.on('synced', () => atSynced.push([...app.sessions.keys()]));
    await app.connect();
    const leaver = await User.connect(externalPort);
    const stayer = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 2, 'two sessions');
    const idOf = (user: User): string => [...app.sessions.values()].find((session) => session.remote.port === user.socket.localPort)!.id;
    const [leaverId, stayerId] = [idOf(leaver), idOf(stayer)];
    leaver.line('slow');
    await waitFor(() => slowRuns === 1, 'the slow handler running');

    await proxy.refuse();
    proxy.cut();
    leaver.end();
    await waitFor(() => leaver.closed, 'the leaver gone');
    await proxy.resume();
    await waitFor(() => atSynced.length === 2, 'the second resync');
    // The intermediary was told the app knew both, and said the leaver left: at `synced` the app holds only the stayer.
    expect(new Set(proxy.appFrames.of('hello').at(-1)!.data!['known'] as string[])).toEqual(new Set([leaverId, stayerId]));
    expect(proxy.imiFrames.of('synced').at(-1)!.data).toMatchObject({ count: 1, known: true });
    expect(atSynced[1]).toEqual([stayerId]);
    expect(departures).toEqual([]);
    // The departure runs once the slow handler is done, with its real reason, once.
    release();
    await waitFor(() => departures.length === 1, 'the departure');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(departures).toEqual([`${leaverId} closed`]);
    expect(errors).toEqual([]);
  });

  it('a link whose hello named users waits for synced past legacySyncWaitMs: a slow intermediary does not make the app drop them', async () => {
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        socket.write(connectFrame('u1') + connectFrame('u2') + '{"param":"synced","data":{"count":2,"maxFrameBytes":1048576},"txn_id":"s1"}\n');
        setTimeout(() => socket.destroy(), 30);
      } else {
        // Silent for three legacy waits (busy), then the resync: nobody to announce, both kept.
        setTimeout(() => socket.write('{"param":"synced","data":{"count":2,"known":true,"maxFrameBytes":1048576},"txn_id":"s2"}\n'), 300);
      }
    });
    const { app, errors } = makeClient({ port, legacySyncWaitMs: 100, reconnect: () => 10 }, 50);
    const events: string[] = [];
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('disconnect', (session, reason) => events.push(`disconnect ${session.id} ${reason}`));
    await app.connect();
    await waitFor(() => events.length >= 2, 'the second resync');
    expect(events).toEqual(['synced 2', 'synced 2']);
    expect(hellos[1]!['known']).toEqual(['u1', 'u2']);
    expect([...app.sessions.keys()]).toEqual(['u1', 'u2']);
    expect(errors).toEqual([]);
  });

  it('telnet info sent again after a reconnect reaches the app only when it changed', async () => {
    const naws = (width: number): string => `{"naws":{"width":${width},"height":24},"echo":true}`;
    const telnetFrame = (id: string, width: number, n: number): string => `{"param":"telnet","data":{"id":"${id}","telnet":${naws(width)}},"txn_id":"t${n}"}\n`;
    const { port } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        const connects = ['u1', 'u2'].map((id) => connectFrame(id).replace('"state":{}', `"state":{},"telnet":${naws(80)}`)).join('');
        socket.write(connects + '{"param":"synced","data":{"count":2,"maxFrameBytes":1048576},"txn_id":"s1"}\n');
        setTimeout(() => socket.destroy(), 30);
      } else {
        // What the intermediary does after a lost link: the info of every telnet user again; u2's window changed meanwhile.
        socket.write(telnetFrame('u1', 80, 1) + telnetFrame('u2', 100, 2) + '{"param":"synced","data":{"count":2,"known":true,"maxFrameBytes":1048576},"txn_id":"s2"}\n');
      }
    });
    const { app, errors } = makeClient({ port, reconnect: () => 10 }, 50);
    const events: string[] = [];
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('telnet', (session, telnet) => events.push(`telnet ${session.id} ${telnet.naws?.width}`));
    await app.connect();
    await waitFor(() => events.filter((event) => event.startsWith('synced')).length >= 2, 'the second resync');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events).toEqual(['synced 2', 'telnet u2 100', 'synced 2']);
    expect(app.sessions.get('u1')!.telnet!.naws).toEqual({ width: 80, height: 24 });
    expect(app.sessions.get('u2')!.telnet!.naws).toEqual({ width: 100, height: 24 });
    expect(errors).toEqual([]);
  });

  it('a hello whose list is refused (an intermediary restarted with a smaller maxFrameBytes) is sent again at once without it, using up no attempt, the full resync keeps everyone, and no later hello names anyone', async () => {
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        firstLink(socket);
      } else if (link === 2) {
        socket.write('{"param":"error","data":{"code":"IMI_BAD_FRAME","message":"a frame longer than maxFrameBytes (64) was dropped"},"txn_id":"e"}\n');
      } else if (link === 3) {
        socket.destroy(); // an ordinary failure, before any resync: the policy's second attempt
      } else {
        socket.write(connectFrame('u1').replace('"resumed":false', '"resumed":true') + `{"param":"synced","data":{"count":1,"maxFrameBytes":1048576},"txn_id":"s${link}"}\n`);
        if (link === 4) setTimeout(() => socket.destroy(), 30);
      }
    });
    // A policy of two attempts, 50 ms each: the reconnection after the refusal must not wait, and must not use up
    // one of them (else the failure of link 3 would be the third attempt, and the client would give up).
    const attempts: Array<[number, number]> = [];
    const { app, errors } = makeClient({ port, reconnect: (attempt) => (attempt <= 2 ? 50 : undefined) });
    app.on('reconnecting', (attempt, delay) => attempts.push([attempt, delay]));
    const events: string[] = [];
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('disconnect', (session, reason) => events.push(`disconnect ${session.id} ${reason}`));
    await app.connect();
    await waitFor(() => events.length >= 3, 'the resyncs after the refusal');
    expect(events).toEqual(['synced 1', 'synced 1', 'synced 1']);
    // Attempts start over at each synced.
    expect(attempts).toEqual([[1, 50], [2, 0], [2, 50], [1, 50]]);
    // Link 4 gave maxFrameBytes again, and the list would fit: still, after a refusal, never again.
    expect(hellos.map((hello) => hello['known'])).toEqual([undefined, ['u1'], undefined, undefined, undefined]);
    expect(errors.map((error) => error.code)).toEqual(['IMI_BAD_FRAME']);
    expect(app.status).toBe('up');
  });

  it('IMI_AUTH in answer to a hello naming users is fatal, as for any hello: not retried', async () => {
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        firstLink(socket);
      } else {
        socket.write('{"param":"error","data":{"code":"IMI_AUTH","message":"wrong token"},"txn_id":"e"}\n');
      }
    });
    const { app } = makeClient({ port, reconnect: () => 10 }, 50);
    let closedWith: string | undefined;
    app.on('close', (reason) => (closedWith = reason?.code));
    await app.connect();
    await waitFor(() => closedWith !== undefined, 'the client to give up');
    expect(closedWith).toBe('IMI_AUTH');
    expect(hellos.map((hello) => hello['known'])).toEqual([undefined, ['u1']]);
  });

  it('a hello naming users that is never answered (an older intermediary on the port) is given up after 10 × legacySyncWaitMs; the next link, at once, names nobody', async () => {
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) firstLink(socket);
      // Later links: an intermediary that says nothing to a hello, like the original Perl one with nobody online.
    });
    const causes: string[] = [];
    const delays: number[] = [];
    const { app } = makeClient({ port, legacySyncWaitMs: 50, reconnect: () => 100 });
    app.on('reconnecting', (_attempt, delay, cause) => {
      causes.push(cause.message);
      delays.push(delay);
    });
    const events: string[] = [];
    app.on('synced', (count) => events.push(`synced ${count}`));
    app.on('disconnect', (session, reason) => events.push(`disconnect ${session.id} ${reason}`));
    await app.connect();
    // The third link is served as a legacy intermediary's: who it announced (nobody) is who is online.
    await waitFor(() => events.length >= 3, 'the legacy resync of the third link');
    expect(hellos.map((hello) => hello['known'])).toEqual([undefined, ['u1'], undefined]);
    expect(causes[1]).toMatch(/no synced, and no message for 500 ms, after a hello naming 1 users/);
    expect(delays.slice(0, 2)).toEqual([100, 0]);
    expect(events).toEqual(['synced 1', 'disconnect u1 gone', 'synced 0']);
  });

  it('a hello naming users answered by a legacy connect (no connectedAt: an original Perl intermediary) is given up at once; the next link names nobody', async () => {
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        firstLink(socket);
      } else {
        // What the Perl intermediary does on every link: everyone online, as they connect, and never synced.
        socket.write(connectFrame('u1').replace(',"connectedAt":1795600000000', ''));
      }
    });
    const causes: string[] = [];
    const { app } = makeClient({ port, legacySyncWaitMs: 100, reconnect: () => 100 });
    app.on('reconnecting', (_attempt, _delay, cause) => causes.push(cause.message));
    const synced: number[] = [];
    app.on('synced', (count) => synced.push(count));
    await app.connect();
    await waitFor(() => synced.length >= 2, 'the legacy resync of the third link');
    expect(hellos.map((hello) => hello['known'])).toEqual([undefined, ['u1'], undefined]);
    expect(causes[1]).toMatch(/a connect without connectedAt answered a hello naming users/);
    expect(synced).toEqual([1, 1]);
    expect([...app.sessions.keys()]).toEqual(['u1']);
  });

  it(`a session id longer than MAX_KNOWN_ID_LENGTH (${MAX_KNOWN_ID_LENGTH}) is not named, nor is anyone: the intermediary would refuse the list`, async () => {
    const long = 'x'.repeat(MAX_KNOWN_ID_LENGTH + 1);
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      socket.write(connectFrame('u1') + connectFrame(long) + `{"param":"synced","data":{"count":2,"maxFrameBytes":1048576},"txn_id":"s${link}"}\n`);
      if (link === 1) setTimeout(() => socket.destroy(), 30);
    });
    const { app, errors } = makeClient({ port, reconnect: () => 10 }, 50);
    const synced: number[] = [];
    app.on('synced', (count) => synced.push(count));
    await app.connect();
    await waitFor(() => synced.length >= 2, 'the second resync');
    expect(hellos.map((hello) => hello['known'])).toEqual([undefined, undefined]);
    expect(errors).toEqual([]);
  });

  it(`names every session up to MAX_KNOWN_IN_HELLO (${MAX_KNOWN_IN_HELLO}) and none past it`, async () => {
    // Link 1 announces MAX users, link 2 one more (with known: true); each then ends; link 3 is only read.
    const { port, hellos } = await bareIntermediary((link, _hello, socket) => {
      if (link === 1) {
        let frames = '';
        for (let i = 0; i < MAX_KNOWN_IN_HELLO; i++) frames += connectFrame(`u${i}`);
        socket.write(frames + `{"param":"synced","data":{"count":${MAX_KNOWN_IN_HELLO},"maxFrameBytes":1048576},"txn_id":"s1"}\n`);
      } else if (link === 2) {
        socket.write(connectFrame(`u${MAX_KNOWN_IN_HELLO}`) + `{"param":"synced","data":{"count":${MAX_KNOWN_IN_HELLO + 1},"known":true,"maxFrameBytes":1048576},"txn_id":"s2"}\n`);
      } else {
        return;
      }
      setTimeout(() => socket.destroy(), 50);
    });
    const { app } = makeClient({ port, reconnect: () => 10 }, 50);
    const synced: number[] = [];
    app.on('synced', (count) => synced.push(count));
    await app.connect();
    await waitFor(() => synced.length === 2, 'two resyncs', 30_000);
    expect(synced).toEqual([MAX_KNOWN_IN_HELLO, MAX_KNOWN_IN_HELLO + 1]);
    // The second resync kept the users its hello named: none was taken for gone.
    expect(app.sessions.size).toBe(MAX_KNOWN_IN_HELLO + 1);
    await waitFor(() => hellos.length === 3, 'the third link', 30_000);
    expect(hellos[0]!['known']).toBeUndefined();
    expect(hellos[1]!['known']).toHaveLength(MAX_KNOWN_IN_HELLO);
    expect(hellos[2]!['known']).toBeUndefined();
  });
});
