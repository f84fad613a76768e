// The worker's Lua scripts against a real redis-server (packages/client/src/cluster/worker-scripts.ts):
// the fenced read over many partitions in one call (entries, nothing new, where the group stands, a
// lease that is not this token's, a reread of pending entries), and the commit that joins its
// replies for one holder into one output entry, bounded in bytes, and skips fenced ops; and a worker
// whose partitions take more than one read call.
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_CONSUMER_GROUP, clusterKeys } from '@imi/core';
import { OUTPUT_ENTRY_BYTES, commitArgs, defineWorkerScripts, runWorkerScript } from '../packages/client/src/cluster/worker-scripts.js';
import type { CommitOp } from '../packages/client/src/cluster/worker-options.js';
import { commandsAvailable } from '../packages/server/test/process-harness.js';
import { RedisProcess, User, startHolder, stopAll, tallyAll, waitFor } from './support/cluster-harness.js';
import { Client } from '@imi/client';

// ioredis is a dependency of @imi/client, not of the repository's root.
type RedisClient = Parameters<typeof defineWorkerScripts>[0];
const { Redis } = createRequire(new URL('../packages/client/package.json', import.meta.url))('ioredis') as { Redis: new (url: string, options: object) => RedisClient };

type Entry = [string, string[]];
type ReadReply = ['e', Entry[]] | ['n'] | ['w', string] | ['x'];

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

function read(client: RedisClient, parts: Array<{ part: number; token: string; id: string }>): Promise<ReadReply[]> {
  const keys = [...parts.map(({ part }) => clusterKeys.partition(part)), ...parts.map(({ part }) => clusterKeys.lease(part))];
  return runWorkerScript<ReadReply[]>(client, 'imiRead', keys, [CLUSTER_CONSUMER_GROUP, 'w1', 100, ...parts.map(({ token }) => token), ...parts.map(({ id }) => id)]);
}

describe.skipIf(!commandsAvailable('redis-server'))('cluster worker scripts', () => {
  it('the fenced read: entries, nothing new, where the group stands, a lost lease, pending entries again', async () => {
    const client = await connect();
    for (const part of [0, 1, 2]) await client.xgroup('CREATE', clusterKeys.partition(part), CLUSTER_CONSUMER_GROUP, '0', 'MKSTREAM');
    await client.set(clusterKeys.lease(0), 'w1#1');
    await client.set(clusterKeys.lease(1), 'w2#7'); // another worker's
    await client.set(clusterKeys.lease(2), 'w1#1');
    const a = (await client.xadd(clusterKeys.partition(0), '*', 't', 'input', 'id', 's1', 'v', 'one'))!;
    const b = (await client.xadd(clusterKeys.partition(0), '*', 't', 'input', 'id', 's1', 'v', 'two'))!;
    await client.xadd(clusterKeys.partition(1), '*', 't', 'input', 'id', 's2', 'v', 'not mine');

    const first = await read(client, [
      { part: 0, token: 'w1#1', id: '?' },
      { part: 1, token: 'w1#1', id: '?' },
      { part: 2, token: 'w1#1', id: '?' },
    ]);
    expect(first[0]).toEqual(['e', [[a, ['t', 'input', 'id', 's1', 'v', 'one']], [b, ['t', 'input', 'id', 's1', 'v', 'two']]]]);
    expect(first[1]).toEqual(['x']);
    expect(first[2]).toEqual(['w', '0-0']);
    // Partition 1 was not read: its entry is still new for its owner.
    expect(await client.xpending(clusterKeys.partition(1), CLUSTER_CONSUMER_GROUP)).toEqual([0, null, null, null]);

    // Nothing new: '>' says so, '?' says where the group stands.
    expect(await read(client, [{ part: 0, token: 'w1#1', id: '>' }])).toEqual([['n']]);
    expect(await read(client, [{ part: 0, token: 'w1#1', id: '?' }])).toEqual([['w', b]]);

    // After a lost reply: this consumer's pending entries after the given id, then none.
    expect(await read(client, [{ part: 0, token: 'w1#1', id: a }])).toEqual([['e', [[b, ['t', 'input', 'id', 's1', 'v', 'two']]]]]);
    expect(await read(client, [{ part: 0, token: 'w1#1', id: b }])).toEqual([['e', []]]);

    // A new entry in one partition only, read with the others.
    const c = (await client.xadd(clusterKeys.partition(2), '*', 't', 'input', 'id', 's3', 'v', 'three'))!;
    expect(
      await read(client, [
        { part: 0, token: 'w1#1', id: '>' },
        { part: 2, token: 'w1#1', id: '>' },
      ]),
    ).toEqual([['n'], ['e', [[c, ['t', 'input', 'id', 's3', 'v', 'three']]]]]);

    // A pending entry trimmed from the stream (past maxStreamEntries) is reread with no fields.
    await client.xdel(clusterKeys.partition(0), a);
    expect(await read(client, [{ part: 0, token: 'w1#1', id: '0-0' }])).toEqual([['e', [[a, null], [b, ['t', 'input', 'id', 's1', 'v', 'two']]]]]);

    // The lease moved to another taking of the same worker: the old token reads nothing.
    await client.set(clusterKeys.lease(2), 'w1#2');
    await client.xadd(clusterKeys.partition(2), '*', 't', 'input', 'id', 's3', 'v', 'four');
    expect(await read(client, [{ part: 2, token: 'w1#1', id: '>' }])).toEqual([['x']]);
    expect(await read(client, [{ part: 2, token: 'w1#2', id: '>' }])).toMatchObject([['e', [[expect.any(String), ['t', 'input', 'id', 's3', 'v', 'four']]]]]);
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
  });
  it('a worker holding more partitions than one read takes (256) reads them in several calls: every line answered once, in order', async () => {
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
