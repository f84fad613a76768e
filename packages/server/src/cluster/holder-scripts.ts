/**
 * The Lua scripts a holder runs in Redis. Each one is atomic (Redis runs a
 * script alone), which is what makes a holder's writes idempotent: a
 * command whose reply was lost in an outage can be sent again without
 * doubling anything.
 *
 * @module
 */
import type { Redis } from 'ioredis';

/**
 * A new user: the session hash, the partition's and the holder's session
 * sets, and the `connect` entry on the partition stream, all or nothing.
 * Does nothing when the session hash exists (the same user announced again
 * after the holder's link to Redis came back).
 */
const CONNECT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'part', ARGV[3], 'data', ARGV[4], 'state', ARGV[5], 'telnet', '', 'inN', '0', 'ann', '0')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 't', 'connect', 'id', ARGV[1], 'h', ARGV[2], 'd', ARGV[4], 's', ARGV[5], 'r', ARGV[6])
return 1`;

/**
 * A line: added once. \`inN\` is the number of the session's last line on
 * the stream; a line sent again (its reply was lost) has a number not above
 * it and is skipped.
 */
const INPUT = `
local last = redis.call('HGET', KEYS[1], 'inN')
if not last then return -1 end
if tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'inN', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 't', 'input', 'id', ARGV[1], 'v', ARGV[3], 'x', ARGV[4])
return 1`;

/** A user left: one \`disconnect\` entry, only if the holder still counts them (not already reaped). */
const DISCONNECT = `
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 't', 'disconnect', 'id', ARGV[1], 'r', ARGV[2])
return 1`;

/** A \`telnet\` or \`gmcp\` event, relayed as is; \`telnet\` also updates what a resumed \`connect\` says. */
const FRAME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'telnet', ARGV[3]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 't', 'frame', 'id', ARGV[1], 'f', ARGV[2])
return 1`;

/**
 * The heartbeat: this holder's entry in the holders sorted set, scored with
 * the Redis clock (no clock skew between machines). Returns 0 when a worker
 * had declared this holder lost in the meantime.
 */
const BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('DEL', KEYS[2]) == 1 then return 0 end
return 1`;

/** The scripts, by the name they are registered under. */
const SCRIPTS = {
  imiConnect: { numberOfKeys: 4, lua: CONNECT },
  imiInput: { numberOfKeys: 2, lua: INPUT },
  imiDisconnect: { numberOfKeys: 2, lua: DISCONNECT },
  imiFrame: { numberOfKeys: 2, lua: FRAME },
  imiHolderBeat: { numberOfKeys: 2, lua: BEAT },
} as const;

/** The name of one of the holder's scripts. */
export type HolderScript = keyof typeof SCRIPTS;

/**
 * Registers the scripts on a connection (ioredis sends `EVALSHA`, and the
 * script itself once when Redis does not know it yet, e.g. after a restart).
 *
 * @param redis - the connection
 */
export function defineHolderScripts(redis: Redis): void {
  for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
}

/**
 * Runs one of the scripts.
 *
 * @param redis - a connection the scripts were defined on
 * @param name - the script
 * @param keys - its keys, in order
 * @param args - its arguments
 * @returns what the script returns (an integer)
 */
export function runHolderScript(redis: Redis, name: HolderScript, keys: string[], args: Array<string | number>): Promise<number> {
  const command = (redis as unknown as Record<string, (...parts: Array<string | number>) => Promise<number>>)[name]!;
  return command.call(redis, ...keys, ...args);
}
