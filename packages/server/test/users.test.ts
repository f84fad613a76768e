// The user side: raw TCP sockets typing lines and reading what the app
// writes back.
import { describe, expect, it } from 'vitest';
import { count, pendingInputBytes, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();

function values(frames: { data: Record<string, unknown> }[]): unknown[] {
  return frames.map((f) => f.data['value']);
}

describe('lines from users', () => {
  it('splits on LF and on CRLF, and strips the end of line', async () => {
    const { app, user } = await withAppAndUser(scope);
    user.write('one\ntwo\r\nthree\r\n');
    const inputs = await app.waitForParam('input', 3);
    expect(values(inputs)).toEqual(['one', 'two', 'three']);
  });

  it('delivers an empty line as an empty value (the user pressed enter)', async () => {
    const { app, user } = await withAppAndUser(scope);
    user.write('\r\n\nx\n');
    const inputs = await app.waitForParam('input', 3);
    expect(values(inputs)).toEqual(['', '', 'x']);
  });

  it('keeps a CR that is not part of the end of line', async () => {
    const { app, user } = await withAppAndUser(scope);
    user.write('a\rb\n');
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('a\rb');
  });

  it('joins a line that arrives in many chunks, a € byte by byte included', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    const bytes = Buffer.from('prix 5€ ok');
    for (let i = 0; i < bytes.length; i++) {
      user.write(bytes.subarray(i, i + 1));
      // The intermediary has read this byte on its own before the next is sent.
      await waitFor(() => pendingInputBytes(imi, id) === i + 1, 5000, `byte ${i + 1} to be read`);
    }
    user.write('\r\n');
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('prix 5€ ok');
    expect(input!.data['value']).not.toContain('\ufffd');
  });

  it('does not hold a line that ends in the same chunk as the next begins', async () => {
    const { app, user } = await withAppAndUser(scope);
    user.write('first\r\nsec');
    await app.waitForParam('input');
    user.write('ond\r\n');
    const inputs = await app.waitForParam('input', 2);
    expect(values(inputs)).toEqual(['first', 'second']);
  });
});

describe('lines over maxLineBytes', () => {
  it('cuts the line, tells the user, keeps the connection, and counts it in stats().limits', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxLineBytes: 16 });
    user.send('a'.repeat(40));
    const [cut] = await app.waitForParam('input');
    expect(cut!.data).toEqual({ id, value: 'a'.repeat(16) });
    await user.waitFor('was too long and was cut to 16 bytes');
    user.send('next');
    const inputs = await app.waitForParam('input', 2);
    expect(inputs[1]!.data['value']).toBe('next');
    expect(user.closed).toBe(false);
    expect(imi.stats().limits['maxLineBytes']).toBe(1);
    expect(imi.stats().errors.IMI_LIMIT).toBe(1);
  });

  it('cuts at a character boundary (no half €)', async () => {
    const { app, user } = await withAppAndUser(scope, { maxLineBytes: 10 });
    user.send('abcdefghi€€'); // the first € spans bytes 10-12
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('abcdefghi');
  });

  it('a line of exactly maxLineBytes is not cut, whether it ends in LF or CRLF', async () => {
    const { imi, app, user } = await withAppAndUser(scope, { maxLineBytes: 5 });
    user.write('abcde\n');
    user.write('fghij\r\n');
    user.write('€ab\r\n'); // 5 bytes
    const inputs = await app.waitForParam('input', 3);
    expect(values(inputs)).toEqual(['abcde', 'fghij', '€ab']);
    await app.barrier();
    expect(imi.stats().limits['maxLineBytes']).toBeUndefined();
    expect(user.received).not.toContain('too long');
  });

  it('holds at most maxLineBytes of a huge line, however much arrives', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxLineBytes: 1024 });
    user.write('x'.repeat(64 * 1024));
    await waitFor(() => pendingInputBytes(imi, id) === 1024, 5000, 'the first 1024 bytes to be held');
    user.write('y'.repeat(64 * 1024) + '\n');
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('x'.repeat(1024));
    expect(pendingInputBytes(imi, id)).toBe(0);
    expect(imi.stats().inputBytes).toBe(128 * 1024); // the line's bytes, end of line excluded
  });

  it('lineTooLongNotice: false cuts silently', async () => {
    const { app, user, id } = await withAppAndUser(scope, { maxLineBytes: 4, lineTooLongNotice: false, appDownNotice: false });
    user.send('123456');
    await app.waitForParam('input');
    app.output(id, '|end');
    await user.waitFor('|end');
    expect(user.received).toBe('|end');
  });
});

