/**
 * The Lua scripts a worker runs in Redis. A script runs alone, so the
 * commit (replies + state + `XACK`) is all or nothing like `MULTI/EXEC`, and
 * it can also check, in the same step, that the worker still holds each
 * partition's lease (fencing: a worker that lost a lease during a pause
 * cannot answer input its successor will answer too).
 *
 * @module
 */
import type { Redis } from 'ioredis';
import type { CommitOp } from './worker-options.js';

/**
 * Bytes of frames a commit joins into one entry of a holder's output
 * stream (16 KiB; a single larger frame goes alone). One entry per holder
 * and commit rather than one per frame: one \`XADD\` from Lua where there
 * were as many as the commit had replies, and one entry for the holder to
 * parse. The holder relays an entry's field as is, newline-separated
 * frames being what its intermediary reads anyway. Small because the output
 * stream's bound and the holder's \`XREAD\` count entries: 16 KiB holds
 * the replies of a busy commit (about 100 of 150 bytes) while keeping a
 * stalled holder's stream (\`maxStreamEntries\` entries) and one read of it
 * (\`outputBatch\` entries, 8 MiB at most but for single larger frames) in
 * bounds.
 */
export const OUTPUT_ENTRY_BYTES = 16_384;

/**
 * The commit. KEYS[1] is this worker's commit counter; ARGV: the worker's
 * consumer group (see {@link TAKE}), commit number, stream bound, then
 * ({@link commitArgs}) the number of (partition, lease token) pairs the ops
 * are fenced with, those pairs, and the ops, each a kind and its own fields,
 * the pair named by its index: flat strings, so neither side encodes nor
 * decodes a JSON array, and a token is sent once per commit rather than per
 * op (a commit of 30 replies is about 200 arguments, not 360).
 *
 * | op | fields | does |
 * |---|---|---|
 * | `o` | pair, holder, frame | the frame joins that holder's output entry (if the holder is alive) |
 * | `b` | frame | a broadcast entry (not fenced) |
 * | `s` | pair, session id, state | the session's stored state |
 * | `a` | pair, entry id | acks the entry (`XACK`, `XDEL`) |
 * | `c` | pair, entry id, session id | acks it and marks the session announced |
 * | `g` | pair, entry id, session id | acks it and forgets the session (it left) |
 *
 * The lease holds a token (the worker process's group and the number of the
 * taking), not just the worker id: a commit from before a lease was lost and
 * taken again by the same worker is fenced too. A commit number not above
 * the counter was applied already (its reply was lost): skipped, so a
 * commit sent again after an outage is not doubled. Ops whose pair's lease
 * does not hold its token are skipped; their count is returned. The leases
 * are read with one \`MGET\`, and each holder's replies go out as one entry
 * ({@link OUTPUT_ENTRY_BYTES}). The acked entries are `XACK`ed and `XDEL`ed
 * at the end, one call per partition (and per 256 entries) instead of two
 * per entry: a call from Lua costs Redis more than the command itself, and
 * inside the script nothing reads the pending entries list, so the order is
 * not seen.
 */
