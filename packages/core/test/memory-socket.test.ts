// MemorySocket (cluster mode's in-process links): bytes arrive in order, in
// one `data` event per batch of writes and never inside the writer's call;
// pause holds them; `write` says when to wait and `drain` follows; closing
// either end closes both, after what was written has arrived. Messages
// (writeMessage) arrive as the objects, in order with the bytes, or as their
// frames when nobody listens for them.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { MEMORY_SOCKET_HIGH_WATER_BYTES, memorySocketPair } from '../src/index.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('memorySocketPair', () => {
  it('emits connect on the first end, then carries writes in order as one data event, not inside write()', async () => {
    const [a, b] = memorySocketPair();
    await once(a, 'connect');
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString('utf8')));
    a.write('héllo ');
    a.write(Buffer.from('wörld'));
    expect(got).toEqual([]);
    expect(a.writableLength).toBe('héllo '.length + Buffer.byteLength('wörld'));
    await tick();
    expect(got).toEqual(['héllo wörld']);
    expect(a.writableLength).toBe(0);
    b.write('back');
    const [chunk] = (await once(a, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('back');
  });

  it('hands messages over as the objects, in order with the bytes, weighed as told', async () => {
    const [a, b] = memorySocketPair();
    const got: unknown[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString('utf8')));
    b.on('message', (message: object) => got.push(message));
    const first = { param: 'input', data: { id: 'u1', value: 'one' } };
    const second = { param: 'input', data: { id: 'u1', value: 'two' } };
    a.write('a ');
    a.write('b');
    expect(a.writeMessage(first, 100)).toBe(true);
    expect(a.writeMessage(second, 100)).toBe(true);
    a.write('c');
    expect(a.writableLength).toBe(4 + 200);
    expect(got).toEqual([]);
    await tick();
    expect(got).toEqual(['a b', first, second, 'c']);
    expect(got[1]).toBe(first);
    expect(a.writableLength).toBe(0);
    expect(a.writeMessage({ param: 'x', data: {} }, MEMORY_SOCKET_HIGH_WATER_BYTES + 1)).toBe(false);
    await once(a, 'drain');
  });

  it('gives a message as its frame to a reader that does not listen for messages', async () => {
    const [a, b] = memorySocketPair();
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString('utf8')));
    a.write('{"param":"pong","data":{}}\n');
    a.writeMessage({ param: 'input', data: { id: 'u1', value: 'é' } }, 50);
    await tick();
    expect(got.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as unknown)).toEqual([
      { param: 'pong', data: {} },
      { param: 'input', data: { id: 'u1', value: 'é' } },
    ]);
  });

  it('holds data while paused, and says when to wait: drain once the reader took it', async () => {
    const [a, b] = memorySocketPair();
    const got: number[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.length));
    b.pause();
    const big = 'x'.repeat(MEMORY_SOCKET_HIGH_WATER_BYTES);
    expect(a.write(big)).toBe(true);
    expect(a.write('y')).toBe(false);
    let drained = false;
    a.once('drain', () => (drained = true));
    await tick();
    expect(got).toEqual([]);
    expect(drained).toBe(false);
    b.resume();
    await tick();
    expect(got).toEqual([MEMORY_SOCKET_HIGH_WATER_BYTES + 1]);
    expect(drained).toBe(true);
  });

  it('destroy closes both ends after what was written has arrived; writes after it are refused', async () => {
    const [a, b] = memorySocketPair();
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    const closedA = once(a, 'close');
    const closedB = once(b, 'close');
    a.write('last words');
    a.destroy();
    await Promise.all([closedA, closedB]);
    expect(got).toEqual(['last words']);
    expect(a.destroyed && b.destroyed).toBe(true);
    expect(b.write('too late')).toBe(false);
    expect(a.write('too late')).toBe(false);
  });

  it('end delivers, then closes both; an error given to destroy is emitted before close', async () => {
    const [a, b] = memorySocketPair();
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    a.write('bye');
    a.end();
    await once(b, 'close');
    expect(got).toEqual(['bye']);
    const [c, d] = memorySocketPair();
    const events: string[] = [];
    c.on('error', (error: Error) => events.push(`error ${error.message}`));
    c.on('close', (hadError: boolean) => events.push(`close ${hadError}`));
    const closedD = once(d, 'close');
    c.destroy(new Error('boom'));
    await closedD;
    await tick();
    expect(events).toEqual(['error boom', 'close true']);
  });
});