describe('output to users', () => {
  it('writes 4-byte characters and control bytes verbatim', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    const text = '🐉 \u001b[1mbold\u001b[0m\x07\r\n';
    app.output(id, text);
    await user.waitFor('\r\n');
    expect(user.bytes.equals(Buffer.from(text, 'utf8'))).toBe(true);
  });

  it('a user who reads gets a burst of output bigger than maxOutputBufferBytes and stays connected', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxOutputBufferBytes: 64 * 1024 });
    const piece = 'z'.repeat(16 * 1024);
    // One batch: eight outputs handled in one turn, 128 KiB for one user.
    app.send(Array.from({ length: 8 }, (_, i) => ({ param: 'output', data: { id, value: piece + String(i) } })));
    await user.waitFor(piece + '7');
    expect(user.received.length).toBe(8 * (piece.length + 1));
    expect(user.closed).toBe(false);
    expect(imi.session(id)).toBeDefined();
    expect(imi.stats().limits['maxOutputBufferBytes']).toBeUndefined();
  });

  it('a user who does not read is disconnected once maxOutputBufferBytes wait for them (reason "slow")', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxOutputBufferBytes: 64 * 1024 });
    user.socket.pause();
    const piece = 'q'.repeat(512 * 1024);
    // Kernel buffers on loopback absorb a few MiB first; keep writing until the intermediary gives up.
    let sent = 0;
    while (imi.session(id) !== undefined && sent < 64) {
      app.output(id, piece);
      sent++;
      await app.barrier();
    }
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id, reason: 'slow' });
    expect(imi.stats().limits['maxOutputBufferBytes']).toBe(1);
  });
});

describe('users leaving', () => {
  it('a connection reset is reason "error"', async () => {
    const { ports, app } = await withAppAndUser(scope);
    const resetter = await scope.user(ports.externalPort);
    const resetId = await app.nextUserId(1);
    resetter.socket.resetAndDestroy();
    const [reset] = await app.waitForParam('disconnect');
    expect(reset!.data).toEqual({ id: resetId, reason: 'error' });
  });

  it('a user who half-closes: their last line is delivered, the reply reaches them, then disconnect with reason "closed"', async () => {
    const { app, user, id } = await withAppAndUser(scope, { appDownNotice: false, halfCloseGraceMs: 30_000 });
    user.send('last words');
    user.socket.end(); // FIN, but still reading
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('last words');
    app.output(id, 'Goodbye.\r\n');
    await user.waitFor('Goodbye.\r\n');
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
    await user.waitClosed();
  });
});

describe('sessions and stats', () => {
  it('counts users, lines and bytes both ways', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { appDownNotice: false });
    user.send('héllo'); // 6 bytes (+ CRLF, not counted)
    await app.waitForParam('input');
    app.output(id, 'réponse'); // 8 bytes
    await user.waitFor('réponse');
    const stats = imi.stats();
    expect(stats.sessions).toBe(1);
    expect(stats.sessionsOpened).toBe(1);
    expect(stats.inputLines).toBe(1);
    expect(stats.inputBytes).toBe(6);
    expect(stats.outputWrites).toBe(1);
    expect(stats.outputBytes).toBe(8);
    user.close();
    await app.waitForParam('disconnect');
    expect(imi.stats().sessions).toBe(0);
    expect(imi.stats().outputBytes).toBe(8); // kept after the user left
  });

  it('sessions() and session(id) expose live users with their id, transport, remote and state', async () => {
    const { imi, user, id } = await withAppAndUser(scope);
    const session = imi.session(id)!;
    expect(session.id).toBe(id);
    expect(session.transport).toBe('tcp');
    expect(session.remote.port).toBe(user.socket.localPort);
    expect(session.open).toBe(true);
    expect([...imi.sessions()].map((s) => s.id)).toEqual([id]);
  });

  it('admin broadcast reaches every user but the excepted ones', async () => {
    const { imi, ports, app, user, id } = await withAppAndUser(scope);
    const other = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    expect(imi.broadcast('maintenance soon\r\n', new Set([id]))).toBe(1);
    await other.waitFor('maintenance soon\r\n');
    app.output(id, '|end');
    await user.waitFor('|end');
    expect(count(user.received, 'maintenance')).toBe(0);
  });
});
