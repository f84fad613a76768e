// Users who half-close (`printf 'look\r\n' | nc`, `nc -q1`, scripted
// clients): their last line, even without a line end, reaches the app, and
// the app's answer reaches them before their session closes.
import { describe, expect, it } from 'vitest';
import { sleep, testScope, waitFor, withAppAndUser } from './harness.js';
import { TelnetPeer } from './transport-harness.js';

const scope = testScope();

describe('a user who half-closes (TCP)', () => {
  it('gets the reply to their last line before the session closes; the app hears "closed" after its reply', async () => {
    // A long grace: the close must come from the answer, not from the timer.
    const { imi, app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 });
    user.send('look');
    user.socket.end(); // FIN: nothing more to send, still reading
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('look');
    await sleep(100); // a slow app: the user is still there
    expect(app.of('disconnect')).toEqual([]);
    expect(imi.stats().sessions).toBe(1);
    app.output(id, 'A dark hall.\r\n');
    await user.waitFor('A dark hall.\r\n');
    const [disconnect] = await app.waitForParam('disconnect', 1, 2000);
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
    await user.waitClosed();
    expect(imi.stats().sessions).toBe(0);
  });

  it('an unterminated last line ("look" then FIN) is delivered', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 });
    user.write('say hi\r\nlook');
    user.socket.end();
    await app.waitForParam('input', 2);
    expect(app.of('input').map((f) => f.data['value'])).toEqual(['say hi', 'look']);
    app.output(id, 'Hi.\r\n');
    await user.waitFor('Hi.\r\n');
    // A legacy app (no acks): the first output after the last line is the answer.
    await app.waitForParam('disconnect', 1, 2000);
    await user.waitClosed();
  });

  it('an acking app: the session stays until every line of the user is acked', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 }, { name: 'acking', acks: true });
    user.send('first');
    user.send('second');
    user.socket.end();
    await app.waitForParam('input', 2);
    const [first, second] = app.of('input');
    app.output(id, 'one\r\n', { ack: first!.seq });
    await user.waitFor('one\r\n');
    await app.barrier();
    await sleep(50);
    expect(imi.session(id)).toBeDefined(); // "second" is not answered yet
    expect(app.of('disconnect')).toEqual([]);
    app.output(id, 'two\r\n', { ack: second!.seq });
    await user.waitFor('two\r\n');
    const [disconnect] = await app.waitForParam('disconnect', 1, 2000);
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
  });

  it('an acking app that acks a line without output has answered it', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 }, { name: 'acking', acks: true });
    user.send('save');
    await app.waitForParam('input');
    app.send({ param: 'ack', data: { seq: app.of('input')[0]!.seq } }); // answered with silence
    await app.barrier();
    user.socket.end();
    const [disconnect] = await app.waitForParam('disconnect', 1, 2000);
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
    await user.waitClosed();
  });

  it('an app that never answers: the session closes after halfCloseGraceMs', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 300 });
    user.send('quit');
    const ended = Date.now();
    user.socket.end();
    await app.waitForParam('input');
    const [disconnect] = await app.waitForParam('disconnect', 1, 3000);
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
    expect(Date.now() - ended).toBeGreaterThanOrEqual(250);
    await user.waitClosed();
  });

  it('a user with nothing unanswered who half-closes leaves at once', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 });
    user.send('hello');
    await app.waitForParam('input');
    app.output(id, 'Hello!\r\n');
    await user.waitFor('Hello!\r\n');
    user.socket.end();
    const [disconnect] = await app.waitForParam('disconnect', 1, 2000);
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
  });

  it('while no app is connected: queued input reaches an app back within the grace, which answers it', async () => {
    const { ports, app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 }, { name: 'first', instance: 'a' });
    app.destroy();
    await app.waitClosed();
    await sleep(50);
    user.send('look');
    user.socket.end();
    await sleep(100);
    const next = await scope.app(ports.clientPort, { name: 'second', instance: 'b' });
    const input = await next.waitForFrame((f) => f.param === 'input', 5000, 'the queued line');
    expect(input.data).toMatchObject({ id, value: 'look' });
    next.output(id, 'You are back.\r\n');
    await user.waitFor('You are back.\r\n');
    await next.waitForParam('disconnect', 1, 2000);
    await user.waitClosed();
  });

  it('while no app is connected: past the grace, the session closes and its queued input is counted as dropped (userGone)', async () => {
    const { imi, app, user } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 200 });
    app.destroy();
    await app.waitClosed();
    await sleep(50);
    user.send('look');
    user.socket.end();
    await user.waitClosed(3000);
    await waitFor(() => imi.stats().sessions === 0);
    expect(imi.stats().dropped.userGone).toBe(1);
  });
});

describe('a user who half-closes (telnet)', () => {
  it('gets the reply to their last line, unterminated or not, before the session closes', async () => {
    const { ports } = await scope.start({ appDownNotice: false, halfCloseGraceMs: 30_000, listeners: [{ kind: 'telnet', port: 0, negotiationMs: 100 }] });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    const user = await TelnetPeer.connect(ports.listeners[1]!.port);
    try {
      const id = await app.nextUserId();
      user.socket.write('look\r\nexamine sign');
      user.socket.end();
      await app.waitForParam('input', 2);
      expect(app.of('input').map((f) => f.data['value'])).toEqual(['look', 'examine sign']);
      await sleep(100);
      expect(app.of('disconnect')).toEqual([]);
      app.output(id, 'It says: welcome.\r\n');
      await user.waitFor('It says: welcome.\r\n');
      const [disconnect] = await app.waitForParam('disconnect', 1, 2000);
      expect(disconnect!.data).toEqual({ id, reason: 'closed' });
      await user.waitClosed();
    } finally {
      user.socket.destroy();
    }
  });

  it('a FIN during the opening negotiation: the line is delivered once the user is announced', async () => {
    const { ports } = await scope.start({ appDownNotice: false, halfCloseGraceMs: 30_000, listeners: [{ kind: 'telnet', port: 0, negotiationMs: 300 }] });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    // netcat on a telnet port: answers no negotiation, so the user waits negotiationMs to be announced.
    const user = await TelnetPeer.connect(ports.listeners[1]!.port, { answer: false });
    try {
      user.socket.write('who');
      user.socket.end();
      const id = await app.nextUserId();
      const input = await app.waitForFrame((f) => f.param === 'input', 2000, 'the line');
      expect(input.data).toMatchObject({ id, value: 'who' });
      app.output(id, 'Nobody.\r\n');
      await user.waitFor('Nobody.\r\n');
      await app.waitForParam('disconnect', 1, 2000);
    } finally {
      user.socket.destroy();
    }
  });
});
