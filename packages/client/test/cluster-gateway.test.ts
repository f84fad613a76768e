// The cluster worker's gateway (packages/client/src/cluster/gateway.ts) on its in-process link:
// per-event acks (`done`) and cumulative acks together ack each event's Redis entry exactly once,
// in the commit of the data that carried them; a `done` for an event the cumulative ack already
// took changes nothing.
import { describe, expect, it } from 'vitest';
import { Gateway } from '../src/cluster/gateway.js';
import type { CommitOp } from '../src/cluster/worker-options.js';

function setUp(): { gateway: Gateway; commits: CommitOp[][]; write: (text: string) => Promise<void>; synced: Promise<Record<string, unknown>> } {
  const commits: CommitOp[][] = [];
  const session = { part: 3, token: 'w.1:1', holder: 'h1', state: {} };
  const gateway = new Gateway({ session: (id) => (id === 'u' ? session : undefined), onAppUp: () => {}, onAppDown: () => {}, commit: (ops) => commits.push(ops), onReleased: () => {} }, (error) => {
    throw error;
  });
  const app = gateway.connect() as unknown as { write(text: string): boolean; on(event: string, listener: (value: unknown) => void): void };
  const synced = new Promise<Record<string, unknown>>((resolve) => {
    app.on('message', (message) => {
      if ((message as { param: string }).param === 'synced') resolve((message as { data: Record<string, unknown> }).data);
    });
  });
  const write = async (text: string): Promise<void> => {
    app.write(text);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { gateway, commits, write, synced };
}

describe('cluster gateway acks', () => {
  it('says eventAcks in synced; done acks one event, the cumulative ack the rest, each entry once', async () => {
    const { gateway, commits, write, synced } = setUp();
    await write('{"param":"hello","data":{"protocol":1,"acks":true}}\n');
    expect(await synced).toMatchObject({ count: 0, eventAcks: true });
    for (let i = 1; i <= 6; i++) gateway.deliver({ param: 'input', data: { id: 'u', value: `l${i}` }, txn_id: `t${i}` }, { part: 3, token: 'w.1:1', entry: `1-${i}` });
    expect(gateway.outstandingOf(3)).toBe(6);
    // Event 4 finished behind 1-3: its reply and its own ack in one write, one commit.
    await write('{"param":"output","data":{"id":"u","value":"L4"}}\n{"param":"null","done":4}\n');
    expect(commits.at(-1)!.map((op) => op.k)).toEqual(['o', 'a']);
    expect(commits.at(-1)![1]).toMatchObject({ k: 'a', p: 3, e: '1-4' });
    expect(gateway.outstandingOf(3)).toBe(5);
    // The cumulative ack up to 5 acks 1, 2, 3 and 5, not 4 again.
    await write('{"param":"ack","data":{"seq":5}}\n');
    expect(commits.at(-1)!.map((op) => (op as { e: string }).e)).toEqual(['1-1', '1-2', '1-3', '1-5']);
    expect(gateway.outstandingOf(3)).toBe(1);
    // A done for an event the cumulative ack took, or one never handed out: nothing.
    const before = commits.length;
    await write('{"param":"null","done":2}\n{"param":"null","done":4}\n{"param":"null","done":99}\n');
    expect(commits.length).toBe(before);
    expect(gateway.outstandingOf(3)).toBe(1);
    await write('{"param":"null","done":6}\n');
    expect(commits.at(-1)).toEqual([{ k: 'a', p: 3, t: 'w.1:1', e: '1-6' }]);
    expect(gateway.outstandingOf(3)).toBe(0);
    gateway.close();
  });
});
