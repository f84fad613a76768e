// Resume tokens for WebSocket users (imi.v1), over real sockets: a user
// whose TCP connection is cut comes back with its token within
// wsResumeWindowMs and goes on in the same session — the app sees no
// disconnect, the output it missed is replayed once, the line it sent into
// the void is resent — and bad, reused or expired tokens are refused with a
// close code and counted.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { IntermediaryOptions } from '@imi/server';
import { sleep, testScope, waitFor, type RawApp } from './harness.js';
import { ResumingWsUser, dropWsUsers } from './ws-resume-harness.js';

const scope = testScope();
afterEach(() => dropWsUsers());

async function start(options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ listeners: [{ kind: 'ws', port: 0 }], ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  const url = `ws://127.0.0.1:${ports.listeners[1]!.port}/`;
  return { imi, app, url };
}

function inputs(app: RawApp, id: string): string[] {
  return app.of('input').filter((frame) => frame.data['id'] === id).map((frame) => frame.data['value'] as string);
}

function disconnects(app: RawApp): Array<{ id: unknown; reason: unknown }> {
  return app.of('disconnect').map((frame) => ({ id: frame.data['id'], reason: frame.data['reason'] }));
}

/** Opens a connection that presents `token` and resolves with how it was closed. */
async function presentToken(url: string, token: string, received = 0): Promise<{ code: number; reason: string }> {
  const ws = new WebSocket(url, ['imi.v1', 'imi.resume']);
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send(Buffer.from(JSON.stringify({ type: 'resume', token, received })));
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  return { code, reason: String(reason) };
}

