// imi in-process: `new Intermediary(...)` from @imi/server with default
// options (users on 127.0.0.1), for the measurements that need to look
// inside the process (heap, resync timing, queued lines). The throughput
// runs use the imi-server CLI itself.
//
// Usage: node --expose-gc bench/servers/imi-wrapper.mjs [--max-connections N]
// Prints {"event":"ready","port":N,"appPort":M}, and app-connect,
// app-disconnect, synced ({count, durationMs}) events. Answers `mem` and
// `stats` on stdin.
import { Intermediary } from '@imi/server';
import { controlChannel, emit, parseFlags, wallNow } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const options = { externalPort: 0, clientPort: 0, host: '127.0.0.1' };
if (flags.maxConnections !== undefined) options.maxConnections = Number(flags.maxConnections);
const imi = new Intermediary(options);
imi.on('appConnect', () => emit('app-connect', { at: wallNow() }));
imi.on('appDisconnect', (_app, reason) => emit('app-disconnect', { at: wallNow(), reason }));
imi.on('synced', (_app, count, durationMs) => emit('synced', { at: wallNow(), count, durationMs }));

const ports = await imi.listen();
emit('ready', { port: ports.externalPort, appPort: ports.clientPort, pid: process.pid });

controlChannel({
  stats: () => {
    const s = imi.stats();
    return { event: 'stats', sessions: s.sessions, appConnected: s.appConnected, queuedLines: s.queuedLines, unacked: s.unacked, inputLines: s.inputLines, lastResyncMs: s.lastResyncMs, refused: s.refused, dropped: s.dropped };
  },
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => void imi.close('shutdown').then(() => process.exit(0)));
}
