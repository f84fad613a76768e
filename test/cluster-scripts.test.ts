// The worker's Lua scripts against a real redis-server (packages/client/src/cluster/worker-scripts.ts):
// taking a partition (other consumer groups destroyed, this worker's made again at the stream's start,
// nothing done under another's lease), and the commit that joins its replies for one holder into one
// output entry, bounded in bytes, and skips fenced ops; and a worker that reads 600 partitions in one
// XREADGROUP.
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterKeys } from '@imi/core';
import { OUTPUT_ENTRY_BYTES, commitArgs, defineWorkerScripts, runWorkerScript } from '../packages/client/src/cluster/worker-scripts.js';
import type { CommitOp } from '../packages/client/src/cluster/worker-options.js';
import { commandsAvailable } from '../packages/server/test/process-harness.js';
import { RedisProcess, User, startHolder, stopAll, tallyAll, waitFor } from './support/cluster-harness.js';
import { Client } from '@imi/client';

// ioredis is a dependency of @imi/client, not of the repository's root.
type RedisClient = Parameters<typeof defineWorkerScripts>[0];
const { Redis } = createRequire(new URL('../packages/client/package.json', import.meta.url))('ioredis') as { Redis: new (url: string, options: object) => RedisClient };

type Entry = [string, string[]];

let redis: RedisClient | undefined;
const apps: Client[] = [];
afterEach(async () => {
  redis?.disconnect();
  redis = undefined;
  for (const app of apps.splice(0)) await app.close().catch(() => {});
  stopAll();
});

async function connect(): Promise<RedisClient> {
  const server = await RedisProcess.start(false);
  const client = new Redis(server.url, { maxRetriesPerRequest: 0 });
  defineWorkerScripts(client);
  redis = client;
  return client;
}

