// Framing, both directions (protocol.md "Framing"): what the intermediary
// accepts from an app, and what it writes to one.
import { describe, expect, it } from 'vitest';
import { sleep, testScope, withAppAndUser } from './harness.js';

const scope = testScope();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function output(id: string, value: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { param: 'output', data: { id, value }, ...extra };
}

describe('framing: what the intermediary accepts from the app', () => {
  it('accepts NDJSON, frames back to back with no separator (the Perl style) and any whitespace between them', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    const frame = (value: string): string => JSON.stringify(output(id, value));
    app.sendRaw(frame('a') + frame('b') + ' \r\n\t ' + frame('c') + '\n\n\n' + frame('d') + '\n');
    await user.waitFor('abcd');
    await app.barrier();
    expect(user.received).toBe('abcd');
    expect(app.errors()).toEqual([]);
  });

  it('takes a top-level array as a batch, in order, and rejects only its malformed elements', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.send([
      output(id, '1'),
      { param: 'output', data: { id, value: 5 }, txn_id: 'bad-value' },
      output(id, '2'),
      { nope: true },
      'a string',
      output(id, '3'),
    ]);
    app.output(id, '|end');
    await user.waitFor('|end');
    await app.barrier();
    expect(user.received).toBe('123|end');
    const errors = app.errors();
    expect(errors.map((e) => e.data['code'])).toEqual(['IMI_BAD_MESSAGE', 'IMI_BAD_MESSAGE', 'IMI_BAD_MESSAGE']);
    expect(errors[0]!.data['txn_id']).toBe('bad-value');
    expect(imi.stats().errors.IMI_BAD_MESSAGE).toBe(3);
  });

  it('joins a frame split anywhere, inside a multi-byte character too (a € sent byte by byte)', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    const bytes = Buffer.from(JSON.stringify(output(id, 'prix: 5€ — ok\r\n')) + '\n');
    const euro = bytes.indexOf(Buffer.from('€'));
    expect(euro).toBeGreaterThan(0);
    // Chunks: up to the €, then each of its three bytes alone, then the rest in small pieces.
    const cuts = [0, 7, euro, euro + 1, euro + 2, euro + 3, euro + 6, bytes.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      app.sendRaw(bytes.subarray(cuts[i]!, cuts[i + 1]!));
      await sleep(15);
    }
    await user.waitFor('ok\r\n');
    expect(user.received).toBe('prix: 5€ — ok\r\n');
    expect(user.bytes.equals(Buffer.from('prix: 5€ — ok\r\n'))).toBe(true);
    expect(app.errors()).toEqual([]);
  });

  it('splits a batch and back-to-back frames across many chunks without losing or reordering anything', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    const text = JSON.stringify([output(id, 'α'), output(id, 'β')]) + JSON.stringify(output(id, 'γ')) + JSON.stringify(output(id, '€\n'));
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length; at += 5) {
      app.sendRaw(bytes.subarray(at, at + 5));
      await sleep(2);
    }
    await user.waitFor('€\n');
    expect(user.received).toBe('αβγ€\n');
    await app.barrier();
    expect(app.errors()).toEqual([]);
  });

  it('rejects a frame that is not JSON with IMI_BAD_FRAME and goes on with the next frame', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.sendRaw('{"param":"output", this is not json}\n');
    app.output(id, 'still here');
    await user.waitFor('still here');
    const error = await app.waitForError('IMI_BAD_FRAME');
    expect(typeof error.data['message']).toBe('string');
    expect(imi.stats().errors.IMI_BAD_FRAME).toBe(1);
    expect(imi.appConnected).toBe(true);
  });

  it('rejects a frame over maxFrameBytes with IMI_BAD_FRAME, processes nothing of it, and goes on', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, { maxFrameBytes: 1024 });
    app.output(id, 'x'.repeat(900)); // under the limit: accepted
    app.output(id, 'y'.repeat(5000)); // over it
    app.output(id, '|after');
    await user.waitFor('|after');
    expect(user.received).toBe('x'.repeat(900) + '|after');
    const error = await app.waitForError('IMI_BAD_FRAME');
    expect(error.data['message']).toMatch(/1024/);
    expect(imi.stats().errors.IMI_BAD_FRAME).toBe(1);
  });

  it('survives garbage (binary bytes, scalars, stray brackets) and keeps serving', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope);
    app.sendRaw(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]));
    app.sendRaw('null\n42\n"text"\ntrue\n');
    app.sendRaw(']]]\n');
    app.output(id, 'alive');
    await user.waitFor('alive');
    await app.barrier();
    expect(app.errors().length).toBeGreaterThanOrEqual(5);
    for (const error of app.errors()) expect(['IMI_BAD_FRAME', 'IMI_BAD_MESSAGE']).toContain(error.data['code']);
    // The scalars are JSON but not messages.
    expect(app.errors('IMI_BAD_MESSAGE').length).toBe(4);
    expect(imi.appConnected).toBe(true);
    expect(user.closed).toBe(false);
  });
});

describe('framing: what the intermediary writes to the app', () => {
  it('writes one compact JSON object per line, UTF-8, each with a UUID txn_id', async () => {
    const { app, user, id } = await withAppAndUser(scope);
    user.send('€ and ü');
    const [input] = await app.waitForParam('input');
    expect(input!.data).toEqual({ id, value: '€ and ü' });
    user.close();
    await app.waitForParam('disconnect');
    expect(app.badLines).toEqual([]);
    expect(app.chunks.join('').endsWith('\n')).toBe(true);
    for (const line of app.chunks.join('').split('\n').slice(0, -1)) {
      expect(line).not.toBe('');
      expect(JSON.parse(line)).toBeTypeOf('object');
    }
    for (const frame of app.frames) expect(frame.txn_id).toMatch(UUID);
    expect(new Set(app.frames.map((f) => f.txn_id)).size).toBe(app.frames.length);
  });
});
