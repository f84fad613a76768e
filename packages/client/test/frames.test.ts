/**
 * Wire-level tests: the raw frames the client writes, read through a
 * recording proxy, and its socket writes, recorded by wrapping
 * `Socket.prototype.write` (the bytes still go out for real).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type ClientOptions } from '../src/index.js';
import { LinkProxy, User, onCleanup, runCleanups, startImi, waitFor, type Frame, type ImiOptions } from './helpers.js';

afterEach(runCleanups);

/** Records every write() the client makes on its socket to `port`. */
function spyWrites(port: number): string[] {
  const writes: string[] = [];
  const original = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    if (this.remotePort === port) writes.push(String(args[0]));
    return (original as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof original;
  onCleanup(() => {
    net.Socket.prototype.write = original;
  });
  return writes;
}

async function setup(clientOptions: ClientOptions = {}, imiOptions: ImiOptions = {}) {
  const { externalPort, clientPort } = await startImi(imiOptions);
  const proxy = await LinkProxy.start(clientPort);
  const writes = spyWrites(proxy.port);
  const app = new Client({ port: proxy.port, tickIntervalMs: 0, ...clientOptions });
  const errors: Error[] = [];
  app.on('error', (error) => errors.push(error));
  onCleanup(() => app.close());
  return { app, proxy, writes, errors, externalPort };
}

async function connectUser(app: Client, externalPort: number): Promise<{ user: User; id: string }> {
  const known = new Set(app.sessions.keys());
  const user = await User.connect(externalPort);
  await waitFor(() => [...app.sessions.keys()].some((id) => !known.has(id)), 'session');
  const id = [...app.sessions.keys()].find((key) => !known.has(key))!;
  return { user, id };
}

function outputsTo(frames: Frame[], id: string): Frame[] {
  return frames.filter((frame) => frame.param === 'output' && frame.data?.['id'] === id);
}

describe('wire frames', () => {
  it('says hello first, with protocol, token, acks, name and instance', async () => {
    const { app, proxy } = await setup({ token: 's3cret', name: 'frames-test' }, { token: 's3cret' });
    await app.connect();
    const first = proxy.appFrames.frames[0]!;
    expect(first.param).toBe('hello');
    expect(first.data).toEqual({ protocol: 1, token: 's3cret', acks: true, name: 'frames-test', instance: app.instanceId });
  });

  it('puts the ack on the reply frame itself, in the same write', async () => {
    const { app, proxy, writes, externalPort, errors } = await setup();
    app.hooks.buildResponse.tap('Echo', (_reply, _session, line) => `echo ${line}\r\n`);
    await app.connect();
    const { user, id } = await connectUser(app, externalPort);
    user.line('hi');
    await user.waitFor('echo hi\r\n');
    const input = proxy.imiFrames.of('input')[0]!;
    expect(typeof input.seq).toBe('number');
    const [reply] = outputsTo(proxy.appFrames.frames, id);
    expect(reply!.data!['value']).toBe('echo hi\r\n');
    expect(reply!.ack).toBe(input.seq);
    // No separate ack frame for that input.
    expect(proxy.appFrames.of('ack').filter((frame) => frame.data?.['seq'] === input.seq)).toEqual([]);
    const write = writes.find((chunk) => chunk.includes('echo hi'));
    expect(write).toContain(`"ack":${input.seq}}`);
    expect(errors).toEqual([]);
  });

  it('sends a lone ack frame for an input that produced nothing', async () => {
    const { app, proxy, externalPort, errors } = await setup();
    let seen = false;
    app.on('input', () => {
      seen = true;
    });
    await app.connect();
    const { user } = await connectUser(app, externalPort);
    user.line('quiet');
    await waitFor(() => seen, 'input');
    await waitFor(() => proxy.imiFrames.of('input').length === 1, 'input frame recorded');
    const seq = proxy.imiFrames.of('input')[0]!.seq;
    await waitFor(() => proxy.appFrames.of('ack').some((frame) => frame.data?.['seq'] === seq), 'lone ack');
    const ack = proxy.appFrames.of('ack').find((frame) => frame.data?.['seq'] === seq)!;
    expect(Object.keys(ack).sort()).toEqual(['data', 'param']);
    expect(errors).toEqual([]);
  });

  it('acks a connect together with the welcome its handler sent', async () => {
    const { app, proxy, externalPort } = await setup();
    app.on('connect', (session) => session.send('Welcome!\r\n'));
    await app.connect();
    const { user, id } = await connectUser(app, externalPort);
    await user.waitFor('Welcome!\r\n');
    const connect = proxy.imiFrames.of('connect')[0]!;
    expect(outputsTo(proxy.appFrames.frames, id)[0]!.ack).toBe(connect.seq);
  });

  it('writes everything a handler sent, across awaits and users, in one write ending with the ack', async () => {
    const { app, proxy, writes, externalPort } = await setup();
    await app.connect();
    const { id: otherId, user: other } = await connectUser(app, externalPort);
    app.on('input', async (session, line) => {
      session.send('one\r\n');
      await new Promise((resolve) => setTimeout(resolve, 5));
      session.setState({ last: line });
      app.send(otherId, `${session.id.slice(0, 4)} said ${line}\r\n`);
      await new Promise((resolve) => setImmediate(resolve));
      app.broadcast('news\r\n', { except: [otherId] });
    });
    const { user } = await connectUser(app, externalPort);
    user.line('hello');
    await user.waitFor('news\r\n');
    await other.waitFor('said hello');
    const seq = proxy.imiFrames.of('input')[0]!.seq;
    const batch = writes.filter((chunk) => chunk.includes('one\\r\\n') || chunk.includes('said hello') || chunk.includes('news'));
    expect(batch).toHaveLength(1);
    const lines = batch[0]!.trimEnd().split('\n').map((line) => JSON.parse(line) as Frame);
    expect(lines.map((frame) => frame.param)).toEqual(['output', 'state', 'output', 'broadcast']);
    expect(lines.map((frame) => frame.ack)).toEqual([undefined, undefined, undefined, seq]);
  });

  it('coalesces what is sent in one event-loop turn into one write', async () => {
    const { app, writes, externalPort } = await setup();
    await app.connect();
    const { user, id } = await connectUser(app, externalPort);
    const before = writes.length;
    app.send(id, 'a');
    app.send(id, 'b');
    app.multisend([id, id], 'c');
    await user.waitFor('abcc');
    const after = writes.slice(before).filter((chunk) => chunk.includes('"output"'));
    expect(after).toHaveLength(1);
    expect(after[0]!.match(/"output"/g)).toHaveLength(4);
  });

  it('holds a finished reply until earlier input is done, then sends both with one ack', async () => {
    const { app, proxy, externalPort } = await setup({ maxReplyHoldMs: Number.POSITIVE_INFINITY });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let fastDone = false;
    app.on('input', async (session, line) => {
      if (line === 'slow') await gate;
      session.send(`${line} done\r\n`);
      if (line === 'fast') fastDone = true;
    });
    await app.connect();
    const a = await connectUser(app, externalPort);
    const b = await connectUser(app, externalPort);
    a.user.line('slow');
    await waitFor(() => proxy.imiFrames.of('input').length === 1, 'slow input');
    b.user.line('fast');
    await waitFor(() => fastDone, 'fast handler done');
    release();
    await b.user.waitFor('fast done\r\n');
    await a.user.waitFor('slow done\r\n');
    const [slowSeq, fastSeq] = proxy.imiFrames.of('input').map((frame) => frame.seq);
    const outputs = proxy.appFrames.of('output');
    expect(outputs.map((frame) => frame.data!['value'])).toEqual(['slow done\r\n', 'fast done\r\n']);
    expect(outputs.map((frame) => frame.ack)).toEqual([undefined, fastSeq]);
    expect(fastSeq).toBe(slowSeq! + 1);
  });

  it('with maxReplyHoldMs 0, sends a finished reply at once and its ack once earlier input is done', async () => {
    const { app, proxy, externalPort } = await setup({ maxReplyHoldMs: 0 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    app.on('input', async (session, line) => {
      if (line === 'slow') await gate;
      session.send(`${line} done\r\n`);
    });
    await app.connect();
    const a = await connectUser(app, externalPort);
    const b = await connectUser(app, externalPort);
    a.user.line('slow');
    await waitFor(() => proxy.imiFrames.of('input').length === 1, 'slow input');
    b.user.line('fast');
    await b.user.waitFor('fast done\r\n');
    expect(a.user.received).toBe('');
    release();
    await a.user.waitFor('slow done\r\n');
    const [, fastSeq] = proxy.imiFrames.of('input').map((frame) => frame.seq);
    const outputs = proxy.appFrames.of('output');
    expect(outputs.map((frame) => frame.data!['value'])).toEqual(['fast done\r\n', 'slow done\r\n']);
    expect(outputs.map((frame) => frame.ack)).toEqual([undefined, fastSeq]);
  });

  it('answers every ping with a pong carrying the same ts, and stays connected past the heartbeat timeout', async () => {
    const { app, proxy } = await setup({}, { heartbeatIntervalMs: 20, heartbeatTimeoutMs: 200 });
    const downs: Error[] = [];
    app.on('linkDown', (reason) => downs.push(reason));
    await app.connect();
    await waitFor(() => proxy.imiFrames.of('ping').length >= 15, '15 pings (300 ms > the 200 ms timeout)');
    await waitFor(() => proxy.appFrames.of('pong').length >= 15, '15 pongs');
    const pings = proxy.imiFrames.of('ping').slice(0, 15).map((frame) => frame.data!['ts']);
    const pongs = proxy.appFrames.of('pong').slice(0, 15).map((frame) => frame.data!['ts']);
    expect(pongs).toEqual(pings);
    expect(downs).toEqual([]);
    expect(proxy.connections).toBe(1);
  });

  it('with acks off: says so in hello and never acks', async () => {
    const { app, proxy, externalPort } = await setup({ acks: false });
    app.hooks.buildResponse.tap('Echo', (_reply, _session, line) => `${line}\r\n`);
    await app.connect();
    const { user } = await connectUser(app, externalPort);
    user.line('x');
    user.line('y');
    await user.waitFor('x\r\ny\r\n');
    expect(proxy.appFrames.frames[0]!.data!['acks']).toBe(false);
    expect(proxy.imiFrames.of('input').every((frame) => frame.seq === undefined)).toBe(true);
    expect(proxy.appFrames.frames.some((frame) => frame.ack !== undefined || frame.param === 'ack')).toBe(false);
  });
});