const COMMIT = `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', 86400000)
local maxlen = ARGV[3]
local np = tonumber(ARGV[4])
local holds = {}
if np > 0 then
  local leaseKeys = {}
  for j = 1, np do leaseKeys[j] = 'imi:lease:' .. ARGV[3 + 2 * j] end
  local leases = redis.call('MGET', unpack(leaseKeys))
  for j = 1, np do holds[j] = leases[j] == ARGV[4 + 2 * j] end
end
local width = { o = 4, b = 2, s = 4, a = 3, c = 4, g = 4 }
local holders = {}
local outs = {}
local outOrder = {}
local skipped = 0
local acks = {}
local streams = {}
local function publish(h)
  local o = outs[h]
  if o ~= nil and #o.frames > 0 then
    redis.call('XADD', 'imi:out:' .. h, 'MAXLEN', '~', maxlen, '*', 'f', table.concat(o.frames, '\\n'))
    o.frames = {}
    o.bytes = 0
  end
end
local i = 5 + 2 * np
while i <= #ARGV do
  local k = ARGV[i]
  local w = width[k]
  if w == nil then return redis.error_reply('imi commit: unknown op ' .. tostring(k)) end
  if k == 'b' then
    redis.call('XADD', 'imi:bcast', 'MAXLEN', '~', maxlen, '*', 'f', ARGV[i + 1])
  elseif not holds[tonumber(ARGV[i + 1])] then
    skipped = skipped + 1
  elseif k == 'o' then
    local h = ARGV[i + 2]
    local alive = holders[h]
    if alive == nil then
      alive = redis.call('ZSCORE', 'imi:holders', h) ~= false
      holders[h] = alive
    end
    if alive then
      local o = outs[h]
      if o == nil then
        o = { frames = {}, bytes = 0 }
        outs[h] = o
        outOrder[#outOrder + 1] = h
      end
      local f = ARGV[i + 3]
      if o.bytes > 0 and o.bytes + #f > ${OUTPUT_ENTRY_BYTES} then publish(h) end
      o.frames[#o.frames + 1] = f
      o.bytes = o.bytes + #f + 1
    end
  elseif k == 's' then
    local session = 'imi:session:' .. ARGV[i + 2]
    if redis.call('EXISTS', session) == 1 then redis.call('HSET', session, 'state', ARGV[i + 3]) end
  else
    local stream = 'imi:part:' .. ARGV[3 + 2 * tonumber(ARGV[i + 1])]
    local ids = acks[stream]
    if ids == nil then
      ids = {}
      acks[stream] = ids
      streams[#streams + 1] = stream
    end
    ids[#ids + 1] = ARGV[i + 2]
    if k == 'c' then
      local session = 'imi:session:' .. ARGV[i + 3]
      if redis.call('EXISTS', session) == 1 then redis.call('HSET', session, 'ann', '1') end
    elseif k == 'g' then
      redis.call('DEL', 'imi:session:' .. ARGV[i + 3])
      redis.call('SREM', stream .. ':sessions', ARGV[i + 3])
    end
  end
  i = i + w
end
for _, h in ipairs(outOrder) do publish(h) end
for _, stream in ipairs(streams) do
  local ids = acks[stream]
  for j = 1, #ids, 256 do
    local last = math.min(j + 255, #ids)
    redis.call('XACK', stream, ARGV[1], unpack(ids, j, last))
    redis.call('XDEL', stream, unpack(ids, j, last))
  end
end
return skipped`;

/**
 * The commit script's arguments for a list of ops, after the group and the
 * commit number (see {@link COMMIT}).
 *
 * @param ops - the ops, in order
 * @param maxStreamEntries - the output streams' bound
 * @returns the stream bound, the number of (partition, token) pairs, the pairs, then each op's kind and fields
 */
export function commitArgs(ops: readonly CommitOp[], maxStreamEntries: number): string[] {
  const pairs: string[] = [];
  const body: string[] = [];
  // Almost always one token per partition in a commit; two only across a lost and retaken lease.
  const refs = new Map<number, Array<{ t: string; ref: string }>>();
  const ref = (part: number, token: string): string => {
    let list = refs.get(part);
    if (list === undefined) {
      list = [];
      refs.set(part, list);
    }
    for (const known of list) if (known.t === token) return known.ref;
    pairs.push(String(part), token);
    const made = String(pairs.length / 2);
    list.push({ t: token, ref: made });
    return made;
  };
  for (const op of ops) {
    switch (op.k) {
      case 'o':
        body.push('o', ref(op.p, op.t), op.h, op.f);
        break;
      case 'b':
        body.push('b', op.f);
        break;
      case 's':
        body.push('s', ref(op.p, op.t), op.id, op.s);
        break;
      case 'a': {
        const at = ref(op.p, op.t);
        if (op.c !== undefined) body.push('c', at, op.e, op.c);
        if (op.g !== undefined) body.push('g', at, op.e, op.g);
        if (op.c === undefined && op.g === undefined) body.push('a', at, op.e);
        break;
      }
    }
  }
  const args = [String(maxStreamEntries), String(pairs.length / 2)];
  for (const part of pairs) args.push(part);
  for (const part of body) args.push(part);
  return args;
}

