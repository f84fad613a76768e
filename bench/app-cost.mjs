// What an app costs per event, without the intermediary: a fake
// intermediary (this process) announces N users to an app process, then
// sends each of them an input, waits for all N replies, and again, for a
// while; the app's CPU time (from /proc) per input event is printed. The
// fake side does little (no validation, no user sockets), so the number is
// the SDK's own (@imi/client: decode, events, hooks, acks, encode, write).
//
// Usage: node bench/app-cost.mjs [--users 100] [--seconds 3] [--app bench/servers/imi-app.mjs] [--node-args "--cpu-prof"]
// Prints {"event":"result","users":N,"eventsPerSec":..,"appCpuPercent":..,"usPerEvent":..}.
//
// With --resync: only the resync. The fake intermediary announces the users
// (one `connect` frame each, all in one write) and `synced`; prints
// {"event":"result","users":N,"connectToSyncedMs":..,"appCpuMs":..} (the
// app's own wall and CPU time from just before connect() to its `synced`
// event) and stops the app.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { benchDir, clkTck, emit, parseFlags, processTicks } from './lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const users = Number(flags.users ?? 100);
const seconds = Number(flags.seconds ?? 3);
const appScript = flags.app ? String(flags.app) : `${benchDir}servers/imi-app.mjs`;
const nodeArgs = flags.nodeArgs ? String(flags.nodeArgs).split(' ').filter(Boolean) : [];
const resyncOnly = flags.resync === true;
const ids = Array.from({ length: users }, (_, i) => `5f0c2a4e-8d1e-4c3b-9a77-${String(i).padStart(12, '0')}`);
let seq = 0;
let app;

const server = net.createServer({ noDelay: true }, (socket) => {
  let buffer = '';
  let waiting = 0;
  let events = 0;
  let running = false;
  const sendBatch = () => {
    let out = '';
    for (const id of ids) {
      seq++;
      out += `{"param":"input","data":{"id":"${id}","value":"look around ${seq}"},"txn_id":"77c2a4e0-8d1e-4c3b-9a77-${String(seq).padStart(12, '0')}","seq":${seq}}\n`;
    }
    waiting = users;
    socket.write(out);
  };
  const start = () => {
    running = true;
    const ticks0 = processTicks(app.pid);
    const t0 = performance.now();
    sendBatch();
    setTimeout(() => {
      running = false;
      const cpuMs = ((processTicks(app.pid) - ticks0) / clkTck()) * 1000;
      const wallMs = performance.now() - t0;
      emit('result', { users, eventsPerSec: events / (wallMs / 1000), appCpuPercent: (cpuMs / wallMs) * 100, usPerEvent: (cpuMs * 1000) / events });
      app.kill('SIGTERM');
      app.once('exit', () => process.exit(0));
    }, seconds * 1000);
  };
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.includes('"param":"hello"')) {
        let out = '';
        for (const id of ids) {
          out += JSON.stringify({ param: 'connect', data: { id, transport: 'tcp', remote: { address: '127.0.0.1', port: 1 }, connectedAt: Date.now(), resumed: true, state: {} }, txn_id: `c-${id}`, seq: ++seq }) + '\n';
        }
        out += JSON.stringify({ param: 'synced', data: { count: users }, txn_id: 'synced' }) + '\n';
        socket.write(out);
        if (!resyncOnly) setTimeout(start, 300);
      } else if (line.includes('"param":"output"')) {
        if (--waiting === 0 && running) {
          events += users;
          sendBatch();
        }
      }
    }
  });
  socket.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  app = spawn(process.execPath, [...nodeArgs, appScript, '--port', String(server.address().port)], { stdio: ['pipe', resyncOnly ? 'pipe' : 'ignore', 'inherit'] });
  if (resyncOnly) {
    let out = '';
    app.stdout.setEncoding('utf8');
    app.stdout.on('data', (chunk) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.includes('"event":"synced"'));
      if (line === undefined) return;
      out = '';
      const synced = JSON.parse(line);
      emit('result', { users, connectToSyncedMs: synced.at - synced.t0, appCpuMs: synced.cpuMs });
      app.kill('SIGTERM');
      app.once('exit', () => process.exit(0));
    });
  }
});
