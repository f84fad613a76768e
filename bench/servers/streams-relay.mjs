// The "bare" system of bench/cluster.mjs: the least a relay over Redis
// Streams can do on this machine, to measure cluster mode against. A holder
// (the users' sockets) `XADD`s each line to one stream; a worker blocks on
// `XREAD`, upper-cases the line and `XADD`s the reply to a second stream;
// the holder blocks on `XREAD` there and writes each reply to its user.
// ioredis with auto-pipelining (one write a turn per connection). None of
// what cluster mode is for: no consumer group, acks, pending entries,
// leases, fencing, per-user order across workers, sessions in Redis,
// validation, limits or recovery of any kind.
//
// With --acks the worker reads with a consumer group (`XREADGROUP … BLOCK`)
// and writes each read's replies with their acks in one transaction
// (`MULTI`, an `XADD` per reply, `XACK` and `XDEL` of the inputs, `EXEC`):
// still no Lua, leases, fencing or sessions.
//
// Usage: node bench/servers/streams-relay.mjs --role holder --redis-port P
//        node bench/servers/streams-relay.mjs --role worker --redis-port P [--acks]
// The holder listens on a free port and prints {"event":"ready","port":N};
// the worker prints {"event":"ready"}.
import net from 'node:net';
import { createRequire } from 'node:module';
import { emit, parseFlags } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const { Redis } = createRequire(new URL('../../packages/client/package.json', import.meta.url))('ioredis');
const port = Number(flags.redisPort);
const commands = new Redis({ port, enableAutoPipelining: true });
const reader = new Redis({ port });
const BOUND = '100000';

/** Reads a stream for ever, handing each entry's fields to `onEntry`. */
async function follow(key, onEntry) {
  // The streams are new (this Redis has no bare:* keys before): everything in them is to be read.
  let last = '0-0';
  for (;;) {
    const result = await reader.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', key, last);
    if (result === null) continue;
    for (const [id, fields] of result[0][1]) {
      last = id;
      onEntry(fields);
    }
  }
}

if (flags.role === 'holder') {
  const users = new Map();
  let next = 0;
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    const id = String(++next);
    users.set(id, socket);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        void commands.xadd('bare:in', 'MAXLEN', '~', BOUND, '*', 'u', id, 'v', line);
      }
    });
    socket.on('close', () => users.delete(id));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => emit('ready', { pid: process.pid, port: server.address().port }));
  await follow('bare:out', (fields) => users.get(fields[1])?.write(fields[3]));
} else if (flags.acks === true) {
  await commands.xgroup('CREATE', 'bare:in', 'bare', '0', 'MKSTREAM').catch(() => {});
  emit('ready', { pid: process.pid });
  for (;;) {
    const result = await reader.xreadgroup('GROUP', 'bare', 'worker', 'COUNT', 1000, 'BLOCK', 1000, 'STREAMS', 'bare:in', '>');
    if (result === null) continue;
    const transaction = commands.multi();
    const ids = [];
    for (const [id, fields] of result[0][1]) {
      ids.push(id);
      transaction.xadd('bare:out', 'MAXLEN', '~', BOUND, '*', 'u', fields[1], 'v', fields[3].toUpperCase() + '\r\n');
    }
    transaction.xack('bare:in', 'bare', ...ids).xdel('bare:in', ...ids);
    void transaction.exec();
  }
} else {
  emit('ready', { pid: process.pid });
  await follow('bare:in', (fields) => void commands.xadd('bare:out', 'MAXLEN', '~', BOUND, '*', 'u', fields[1], 'v', fields[3].toUpperCase() + '\r\n'));
}