describe('WebSocket resume tokens', () => {
  it('a cut connection resumes within the window: same session, no disconnect at the app, missed output replayed once, the lost line resent', async () => {
    const { imi, app, url } = await start();
    const user = await ResumingWsUser.connect('u', url);
    const id = await app.nextUserId();
    expect(user.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(user.controls[0]).toEqual({ type: 'session', token: user.token, resumeWindowMs: 60_000 });
    user.type('a');
    app.output(id, 'one');
    await waitFor(() => inputs(app, id).length === 1 && user.messages.length === 1, 5000, 'a and one');

    // A line sent into a connection that is cut before it leaves never reaches the server.
    user.typeIntoTheVoid('lost?');
    await waitFor(() => user.closes.length === 1, 5000, 'the cut');
    app.output(id, 'two');
    app.output(id, 'three');
    await waitFor(() => user.resumes === 1, 5000, 'the resume');
    user.type('b');
    await waitFor(() => inputs(app, id).length === 3, 5000, () => `three inputs (${JSON.stringify(inputs(app, id))})`);
    await app.barrier();

    expect(inputs(app, id)).toEqual(['a', 'lost?', 'b']);
    expect(user.messages).toEqual(['one', 'two', 'three']);
    expect(disconnects(app)).toEqual([]);
    expect(app.of('connect')).toHaveLength(1);
    // The token was rotated: the one presented is spent.
    expect(user.tokens).toHaveLength(2);
    expect(user.tokens[1]).not.toBe(user.tokens[0]);
    const resumed = user.controls.find((control) => control['resumed'] === true)!;
    expect(resumed).toMatchObject({ type: 'session', resumed: true, received: 1, resumeWindowMs: 60_000 });
    expect([...imi.sessions()].map((session) => session.id)).toEqual([id]);
    expect(imi.stats().errors['IMI_WS_RESUME_REFUSED'] ?? 0).toBe(0);
  });

  it('a spent token and a wrong token are refused (4001), counted, and leave the session alone', async () => {
    const { imi, app, url } = await start();
    const user = await ResumingWsUser.connect('u', url);
    const id = await app.nextUserId();
    const first = user.token!;
    user.cut();
    await waitFor(() => user.resumes === 1, 5000, 'the resume');

    expect(await presentToken(url, first)).toEqual({ code: 4001, reason: 'unknown, expired or used token' });
    expect(await presentToken(url, randomBytes(32).toString('base64url'))).toMatchObject({ code: 4001 });
    expect(await presentToken(url, 'short')).toMatchObject({ code: 4001 });
    // Not a resume message at all.
    const garbage = new WebSocket(url, ['imi.v1', 'imi.resume']);
    garbage.on('error', () => {});
    await once(garbage, 'open');
    garbage.send('hello');
    expect(((await once(garbage, 'close')) as [number])[0]).toBe(4003);

    expect(imi.stats().errors['IMI_WS_RESUME_REFUSED']).toBe(4);
    // The session goes on, on the connection that resumed it.
    user.type('still here');
    await waitFor(() => inputs(app, id).includes('still here'), 5000, 'the line');
    expect(user.closes).toHaveLength(1);
    expect(disconnects(app)).toEqual([]);
    expect(app.of('connect')).toHaveLength(1);
  });

  it('a client presenting the token of a live session takes it over (the old link was dead to it)', async () => {
    const { app, url } = await start();
    const user = await ResumingWsUser.connect('u', url, { autoResume: false });
    const id = await app.nextUserId();
    app.output(id, 'one');
    await waitFor(() => user.messages.length === 1, 5000, 'one');
    const old = user.ws;
    const fresh = user.open(true);
    await waitFor(() => user.resumes === 1, 5000, 'the takeover');
    await waitFor(() => old.readyState === WebSocket.CLOSED, 5000, 'the old connection to be dropped');
    expect(fresh.readyState).toBe(WebSocket.OPEN);
    app.output(id, 'two');
    user.type('on the new one');
    await waitFor(() => user.messages.length === 2 && inputs(app, id).length === 1, 5000, 'traffic on the new connection');
    expect(user.messages).toEqual(['one', 'two']);
    expect(disconnects(app)).toEqual([]);
  });

  it('a session nobody resumes ends when the window does: the app hears disconnect (timeout), not before', async () => {
    const { imi, app, url } = await start({ wsResumeWindowMs: 400 });
    const user = await ResumingWsUser.connect('u', url, { autoResume: false });
    const id = await app.nextUserId();
    const token = user.token!;
    user.cut();
    await waitFor(() => user.closed, 5000, 'the cut');
    await sleep(200);
    expect(disconnects(app)).toEqual([]);
    expect(imi.session(id)).toBeDefined();
    await app.waitForFrame((frame) => frame.param === 'disconnect', 3000, 'the disconnect');
    expect(disconnects(app)).toEqual([{ id, reason: 'timeout' }]);
    expect(imi.session(id)).toBeUndefined();
    // Its token died with it.
    expect(await presentToken(url, token)).toMatchObject({ code: 4001 });
  });

  it('a normal close (1000) ends the session at once; wsResumeWindowMs 0 turns resumes off', async () => {
    const { app, url } = await start();
    const user = await ResumingWsUser.connect('u', url);
    const id = await app.nextUserId();
    user.leave();
    await app.waitForFrame((frame) => frame.param === 'disconnect', 3000, 'the disconnect');
    expect(disconnects(app)).toEqual([{ id, reason: 'closed' }]);

    const off = await start({ wsResumeWindowMs: 0 });
    const plain = new WebSocket(off.url, ['imi.v1']);
    const controls: string[] = [];
    plain.on('message', (data: WebSocket.RawData, binary: boolean) => binary && controls.push(String(data)));
    await once(plain, 'open');
    const offId = await off.app.nextUserId();
    (plain as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await off.app.waitForFrame((frame) => frame.param === 'disconnect', 3000, 'the disconnect');
    expect(disconnects(off.app)).toEqual([{ id: offId, reason: 'closed' }]);
    expect(controls).toEqual([]);
  });

  it('output past wsResumeBufferBytes while disconnected closes the session at once (closed, IMI_LIMIT); output the client missed but no longer kept refuses the resume (4002)', async () => {
    const { imi, app, url } = await start({ wsResumeBufferBytes: 100 });
    const user = await ResumingWsUser.connect('u', url, { autoResume: false });
    const id = await app.nextUserId();
    user.cut();
    await waitFor(() => user.closed, 5000, 'the cut');
    app.output(id, 'x'.repeat(60));
    await app.barrier();
    expect(disconnects(app)).toEqual([]);
    app.output(id, 'y'.repeat(60));
    await app.waitForFrame((frame) => frame.param === 'disconnect', 3000, 'the disconnect');
    expect(disconnects(app)).toEqual([{ id, reason: 'closed' }]);
    expect(imi.stats().limits['wsResumeBufferBytes']).toBe(1);

    // Connected, the log keeps only the last 100 bytes: a client that got none of it cannot be made whole.
    const other = await ResumingWsUser.connect('v', url, { autoResume: false });
    const otherId = await app.nextUserId(1);
    for (let i = 0; i < 5; i++) app.output(otherId, `${i}`.repeat(40));
    await waitFor(() => other.messages.length === 5, 5000, 'five messages');
    const token = other.token!;
    other.cut();
    await waitFor(() => other.closed, 5000, 'the cut');
    expect(await presentToken(url, token, 0)).toEqual({ code: 4002, reason: 'missed output no longer kept' });
    await app.waitForFrame((frame) => frame.param === 'disconnect' && frame.data['id'] === otherId, 3000, 'the disconnect');
    expect(imi.stats().errors['IMI_WS_RESUME_REFUSED']).toBe(1);
  });

  it('acknowledged output is not replayed; a binary message that is not a control message is counted (IMI_WS_BAD_CONTROL) and ignored', async () => {
    const { imi, app, url } = await start();
    const user = await ResumingWsUser.connect('u', url, { autoResume: false });
    const id = await app.nextUserId();
    app.output(id, 'one');
    app.output(id, 'two');
    await waitFor(() => user.messages.length === 2, 5000, 'two messages');
    user.sendControl({ type: 'ack', received: 2 });
    user.ws.send(Buffer.from('not json'));
    user.type('line');
    await waitFor(() => inputs(app, id).length === 1, 5000, 'the line');
    expect(inputs(app, id)).toEqual(['line']);
    expect(imi.stats().errors['IMI_WS_BAD_CONTROL']).toBe(1);
    user.cut();
    await waitFor(() => user.closed, 5000, 'the cut');
    // Asking for messages it acknowledged: they are gone (4002), which proves the ack freed them.
    expect((await presentToken(url, user.token!, 1)).code).toBe(4002);
  });
});
