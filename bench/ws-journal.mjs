// What journaling WebSocket sessions costs under --supervise (issue #16 item 3):
// CPU time of the supervisor and the worker per 1,000 WebSocket input lines,
// for two builds of this repository side by side — a baseline (say main,
// extracted with `git archive main | tar -x -C /tmp/imi-base`, then
// `pnpm install --offline && pnpm build` there) and this one — run
// interleaved, medians of the repetitions. CPU from /proc (clock ticks), not
// wall time: the machine may be shared. By hand only; never part of the tests.
//
//   node bench/ws-journal.mjs <baseline root> <candidate root> [reps=5] [users=40] [lines=300]
//
// Each run: imi-server --supervise with a ws listener, an echo app on
// @imi/client, `users` imi.v1 users each sending `lines` lines (all users one
// line every 5 ms), until every reply came back.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const [baseRoot, newRoot] = process.argv.slice(2, 4).map((root) => resolve(root ?? '.'));
const [REPS, USERS, LINES] = [process.argv[4] ?? 5, process.argv[5] ?? 40, process.argv[6] ?? 300].map(Number);
const WebSocket = createRequire(`${newRoot}/packages/server/package.json`)('ws');
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
/** utime + stime of a process, in clock ticks (10 ms on Linux). */
const ticks = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
async function waitFor(predicate, ms, what) {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function run(root) {
  const child = spawn(process.execPath, [`${root}/packages/server/dist/cli.js`, '--supervise', '--external-port', '0', '--client-port', '0', '--ws-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text) => (out += text));
  child.stderr.resume();
  await waitFor(() => /admin: port \d+/.test(out), 15_000, 'the server');
  const clientPort = Number(/app on port (\d+)/.exec(out)[1]);
  const wsPort = Number(/ws on port (\d+)/.exec(out)[1]);
  const workerPid = Number(/worker (\d+) started/.exec(out)[1]);
  const appCode = `import('${root}/packages/client/dist/index.js').then(async ({ Client }) => { const c = new Client({ port: ${clientPort}, name: 'bench' }); c.on('input', (s, l) => s.send(l + '!')); c.on('error', () => {}); await c.connect(); console.log('ready'); })`;
  const app = spawn(process.execPath, ['-e', appCode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let appOut = '';
  app.stdout.setEncoding('utf8').on('data', (text) => (appOut += text));
  await waitFor(() => appOut.includes('ready'), 15_000, 'the app');
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const user = { ws: new WebSocket(`ws://127.0.0.1:${wsPort}/`, ['imi.v1']), got: 0 };
    user.ws.on('message', (_data, binary) => binary || user.got++);
    await new Promise((done) => user.ws.once('open', done));
    users.push(user);
  }
  await sleep(300);
  const [supervisor0, worker0] = [ticks(child.pid), ticks(workerPid)];
  for (let n = 0; n < LINES; n++) {
    for (const user of users) user.ws.send(`line-${n}`);
    await sleep(5);
  }
  await waitFor(() => users.every((user) => user.got >= LINES), 60_000, 'every reply');
  await sleep(100);
  const [supervisor, worker] = [ticks(child.pid) - supervisor0, ticks(workerPid) - worker0];
  for (const user of users) user.ws.terminate();
  app.kill('SIGKILL');
  child.kill('SIGTERM');
  await new Promise((done) => child.once('exit', done));
  const perThousand = (tickCount) => (tickCount * 10) / ((USERS * LINES) / 1000);
  return { total: perThousand(supervisor + worker), worker: perThousand(worker), supervisor: perThousand(supervisor) };
}

const results = { baseline: [], candidate: [] };
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? [['baseline', baseRoot], ['candidate', newRoot]] : [['candidate', newRoot], ['baseline', baseRoot]];
  for (const [name, root] of order) results[name].push(await run(root));
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`CPU ms per 1,000 WebSocket input lines under --supervise (${USERS} users x ${LINES} lines, ${REPS} interleaved reps; median [min-max])`);
for (const key of ['total', 'worker', 'supervisor']) {
  const [base, cand] = [results.baseline.map((r) => r[key]), results.candidate.map((r) => r[key])];
  const ratio = median(base) > 0 ? (median(cand) / median(base)).toFixed(2) : 'n/a';
  console.log(`${key.padEnd(10)} baseline ${median(base).toFixed(1)} [${Math.min(...base).toFixed(1)}-${Math.max(...base).toFixed(1)}]  candidate ${median(cand).toFixed(1)} [${Math.min(...cand).toFixed(1)}-${Math.max(...cand).toFixed(1)}]  ratio ${ratio}`);
}