describe.skipIf(!commandsAvailable('redis-server'))('cluster worker scripts', () => {
  it("taking a partition: other groups destroyed (the highest id any group delivered returned, kept across takings), this worker's made again at the stream's start; not under another's lease", async () => {
    const client = await connect();
    const stream = clusterKeys.partition(0);
    const lease = clusterKeys.lease(0);
    const [a, b, c] = [(await client.xadd(stream, '*', 't', 'input', 'id', 's1', 'v', 'one'))!, (await client.xadd(stream, '*', 't', 'input', 'id', 's1', 'v', 'two'))!, (await client.xadd(stream, '*', 't', 'input', 'id', 's1', 'v', 'three'))!];
    // A predecessor read a and b and acked a (acked entries are deleted); an older group read a.
    await client.xgroup('CREATE', stream, 'w2.old', '0');
    await client.xreadgroup('GROUP', 'w2.old', 'w2', 'COUNT', 2, 'STREAMS', stream, '>');
    await client.xack(stream, 'w2.old', a);
    await client.xdel(stream, a);
    await client.xgroup('CREATE', stream, 'w3.older', '0');
    await client.xreadgroup('GROUP', 'w3.older', 'w3', 'COUNT', 1, 'STREAMS', stream, '>');
    await client.set(lease, 'w2#4');
    const take = (group: string, token: string): Promise<string | null> => runWorkerScript(client, 'imiTake', [stream, lease, clusterKeys.partitionDelivered(0)], [group, token]);
    expect(await take('w1.new', 'w1#1')).toBeNull();
    expect(((await client.xinfo('GROUPS', stream)) as unknown[]).length).toBe(2);

    await client.set(lease, 'w1#1');
    expect(await take('w1.new', 'w1#1')).toBe(b);
    const groups = (await client.xinfo('GROUPS', stream)) as string[][];
    expect(groups.map((group) => group[1])).toEqual(['w1.new']);
    // Everything not acked, in order, with a plain XREADGROUP.
    expect(await client.xreadgroup('GROUP', 'w1.new', 'w1', 'COUNT', 10, 'STREAMS', stream, '>')).toEqual([[stream, [[b, ['t', 'input', 'id', 's1', 'v', 'two']], [c, ['t', 'input', 'id', 's1', 'v', 'three']]]]]);
    // The predecessor's reads now fail: it cannot move anything of its successor's.
    await expect(client.xreadgroup('GROUP', 'w2.old', 'w2', 'STREAMS', stream, '>')).rejects.toThrow(/NOGROUP/);
    // The next owner: what w1.new delivered (up to c) may have been handled.
    await client.set(lease, 'w3#1');
    expect(await take('w3.next', 'w3#1')).toBe(c);
    expect(await client.xpending(stream, 'w3.next')).toEqual([0, null, null, null]);
    // It lets go before reading anything; the owner after it must still know c was delivered (its group is gone).
    await client.set(lease, 'w4#1');
    expect(await take('w4.last', 'w4#1')).toBe(c);
    expect(((await client.xreadgroup('GROUP', 'w4.last', 'w4', 'STREAMS', stream, '>')) as Array<[string, Entry[]]>)[0]![1].map(([id]) => id)).toEqual([b, c]);
    // A partition with no stream yet: made.
    await client.set(clusterKeys.lease(1), 'w1#2');
    expect(await runWorkerScript(client, 'imiTake', [clusterKeys.partition(1), clusterKeys.lease(1), clusterKeys.partitionDelivered(1)], ['w1.new', 'w1#2'])).toBe('0-0');
    expect(await client.exists(clusterKeys.partition(1))).toBe(1);
  });

  it("the commit joins each holder's replies into entries of at most 16 KiB, in order, and skips fenced ops", async () => {
    const client = await connect();
    await client.zadd('imi:holders', Date.now() + 60_000, 'h1', Date.now() + 60_000, 'h2', Date.now() + 60_000, 'h3');
    await client.set(clusterKeys.lease(0), 'w1#1');
    await client.set(clusterKeys.lease(1), 'w9#1'); // not this worker's
    const frame = (bytes: number, tag: string): string => {
      const head = `{"param":"output","data":{"id":"${tag}","value":"`;
      return head + 'x'.repeat(bytes - head.length - 3) + '"}}';
    };
    const big = frame(OUTPUT_ENTRY_BYTES + 3_000, 'big');
    const [a, b] = [frame(8_191, 'a'), frame(8_192, 'b')]; // joined with one newline: exactly 16,384 bytes
    const [c, d] = [frame(8_192, 'c'), frame(8_192, 'd')]; // 16,385: two entries
    const ops: CommitOp[] = [
      { k: 'o', p: 0, t: 'w1#1', h: 'h1', f: '{"n":1}' },
      { k: 'o', p: 0, t: 'w1#1', h: 'h2', f: '{"n":2}' },
      { k: 'o', p: 1, t: 'w1#1', h: 'h1', f: '{"fenced":true}' },
      { k: 'o', p: 0, t: 'w1#1', h: 'h1', f: '{"n":3}' },
      { k: 'o', p: 0, t: 'w1#1', h: 'h1', f: big },
      { k: 'o', p: 0, t: 'w1#1', h: 'h1', f: '{"n":4}' },
      { k: 'o', p: 0, t: 'w1#1', h: 'gone', f: '{"n":5}' },
      { k: 'o', p: 0, t: 'w1#1', h: 'h3', f: a },
      { k: 'o', p: 0, t: 'w1#1', h: 'h3', f: b },
      { k: 'o', p: 0, t: 'w1#1', h: 'h3', f: c },
      { k: 'o', p: 0, t: 'w1#1', h: 'h3', f: d },
    ];
    expect(Buffer.byteLength(`${a}\n${b}`)).toBe(OUTPUT_ENTRY_BYTES);
    const skipped = await runWorkerScript(client, 'imiCommit', ['imi:worker:w1:commit'], ['w1', 1, commitArgs(ops, 1000)]);
    expect(skipped).toBe(1);
    const frames = async (holder: string): Promise<string[]> => ((await client.xrange(clusterKeys.holderOutput(holder), '-', '+')) as Entry[]).map(([, list]) => list[1]!);
    expect(await frames('h1')).toEqual(['{"n":1}\n{"n":3}', big, '{"n":4}']);
    expect(await frames('h2')).toEqual(['{"n":2}']);
    expect(await frames('h3')).toEqual([`${a}\n${b}`, c, d]);
    expect(await client.exists(clusterKeys.holderOutput('gone'))).toBe(0);
    // The same commit number again (its reply was lost): applied once.
    expect(await runWorkerScript(client, 'imiCommit', ['imi:worker:w1:commit'], ['w1', 1, commitArgs(ops, 1000)])).toBe(-1);
    expect(await frames('h1')).toHaveLength(3);

    // Acks (plain, announcing, forgetting), state and a broadcast; one partition's ops under two tokens, one fenced.
    const stream = clusterKeys.partition(0);
    await client.xgroup('CREATE', stream, 'w1', '0', 'MKSTREAM');
    const [e1, e2, e3, e4] = [
      (await client.xadd(stream, '*', 't', 'input', 'id', 's1', 'v', 'x'))!,
      (await client.xadd(stream, '*', 't', 'connect', 'id', 's1'))!,
      (await client.xadd(stream, '*', 't', 'disconnect', 'id', 's2'))!,
      (await client.xadd(stream, '*', 't', 'input', 'id', 's1', 'v', 'y'))!,
    ];
    await client.xreadgroup('GROUP', 'w1', 'c', 'STREAMS', stream, '>');
    await client.hset(clusterKeys.session('s1'), 'ann', '0', 'state', '{}');
    await client.hset(clusterKeys.session('s2'), 'ann', '1');
    await client.sadd(clusterKeys.partitionSessions(0), 's1', 's2');
    const more: CommitOp[] = [
      { k: 'a', p: 0, t: 'w1#1', e: e1 },
      { k: 'a', p: 0, t: 'w1#1', e: e2, c: 's1' },
      { k: 'a', p: 0, t: 'w1#1', e: e3, g: 's2' },
      { k: 'a', p: 0, t: 'w1#0', e: e4 }, // an older taking's: fenced
      { k: 's', p: 0, t: 'w1#1', id: 's1', s: '{"room":"hall"}' },
      { k: 'b', f: '{"param":"broadcast"}' },
    ];
    expect(commitArgs(more, 1000).slice(0, 6)).toEqual(['1000', '2', '0', 'w1#1', '0', 'w1#0']);
    expect(await runWorkerScript(client, 'imiCommit', ['imi:worker:w1:commit'], ['w1', 2, commitArgs(more, 1000)])).toBe(1);
    expect(((await client.xrange(stream, '-', '+')) as Entry[]).map(([id]) => id)).toEqual([e4]);
    expect(((await client.xpending(stream, 'w1')) as unknown[]).slice(0, 3)).toEqual([1, e4, e4]);
    expect(await client.hgetall(clusterKeys.session('s1'))).toEqual({ ann: '1', state: '{"room":"hall"}' });
    expect(await client.exists(clusterKeys.session('s2'))).toBe(0);
    expect(await client.smembers(clusterKeys.partitionSessions(0))).toEqual(['s1']);
    expect(((await client.xrange(clusterKeys.broadcast, '-', '+')) as Entry[]).map(([, list]) => list[1])).toEqual(['{"param":"broadcast"}']);
  });
  it('a worker holding 600 partitions reads them all with one XREADGROUP: every line answered once, in order', async () => {
    const partitions = 600;
    const server = await RedisProcess.start(false);
    const holder = await startHolder(server.url, 'hp', 1_500, ['--cluster-partitions', String(partitions)]);
    const worker = new Client({ redis: server.url, name: 'split-echo', cluster: { workerId: 'wp', partitions, leaseTtlMs: 1_500, holderTtlMs: 1_500 } });
    apps.push(worker);
    worker.on('error', () => {});
    worker.on('connect', (session) => session.send(`hello ${session.id} new\r\n`));
    worker.on('input', (session, line) => session.send(`${line}#wp\r\n`));
    await worker.connect();
    await waitFor(() => worker.partitionsHeld.length === partitions, 30_000, () => `every partition held (${worker.partitionsHeld.length})`);
    const users = await Promise.all(Array.from({ length: 40 }, (_, i) => User.connect(`u${i}`, holder)));
    await waitFor(() => users.every((user) => user.id !== ''), 20_000, () => 'every user greeted');
    for (let k = 0; k < 10; k++) {
      for (const user of users) user.sendNext();
      await waitFor(() => users.every((user) => user.complete), 20_000, () => `round ${k} answered (${JSON.stringify(tallyAll(users))})`);
    }
    expect(tallyAll(users)).toEqual({ lost: 0, doubled: 0, reordered: 0, lines: 400 });
    expect(users.filter((user) => user.closed)).toEqual([]);
  }, 90_000);
});
