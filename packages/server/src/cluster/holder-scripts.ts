/**
 * The Lua scripts a holder runs in Redis. Each one is atomic (Redis runs a
 * script alone), which is what makes a holder's writes idempotent: a
 * command whose reply was lost in an outage can be sent again without
 * doubling anything.
 *
 * @module
 */
import type { Redis } from 'ioredis';

/** Fields per event in {@link EVENTS}'s arguments: kind, session id, partition, then four of the kind's own. */
export const EVENT_FIELDS = 7;

/**
 * A batch of events, in order (everything the intermediary sent in one turn
 * of the event loop): one script call instead of one per event, so Redis
 * and the holder pay the call's overhead once per batch. ARGV: stream
 * bound, holder id, then {@link EVENT_FIELDS} fields per event. Returns one
 * number per event (1 stored, 0 already there: skipped, -1 no such session).
 *
 * - \`c\` connect (data, state, resumed): the session hash, the partition's
 *   and the holder's session sets, and the \`connect\` entry. Does nothing
 *   when the session hash exists (the same user announced again after the
 *   holder's link to Redis came back).
 * - \`i\` input (line number, line, txn id): added once. \`inN\` is the
 *   number of the session's last line on the stream; a line sent again (its
 *   reply was lost) has a number not above it and is skipped.
 * - \`d\` disconnect (reason): one \`disconnect\` entry, only if the holder
 *   still counts the user (not already reaped).
 * - \`f\` telnet or gmcp frame (the frame, telnet options or ''): relayed as
 *   is; \`telnet\` also updates what a resumed \`connect\` says.
 *
 * Each event is idempotent on its own, so a batch whose reply was lost can
 * be sent again whole.
 */
const EVENTS = `
local maxlen = ARGV[1]
local holder = ARGV[2]
local out = {}
local n = 0
for i = 3, #ARGV, ${EVENT_FIELDS} do
  local t, id, p = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local session = 'imi:session:' .. id
  local stream = 'imi:part:' .. p
  local r = 1
  if t == 'i' then
    local last = redis.call('HGET', session, 'inN')
    if not last then
      r = -1
    elseif tonumber(last) >= tonumber(ARGV[i + 3]) then
      r = 0
    else
      redis.call('HSET', session, 'inN', ARGV[i + 3])
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', 'input', 'id', id, 'v', ARGV[i + 4], 'x', ARGV[i + 5])
    end
  elseif t == 'c' then
    if redis.call('EXISTS', session) == 1 then
      r = 0
    else
      redis.call('HSET', session, 'holder', holder, 'part', p, 'data', ARGV[i + 3], 'state', ARGV[i + 4], 'telnet', '', 'inN', '0', 'ann', '0')
      redis.call('SADD', stream .. ':sessions', id)
      redis.call('SADD', 'imi:holder:' .. holder .. ':sessions', id)
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', 'connect', 'id', id, 'h', holder, 'd', ARGV[i + 3], 's', ARGV[i + 4], 'r', ARGV[i + 5])
    end
  elseif t == 'd' then
    if redis.call('SREM', 'imi:holder:' .. holder .. ':sessions', id) == 0 then
      r = 0
    else
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', 'disconnect', 'id', id, 'r', ARGV[i + 3])
    end
  elseif t == 'f' then
    if redis.call('EXISTS', session) == 0 then
      r = 0
    else
      if ARGV[i + 4] ~= '' then redis.call('HSET', session, 'telnet', ARGV[i + 4]) end
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', 'frame', 'id', id, 'f', ARGV[i + 3])
    end
  end
  n = n + 1
  out[n] = r
end
return out`;

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
  imiEvents: { numberOfKeys: 0, lua: EVENTS },
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
 * @returns what the script returns
 */
export function runHolderScript<T = number>(redis: Redis, name: HolderScript, keys: string[], args: Array<string | number>): Promise<T> {
  const command = (redis as unknown as Record<string, (...parts: Array<string | number>) => Promise<T>>)[name]!;
  return command.call(redis, ...keys, ...args);
}
