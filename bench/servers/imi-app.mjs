// The imi app of the benchmarks: an upper-caser on @imi/client, as
// examples/uppercaser (a buildResponse tap), with acks on and every other
// option at its default. It sends nothing on connect, so every line a user
// gets is the reply to a line they sent.
//
// Usage: node --expose-gc bench/servers/imi-app.mjs --port <appPort>
// Prints {"event":"synced","t0":..,"at":..,"count":N,"cpuMs":..} on each resync (t0:
// wall-clock ms just before connect() was called; cpuMs: this process's CPU
// time since then) and {"event":"ready"} once
// connect() resolved. Answers `mem` and `stats` on stdin.
import { Client } from '@imi/client';
import { controlChannel, emit, parseFlags, wallNow } from '../lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const app = new Client({ port: Number(flags.port), name: 'bench-uppercaser' });
app.hooks.buildResponse.tap('UpperCaser', (reply, _session, line) => (reply ?? line + '\r\n').toUpperCase());
// IMI_UNKNOWN_ID is normal when users leave while their reply is in flight (the
// loadgen closing them all at the end of a run): counted, not printed.
const errors = {};
app.on('error', (error) => {
  errors[error.code] = (errors[error.code] ?? 0) + 1;
  if (error.code !== 'IMI_UNKNOWN_ID') process.stderr.write(`imi-app: ${error.message}\n`);
});

let t0 = 0;
let cpu0 = process.cpuUsage();
app.on('synced', (count) => {
  const cpu = process.cpuUsage(cpu0);
  emit('synced', { t0, at: wallNow(), count, cpuMs: (cpu.user + cpu.system) / 1000 });
});

controlChannel({ stats: () => ({ event: 'stats', sessions: app.sessions.size, status: app.status, errors }) });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}

t0 = wallNow();
cpu0 = process.cpuUsage();
await app.connect();
emit('ready', { pid: process.pid, t0, at: wallNow(), sessions: app.sessions.size });
