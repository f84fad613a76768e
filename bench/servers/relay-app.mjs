// baseline-relay, the app process: connects to the relay's app port, splits
// its stream on "\n", JSON.parses each message and answers each input with
// one output message, {"type":"output","id":N,"data":"LINE\r\n"}, written
// with one socket.write (no batching). See relay.mjs.
//
// Usage: node bench/servers/relay-app.mjs --port <appPort>
import net from 'node:net';
import { controlChannel, emit, parseFlags } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const users = new Set();
const socket = net.connect({ port: Number(flags.port), host: flags.host ?? '127.0.0.1', noDelay: true });
socket.setNoDelay(true);
socket.setEncoding('utf8');
let buffer = '';
socket.on('connect', () => emit('connected', { pid: process.pid }));
socket.on('data', (chunk) => {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf('\n')) !== -1) {
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    const message = JSON.parse(line);
    if (message.type === 'input') {
      socket.write(JSON.stringify({ type: 'output', id: message.id, data: message.line.toUpperCase() + '\r\n' }) + '\n');
    } else if (message.type === 'connect') {
      users.add(message.id);
    } else if (message.type === 'disconnect') {
      users.delete(message.id);
    }
  }
});
socket.on('close', () => process.exit(0));
socket.on('error', (error) => {
  process.stderr.write(`relay-app: ${error.message}\n`);
});

controlChannel({ stats: () => ({ event: 'stats', sessions: users.size }) });
process.on('SIGTERM', () => process.exit(0));
