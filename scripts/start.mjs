// `npm start`: sets up if needed, then runs the intermediary and an example
// app side by side, restarting the app whenever it exits (as systemd's
// Restart=always would). Kill the app (see the printed pid) to watch users
// stay connected. Ctrl-C stops both.
//
//   npm start                  # the mini-mud example (falls back to echo)
//   IMI_EXAMPLE=echo npm start # another example
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build, ensureInstalled, root } from './ensure-setup.mjs';

ensureInstalled();
build();

const externalPort = process.env.IMI_EXTERNAL_PORT ?? '6715';
const clientPort = process.env.IMI_CLIENT_PORT ?? '9000';
const wanted = process.env.IMI_EXAMPLE ?? 'mini-mud';
const example = existsSync(join(root, 'examples', wanted, 'index.js')) ? wanted : 'echo';
const env = { ...process.env, IMI_CLIENT_PORT: clientPort };

// The children run in process groups of their own (detached): a Ctrl-C in
// the terminal then reaches this script only, which stops each child once
// with SIGTERM. (In the terminal's group they would get the SIGINT too, and
// the intermediary takes a second signal as "exit at once".)
const server = spawn(process.execPath, [join(root, 'packages/server/dist/cli.js'), '--external-port', externalPort, '--client-port', clientPort], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env,
  detached: true,
});
let stopping = false;
let app;
function startApp() {
  if (stopping) return; // a restart was scheduled before Ctrl-C
  app = spawn(process.execPath, [join(root, 'examples', example, 'index.js')], { stdio: ['ignore', 'inherit', 'inherit'], env, detached: true });
  console.log(`[start] ${example} app running as pid ${app.pid} (try: kill -9 ${app.pid})`);
  app.on('exit', (code, signal) => {
    if (stopping) return;
    console.log(`[start] app exited (${signal ?? code}); restarting in 1 s — connected users stay connected`);
    setTimeout(startApp, 1000);
  });
}
setTimeout(startApp, 300);
console.log(`[start] connect as a user with: telnet localhost ${externalPort}   (or: nc localhost ${externalPort})`);

function stop() {
  if (stopping) return;
  stopping = true;
  app?.kill('SIGTERM');
  server.kill('SIGTERM');
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('SIGHUP', stop);
// Should this script die of an error, do not leave the children behind.
process.on('exit', () => {
  for (const child of [app, server]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
server.on('exit', (code) => {
  stop();
  process.exitCode = code ?? 0;
});