/** Renews a lease only if it still holds this token (compare-and-renew). */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** Gives a lease back only if it still holds this token (compare-and-delete). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The worker heartbeat: scores this worker with the Redis clock, drops the expired, returns the live workers. */
const WORKER_BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')`;

/**
 * Declares lost the holders whose heartbeat ran out: for each of their
 * sessions one \`disconnect\` entry (reason \`holder-lost\`) on its partition
 * stream, after its input. Atomic, and the holder leaves the sorted set in
 * the same step, so however many workers run it each user gets exactly one.
 */
const REAP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], h)
  local sessions = 'imi:holder:' .. h .. ':sessions'
  for _, id in ipairs(redis.call('SMEMBERS', sessions)) do
    local p = redis.call('HGET', 'imi:session:' .. id, 'part')
    if p then
      redis.call('XADD', 'imi:part:' .. p, 'MAXLEN', '~', ARGV[1], '*', 't', 'disconnect', 'id', id, 'r', 'holder-lost')
      n = n + 1
    end
  end
  redis.call('DEL', sessions, 'imi:out:' .. h)
  redis.call('SET', 'imi:holder:' .. h .. ':reaped', '1', 'PX', 86400000)
end
return n`;

/**
 * Taking a partition's stream, once its lease is this worker's: every other
 * consumer group on it is destroyed (a predecessor's, older ones) and this
 * worker's group is made again at its start. KEYS: the stream, the lease,
 * the partition's delivered mark; ARGV: the worker's group, the lease
 * token. Returns the highest id any group ever delivered from the stream
 * (entries up to it may have been handled by a predecessor: `redelivered`),
 * kept in the mark because a group's last-delivered id goes with it (a
 * partition that moves twice before its second owner read everything must
 * still flag what the first one read), or `false` when the lease is not
 * this token's any more.
 *
 * Why a group per worker process, made afresh at each taking, rather than
 * one shared group: acked entries are deleted (`XDEL`, in the commit), so
 * the stream holds exactly what is not acked yet, and a group made at its
 * start delivers that, in order — what `XAUTOCLAIM` of a shared group's
 * pending entries list and then `>` gave, in one plain `XREADGROUP`. And a
 * worker that lost a lease cannot disturb its successor by reading: it reads
 * its own group, which is gone (`NOGROUP` ends its read), whereas with a
 * shared group its `>` moved the group past entries the successor then never
 * saw; reads had to check the lease in a script for that. So the worker
 * reads every partition with one blocking `XREADGROUP`, no script.
 */
const TAKE = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return false end
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local last = redis.call('GET', KEYS[3]) or '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local f = {}
    for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
    if after(f['last-delivered-id'], last) then last = f['last-delivered-id'] end
    redis.call('XGROUP', 'DESTROY', KEYS[1], f['name'])
  end
end
redis.call('SET', KEYS[3], last)
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return last`;

const SCRIPTS = {
  imiTake: { numberOfKeys: 3, lua: TAKE },
  imiCommit: { numberOfKeys: 1, lua: COMMIT },
  imiRenew: { numberOfKeys: 1, lua: RENEW },
  imiRelease: { numberOfKeys: 1, lua: RELEASE },
  imiWorkerBeat: { numberOfKeys: 1, lua: WORKER_BEAT },
  imiReap: { numberOfKeys: 1, lua: REAP },
} as const;

/** The name of one of the worker's scripts. */
export type WorkerScript = keyof typeof SCRIPTS;

/**
 * Registers the scripts on a connection.
 *
 * @param redis - the connection
 */
export function defineWorkerScripts(redis: Redis): void {
  for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
}

/**
 * Runs one of the scripts.
 *
 * @param redis - a connection the scripts were defined on
 * @param name - the script
 * @param keys - its keys
 * @param args - its arguments; an array among them stands for its elements (ioredis flattens one level), so a long list is not spread onto the call stack
 * @returns what the script returns
 */
export function runWorkerScript<T = number>(redis: Redis, name: WorkerScript, keys: string[], args: Array<string | number | readonly string[]>): Promise<T> {
  const command = (redis as unknown as Record<string, (...parts: Array<string | number | readonly string[]>) => Promise<T>>)[name]!;
  return command.call(redis, ...keys, ...args);
}
