// baseline-direct: a plain Node `net` server that upper-cases each line
// itself. One process, no intermediary: the ceiling for one hop.
//
// Written the way a competent dev writes a line server: noDelay (interactive
// traffic), utf8 decoding, a string buffer split on "\n", one write per line
// (the reply is `LINE\r\n`, as the imi app's).
//
// Usage: node --expose-gc bench/servers/direct.mjs [--port 0] [--host 127.0.0.1]
// Prints {"event":"ready","port":N}; answers `mem` on stdin.
import net from 'node:net';
import { controlChannel, emit, parseFlags } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
let users = 0;

const server = net.createServer({ noDelay: true }, (socket) => {
  users++;
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      socket.write(line.toUpperCase() + '\r\n');
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => users--);
});

server.listen({ port: Number(flags.port ?? 0), host: flags.host ?? '127.0.0.1', backlog: 4096 }, () => {
  emit('ready', { port: server.address().port, pid: process.pid });
});

controlChannel({ stats: () => ({ event: 'stats', sessions: users }) });
process.on('SIGTERM', () => process.exit(0));
