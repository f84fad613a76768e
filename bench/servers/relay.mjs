// baseline-relay, the relay process: a deliberately minimal two-process relay
// (users <-> relay <-> app over NDJSON, no features). What the hop costs at
// the least.
//
// What it does, all of it: users connect to the user port; each gets an id
// (a counter); their bytes are decoded as utf8 and split on "\n" (CR
// stripped); each line becomes one JSON message to the app,
// {"type":"input","id":N,"line":"..."}, written with one socket.write (no
// batching). The app connects to the app port (one app connection); its
// stream is split on "\n" and each line JSON.parsed; {"type":"output",
// "id":N,"data":"..."} is written to that user with one socket.write.
// Users' connects and disconnects are told to the app the same way. Input
// from users while no app is connected is dropped. noDelay everywhere.
// No acks, no queues, no resync, no limits.
//
// Usage: node --expose-gc bench/servers/relay.mjs [--port 0] [--app-port 0]
// Prints {"event":"ready","port":N,"appPort":M}, {"event":"app-connected"}.
import net from 'node:net';
import { controlChannel, emit, parseFlags } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const host = flags.host ?? '127.0.0.1';
const users = new Map();
let nextId = 1;
let app;

function toApp(message) {
  if (app !== undefined) app.write(JSON.stringify(message) + '\n');
}

const userServer = net.createServer({ noDelay: true }, (socket) => {
  const id = nextId++;
  users.set(id, socket);
  toApp({ type: 'connect', id });
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      toApp({ type: 'input', id, line });
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    users.delete(id);
    toApp({ type: 'disconnect', id });
  });
});

const appServer = net.createServer({ noDelay: true }, (socket) => {
  app = socket;
  emit('app-connected');
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        continue;
      }
      if (message.type === 'output') users.get(message.id)?.write(message.data);
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    if (app === socket) app = undefined;
  });
});

let listening = 0;
const ready = () => {
  if (++listening < 2) return;
  emit('ready', { port: userServer.address().port, appPort: appServer.address().port, pid: process.pid });
};
userServer.listen({ port: Number(flags.port ?? 0), host, backlog: 4096 }, ready);
appServer.listen({ port: Number(flags.appPort ?? 0), host: '127.0.0.1' }, ready);

controlChannel({ stats: () => ({ event: 'stats', sessions: users.size }) });
process.on('SIGTERM', () => process.exit(0));
