// The handover benchmark (issue #16 part 5): how long `imi-server upgrade`
// takes with many users, and what one user notices meanwhile; and the same
// for a SIGKILL of the worker under --supervise. By hand only; never part of
// the tests. Builds nothing: run `pnpm build` (or `pnpm bench:handover`).
//
//   node bench/handover.mjs [--users 1000,10000] [--busy 1000] [--reps N]
//                           [--crash-users 1000] [--crash-wait-ms 2000] [--type-ms 1000] [--probe-ms 20]
//                           [--only upgrade,crash] [--out DIR --name NAME] [--note TEXT]
//                           [--server-log]   (echo imi-server's stderr) [--cli PATH]
//                           [--profile DIR]  (CPU profiles of every server generation)
//   node bench/handover.mjs --merge a.json,b.json [--baseline c.json,d.json --baseline-name NAME]
//                           [--out DIR --name NAME] [--note TEXT]   (renders interleaved sessions together)
//
// Each scenario is one imi-server (+ an echo app on @imi/client, + a
// process holding the users): `--users` idle users each, then `--busy`
// users who all type a line every `--type-ms`, upgraded `--reps` times via
// `POST /upgrade`; then `--crash-users` users under `--supervise`, the worker
// SIGKILLed `--reps` times, the first `--crash-wait-ms` after the users
// were let in (0: while the worker still sends their sockets up to the
// supervisor, which lags a burst: docs/guarantees.md). Beside them a probe
// user (in this process) types a line every `--probe-ms` and times each
// answer. Measured per handover:
//   admin      `durationMs` of the POST /upgrade answer (signal → successor serving)
//   external   signal → the probe's first answer after the pid file named the successor
//   worst rtt  the probe's longest round trip among lines sent around the handover
//   gap        the longest time the probe went without an answer
// and per scenario: users closed, busy users' lines answered / lost / doubled /
// out of order, open descriptors of each process, their limit.
//
// Roles (this file forks itself): --role app, --role users.
import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseFlags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key] = argv[++i];
    else out[key] = true;
  }
  return out;
}
const flags = parseFlags(process.argv.slice(2));
// --cli PATH: another build's imi-server (e.g. a worktree of main, for a baseline in the same run).
const CLI = flags.cli ? String(flags.cli) : join(root, 'packages/server/dist/cli.js');

/** What the load average at the start says about the machine (2 cores: under 2 nothing else ran much). */
function quietOrNot(load) {
  const first = Number(String(load).split(' ')[0]);
  return Number.isFinite(first) && first < os.cpus().length
    ? `Quiet at the start (1-minute load average ${first} under ${os.cpus().length} cores; no other work was started during the run): the spread is this VM's own noise.`
    : '**Shared and noisy** (other builds and test runs were going on): take the numbers as an order of magnitude, the spread as a hint of the noise.';
}

// ---------------------------------------------------------------- role: app
async function runApp() {
  const { Client } = await import('@imi/client');
  // The reconnect policy is @imi/client's default (first retry after 100 ms ± 25 %): since a handover says so
  // (shutdown reason 'handover'), the SDK retries at once; an old imi-server (--cli) makes it wait the delay.
  const app = new Client({ port: Number(flags.port), name: 'handover-bench' });
  app.on('input', (session, line) => session.send(`${line}!\r\n`));
  app.on('error', () => {});
  // --app-log: when the app lost the link, retried, and was resynced (epoch ms, to line up with imi-server's log).
  if (flags.appLog) for (const event of ['linkDown', 'reconnecting', 'linkUp', 'synced']) app.on(event, (...args) => process.stderr.write(`[app] ${Date.now()} ${event} ${JSON.stringify(args.map((a) => (typeof a === 'object' ? String(a?.message ?? a) : a)))}\n`));
  await app.connect();
  process.send({ event: 'ready' });
}

// -------------------------------------------------------------- role: users
async function runUsers() {
  const port = Number(flags.port);
  const count = Number(flags.users);
  const busy = Number(flags.busy ?? 0);
  const typeMs = Number(flags.typeMs ?? 1000);
  const users = [];
  let closed = 0;
  const connect = (i) =>
    new Promise((resolve, reject) => {
      // Spread over local addresses: no source-port shortage at 10k.
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${1 + (i % 8)}` });
      const user = { socket, sent: 0, expect: 1, answered: 0, doubled: 0, outOfOrder: 0, buffer: '' };
      socket.setEncoding('utf8');
      socket.on('data', (text) => {
        user.buffer += text;
        let nl;
        while ((nl = user.buffer.indexOf('\n')) !== -1) {
          const line = user.buffer.slice(0, nl).replace(/\r$/, '');
          user.buffer = user.buffer.slice(nl + 1);
          const match = /^u\d+-(\d+)!$/.exec(line);
          if (!match) continue;
          const k = Number(match[1]);
          if (k === user.expect) {
            user.answered++;
            user.expect++;
          } else if (k < user.expect) user.doubled++;
          else {
            user.outOfOrder++;
            user.answered++;
            user.expect = k + 1;
          }
        }
      });
      socket.on('close', () => closed++);
      socket.on('error', () => {});
      socket.once('connect', () => resolve(user));
      socket.once('error', reject);
    });
  for (let i = 0; i < count; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 200); j++) batch.push(connect(j));
    users.push(...(await Promise.all(batch)));
  }
  const timers = [];
  const typing = users.slice(0, busy);
  const startTyping = () => {
    for (const [i, user] of typing.entries()) {
      timers.push(
        setTimeout(() => {
          const type = () => user.socket.write(`u${i}-${++user.sent}\n`);
          type();
          timers.push(setInterval(type, typeMs));
        }, (i * typeMs) / Math.max(1, typing.length)),
      );
    }
  };
  const report = () => {
    const sum = (key) => typing.reduce((total, user) => total + user[key], 0);
    return { closed, sent: sum('sent'), answered: sum('answered'), doubled: sum('doubled'), outOfOrder: sum('outOfOrder') };
  };
  process.on('message', async (message) => {
    if (message.cmd === 'type') startTyping();
    if (message.cmd === 'stop') {
      for (const timer of timers) clearTimeout(timer), clearInterval(timer);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && typing.some((user) => user.expect <= user.sent)) await sleep(50);
      process.send({ event: 'report', ...report() });
    }
  });
  process.send({ event: 'connected', users: users.length });
}

// ------------------------------------------------------------ orchestration
function median(values) {
  const list = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (list.length === 0) return undefined;
  const mid = list.length >> 1;
  return list.length % 2 ? list[mid] : (list[mid - 1] + list[mid]) / 2;
}
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const orUndefined = (read) => {
  try {
    return read();
  } catch {
    return undefined;
  }
};
const fds = (pid) => orUndefined(() => readdirSync(`/proc/${pid}/fd`).length);
const fdLimit = (pid) => orUndefined(() => Number(/Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))[1]));
function log(message) {
  process.stderr.write(`[handover ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function waitMessage(child, event, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const on = (message) => {
      if (message?.event !== event) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(message);
    };
    child.on('message', on);
  });
}

async function startServer(extra) {
  const dir = mkdtempSync(join(os.tmpdir(), 'imi-hobench-'));
  const pidFile = join(dir, 'imi.pid');
  const args = [CLI, '--external-port', '0', '--client-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--pid-file', pidFile, '--log-level', flags.serverLogLevel ? String(flags.serverLogLevel) : 'warn', '--max-connections', '100000', '--max-connections-per-ip', '100000', '--connect-rate-per-ip', '1000000', '--upgrade-timeout-ms', '60000', ...extra];
  // --profile DIR: every generation of the server writes DIR/imi-<pid>.cpuprofile (see lib/profiled-cli.mjs).
  const env = flags.profile === undefined ? process.env : { ...process.env, IMI_BENCH_PROFILE_DIR: String(flags.profile), IMI_BENCH_CLI: CLI };
  if (flags.profile !== undefined) args[0] = join(root, 'bench/lib/profiled-cli.mjs');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (text) => (out += text));
  child.stderr.setEncoding('utf8').on('data', (text) => {
    err += text;
    if (flags.serverLog) process.stderr.write(text);
  });
  const deadline = Date.now() + 20_000;
  while (!/admin: port \d+/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`imi-server did not start: ${err}`);
    await sleep(20);
  }
  const ports = /users on port (\d+) .*app on port (\d+)/.exec(out);
  const server = { child, pidFile, dir, port: Number(ports[1]), appPort: Number(ports[2]), adminPort: Number(/admin: port (\d+)/.exec(out)[1]), err: () => err, out: () => out, pids: new Set([child.pid]) };
  server.pid = () => Number(readFileSync(pidFile, 'utf8').trim());
  server.stats = async () => (await fetch(`http://127.0.0.1:${server.adminPort}/stats`)).json();
  return server;
}

/** A user typing `probe-<k>` every `everyMs` and timing each answer. */
function startProbe(port, everyMs) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  const probe = { sentAt: [], answeredAt: [], closed: false, others: 0 };
  let buffer = '';
  socket.setEncoding('utf8').on('data', (text) => {
    const now = performance.now();
    buffer += text;
    let nl;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      const match = /^probe-(\d+)!$/.exec(line);
      if (match && probe.answeredAt[Number(match[1])] === undefined) probe.answeredAt[Number(match[1])] = now;
      else if (line.length > 0) probe.others++;
    }
  });
  socket.on('close', () => (probe.closed = true));
  socket.on('error', () => {});
  const timer = setInterval(() => {
    probe.sentAt.push(performance.now());
    socket.write(`probe-${probe.sentAt.length - 1}\n`);
  }, everyMs);
  probe.stop = () => {
    clearInterval(timer);
    socket.destroy();
  };
  /** What the probe saw from `from` to `to` (performance.now() times). */
  probe.window = (from, to) => {
    let worstRtt = 0;
    let lost = 0;
    const answers = [];
    for (let k = 0; k < probe.sentAt.length; k++) {
      const sent = probe.sentAt[k];
      const answered = probe.answeredAt[k];
      if (sent < from - 1000 || sent > to) continue;
      if (answered === undefined) lost++;
      else worstRtt = Math.max(worstRtt, answered - sent);
      if (answered !== undefined) answers.push(answered);
    }
    answers.sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < answers.length; i++) gap = Math.max(gap, answers[i] - answers[i - 1]);
    return { worstRtt, gap, lost };
  };
  /** The first answer received after `at`, to a line sent after `sentAfter`. */
  probe.firstAnswerAfter = (at, sentAfter = -Infinity) => {
    let first;
    for (let k = 0; k < probe.sentAt.length; k++) {
      const answered = probe.answeredAt[k];
      if (answered !== undefined && answered >= at && probe.sentAt[k] >= sentAfter && (first === undefined || answered < first)) first = answered;
    }
    return first;
  };
  return probe;
}

/** Samples the open descriptors of the given pids every 25 ms; returns the peaks. */
function sampleFds(getPids) {
  const peaks = {};
  const timer = setInterval(() => {
    for (const pid of getPids()) peaks[pid] = Math.max(peaks[pid] ?? 0, fds(pid) ?? 0);
  }, 25);
  return { stop: () => (clearInterval(timer), peaks) };
}

async function populate(server, users, busy, typeMs) {
  const app = fork(SELF, ['--role', 'app', '--port', String(server.appPort), ...(flags.appLog ? ['--app-log'] : [])], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await waitMessage(app, 'ready', 20_000);
  const started = performance.now();
  const load = fork(SELF, ['--role', 'users', '--port', String(server.port), '--users', String(users), '--busy', String(busy), '--type-ms', String(typeMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await waitMessage(load, 'connected', 300_000);
  const deadline = Date.now() + 120_000;
  while ((await server.stats()).stats.sessions < users && Date.now() < deadline) await sleep(200);
  log(`${users} users connected in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { app, load };
}

async function upgradeScenario({ users, busy, reps, typeMs, probeMs }) {
  const label = `${users} ${busy > 0 ? 'busy' : 'idle'}`;
  log(`upgrade: ${label} users, ${reps} reps`);
  const server = await startServer([]);
  const { app, load } = await populate(server, users, busy, typeMs);
  const probe = startProbe(server.port, probeMs);
  if (busy > 0) load.send({ cmd: 'type' });
  await sleep(2000);
  const runs = [];
  const fdInfo = { users: users + 1, limit: fdLimit(server.pid()), loadgen: fds(load.pid), loadgenLimit: fdLimit(load.pid), peaks: [] };
  for (let rep = 1; rep <= reps; rep++) {
    const before = server.pid();
    server.pids.add(before);
    const fdsBefore = fds(before);
    let successor;
    const sampler = sampleFds(() => [before, ...(successor ? [successor] : [])]);
    let changedAt;
    const watch = setInterval(() => {
      try {
        const pid = server.pid();
        if (pid !== before && changedAt === undefined) {
          changedAt = performance.now();
          successor = pid;
        }
      } catch {}
    }, 2);
    // The successor is a child of the old process: find it as soon as it exists.
    const findChild = setInterval(() => {
      if (successor !== undefined) return;
      try {
        const children = readFileSync(`/proc/${before}/task/${before}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
        if (children.length > 0) successor = children.at(-1);
      } catch {}
    }, 10);
    const t0 = performance.now();
    const response = await fetch(`http://127.0.0.1:${server.adminPort}/upgrade`, { method: 'POST' });
    const answer = await response.json();
    const answeredAt = performance.now();
    while (changedAt === undefined && performance.now() - t0 < 30_000) await sleep(5);
    clearInterval(watch);
    clearInterval(findChild);
    let served;
    while ((served = probe.firstAnswerAfter(changedAt ?? Infinity)) === undefined && performance.now() - t0 < 30_000) await sleep(10);
    await sleep(2500);
    const peaks = sampler.stop();
    // Every line typed from the request until the successor's first answer (a handover may take longer than the 2.5 s after it).
    const seen = probe.window(t0, Math.max(t0 + 2500, served ?? performance.now()));
    const after = server.pid();
    server.pids.add(after);
    const run = {
      rep,
      ok: response.ok,
      sessions: answer.sessions,
      closedByUpgrade: answer.closed,
      precopied: answer.precopied,
      unchanged: answer.unchanged,
      adminMs: answer.durationMs,
      phases: answer.phases,
      answerMs: answeredAt - t0,
      externalMs: served === undefined ? undefined : served - t0,
      worstRttMs: seen.worstRtt,
      gapMs: seen.gap,
      probeLost: seen.lost,
      fdsOld: fdsBefore,
      fdsNew: fds(after),
      peakFdsOld: peaks[before],
      peakFdsNew: peaks[after],
    };
    // With --server-log-level info: the successor's own timings after commit (listen, waiting for the app, resuming users).
    const tookOver = [...server.err().matchAll(/^.*took over from the old process.*$/gm)].at(-1);
    if (tookOver) run.successor = orUndefined(() => (({ listenMs, appWaitMs, resumeMs }) => ({ listenMs, appWaitMs, resumeMs }))(JSON.parse(tookOver[0])));
    if (!response.ok) run.error = JSON.stringify(answer).slice(0, 300);
    runs.push(run);
    log(`  #${rep}: ${JSON.stringify(run)}`);
    if (!response.ok) break;
  }
  load.send({ cmd: 'stop' });
  const busyReport = await waitMessage(load, 'report', 30_000);
  const result = { kind: 'upgrade', label, users, busy, typeMs, probeMs, runs, fd: fdInfo, usersClosed: busyReport.closed, busyLines: busy > 0 ? busyReport : undefined, probeClosed: probe.closed, probeOtherLines: probe.others };
  probe.stop();
  await teardown(server, [app, load]);
  return result;
}

async function crashScenario({ users, reps, probeMs, crashWaitMs }) {
  log(`crash: ${users} users under --supervise, ${reps} SIGKILLs, the first ${crashWaitMs} ms after the last user was let in`);
  const server = await startServer(['--supervise', '--restart-delay-ms', '50']);
  const { app, load } = await populate(server, users, 0, 1000);
  const probe = startProbe(server.port, probeMs);
  await sleep(crashWaitMs);
  const runs = [];
  for (let rep = 1; rep <= reps; rep++) {
    const worker = (await server.stats()).process.pid;
    server.pids.add(worker);
    const t0 = performance.now();
    process.kill(worker, 'SIGKILL');
    let served;
    while ((served = probe.firstAnswerAfter(t0, t0)) === undefined && performance.now() - t0 < 30_000) await sleep(10);
    await sleep(2500);
    const seen = probe.window(t0, t0 + 2500);
    let newWorker;
    try {
      newWorker = (await server.stats()).process.pid;
      server.pids.add(newWorker);
    } catch {}
    const run = { rep, externalMs: served === undefined ? undefined : served - t0, worstRttMs: seen.worstRtt, gapMs: seen.gap, probeLost: seen.lost, sessions: (await server.stats()).stats.sessions, fdsSupervisor: fds(server.child.pid), fdsWorker: fds(newWorker) };
    runs.push(run);
    log(`  #${rep}: ${JSON.stringify(run)}`);
  }
  load.send({ cmd: 'stop' });
  const report = await waitMessage(load, 'report', 30_000);
  const result = { kind: 'crash', label: `${users} idle, --supervise`, users, probeMs, runs, usersClosed: report.closed, probeClosed: probe.closed, probeOtherLines: probe.others };
  probe.stop();
  await teardown(server, [app, load]);
  return result;
}

async function teardown(server, children) {
  for (const child of children) child.kill('SIGKILL');
  // SIGTERM to whichever process serves now (under --supervise: the supervisor), so it exits as usual (and writes a --cpu-prof).
  let current = server.child.pid;
  try {
    current = server.pid();
  } catch {}
  try {
    process.kill(current, 'SIGTERM');
  } catch {}
  for (let i = 0; i < 100 && [...server.pids, current].some(alive); i++) await sleep(50);
  for (const pid of server.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  rmSync(server.dir, { recursive: true, force: true });
}

const fmt = (v, digits = 0) => (v === undefined ? '–' : v.toFixed(digits));
function summary(runs, key) {
  const values = runs.map((run) => run[key]).filter((v) => Number.isFinite(v));
  if (values.length === 0) return '–';
  return `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`;
}

function render(results) {
  const lines = [
    '---\ntitle: Handover benchmarks\n---',
    '',
    '# Handover benchmark',
    '',
    `Generated by \`node bench/handover.mjs\` (${results.startedAt}); raw numbers in [benchmarks-handover.json](benchmarks-handover.json).`,
    '',
    `Machine: ${results.machine.cpus} × ${results.machine.cpu}, ${results.machine.memGb} GiB, Node ${results.machine.node}, open-files limit ${results.machine.nofile}, load average at start ${results.machine.load}. ${quietOrNot(results.machine.load)}`,
    ...(results.note ? ['', results.note] : []),
    '',
    `Each upgrade is \`POST /upgrade\` on the admin port. A probe user (plain TCP, beside the load) types a line every ${results.config.probeMs} ms through the intermediary to an echo app on @imi/client, which reconnects to the successor. Medians over the reps, (min–max) in brackets, all in ms.`,
    '',
    '- **admin**: the `durationMs` of the `POST /upgrade` answer: the request → successor spawned and booted (users still served), freeze, sessions sent, committed, successor serves.',
    '- **external**: the request → the probe\'s first answer after the pid file names the successor (the successor reads users only once the app is back).',
    '- **worst rtt**: the probe\'s longest round trip for a line typed around the handover; **gap**: the longest time it went without any answer.',
    '',
    '| case | reps | admin | external | worst rtt | gap | users closed | probe lines lost | busy lines answered / lost / doubled / out of order |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results.scenarios) {
    const busy = r.busyLines ? `${r.busyLines.answered} / ${r.busyLines.sent - r.busyLines.answered} / ${r.busyLines.doubled} / ${r.busyLines.outOfOrder}` : '–';
    const lost = r.runs.reduce((sum, run) => sum + (run.probeLost ?? 0), 0);
    const name = r.kind === 'upgrade' ? `upgrade, ${r.users} ${r.busy > 0 ? `busy (a line every ${r.typeMs} ms each)` : 'idle'}` : `SIGKILL of the worker, ${r.users} idle, --supervise`;
    lines.push(`| ${name} | ${r.runs.length} | ${r.kind === 'upgrade' ? summary(r.runs, 'adminMs') : 'n/a'} | ${summary(r.runs, 'externalMs')} | ${summary(r.runs, 'worstRttMs')} | ${summary(r.runs, 'gapMs')} | ${r.usersClosed}${r.probeClosed ? ' + probe' : ''} | ${lost} | ${busy} |`);
  }
  const upgrades = results.scenarios.filter((s) => s.kind === 'upgrade' && s.runs.some((run) => run.phases));
  if (upgrades.length > 0) {
    const keys = ['spawnMs', 'bootMs', 'precopyMs', 'settleMs', 'planMs', 'sendMs', 'readyMs', 'restoreMs', 'commitMs', 'servingMs', 'frozenMs', 'appWaitMs', 'resumeMs'];
    lines.push('', '## Where the time goes', '', 'The `phases` of the `POST /upgrade` answer, medians (min–max) in ms. Users are served until the freeze (spawn, boot and the pre-copy of every session happen before it); *frozen* is from the freeze to the successor serving. *restore* is the successor\'s own time restoring sessions, inside send + ready. *appWait* (the successor, once serving, until the app is back and resynced) and *resume* (then until every user is read from again) come from the successor\'s log (`--server-log-level info`); users wait for them too.', '');
    lines.push(`| case | ${keys.map((k) => k.replace(/Ms$/, '')).join(' | ')} |`, `|---|${keys.map(() => '---').join('|')}|`);
    for (const r of upgrades) {
      const flat = r.runs.map((run) => Object.fromEntries(keys.map((k) => [k, run.phases?.[k] ?? run.successor?.[k]])));
      lines.push(`| ${r.label} | ${keys.map((k) => summary(flat, k)).join(' | ')} |`);
    }
  }
  lines.push('', '## Open files', '', '| case | limit (each process) | old process before | new process after | peak old / new during | load generator |', '|---|---|---|---|---|---|');
  for (const r of results.scenarios.filter((s) => s.kind === 'upgrade')) {
    lines.push(`| ${r.label} users | ${r.fd.limit} | ${summary(r.runs, 'fdsOld')} | ${summary(r.runs, 'fdsNew')} | ${summary(r.runs, 'peakFdsOld')} / ${summary(r.runs, 'peakFdsNew')} | ${r.fd.loadgen} of ${r.fd.loadgenLimit} |`);
  }
  for (const r of results.scenarios.filter((s) => s.kind === 'crash')) {
    lines.push(`| ${r.users} users, --supervise (supervisor / worker) | | ${summary(r.runs, 'fdsSupervisor')} | ${summary(r.runs, 'fdsWorker')} | | |`);
  }
  lines.push('', 'During a handover the old and the new process each hold a descriptor for every user (the successor inherits them); under `--supervise` the supervisor holds a duplicate of each besides the worker. Each process stays under its own `RLIMIT_NOFILE`, but the machine holds twice the users (three times when the load generator runs on it): see [operations.md](operations.md#upgrading-the-intermediary) for the limit to set.');
  if (results.baseline) {
    lines.push('', `## Against the baseline (${results.baseline.name}), interleaved in the same session`, '', 'Runs alternated between this build and the baseline\'s `imi-server` (`--cli`); medians (min–max) over every rep of each, in ms, and the ratio of the medians (this ÷ baseline).', '', '| case | baseline reps | admin: baseline → this | ratio | worst rtt: baseline → this | ratio | external: baseline → this | ratio |', '|---|---|---|---|---|---|---|---|');
    for (const r of results.scenarios) {
      const b = results.baseline.scenarios.find((s) => s.label === r.label && s.kind === r.kind);
      if (!b) continue;
      const pair = (key) => {
        const [x, y] = [median(b.runs.map((run) => run[key])), median(r.runs.map((run) => run[key]))];
        return x === undefined || y === undefined ? '– | –' : `${summary(b.runs, key)} → ${summary(r.runs, key)} | ${(y / x).toFixed(2)}`;
      };
      lines.push(`| ${r.label}${r.kind === 'crash' ? ' (SIGKILL)' : ''} | ${b.runs.length} | ${r.kind === 'upgrade' ? pair('adminMs') : 'n/a | –'} | ${pair('worstRttMs')} | ${pair('externalMs')} |`);
    }
  }
  if (results.errors.length > 0) lines.push('', '## Errors', '', ...results.errors.map((e) => `- ${e}`));
  return lines.join('\n') + '\n';
}

async function main() {
  const list = (value, fallback) => (value === undefined || value === true ? fallback : String(value).split(',').filter(Boolean).map(Number));
  const config = {
    users: list(flags.users, [1000, 10_000]),
    busy: Number(flags.busy ?? 1000),
    crashUsers: Number(flags.crashUsers ?? 1000),
    // How long after the last user was let in the first SIGKILL comes (the supervisor's journal runs behind a burst).
    crashWaitMs: Number(flags.crashWaitMs ?? 2000),
    reps: Number(flags.reps ?? 3),
    typeMs: Number(flags.typeMs ?? 1000),
    probeMs: Number(flags.probeMs ?? 20),
    only: flags.only ? String(flags.only).split(',') : ['upgrade', 'crash'],
  };
  const cpus = os.cpus();
  const nofile = fdLimit(process.pid);
  const results = {
    startedAt: new Date().toISOString(),
    config,
    note: flags.note === undefined ? undefined : String(flags.note),
    machine: { cpus: cpus.length, cpu: cpus[0]?.model.trim(), memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, nofile, load: os.loadavg().map((l) => l.toFixed(1)).join(' ') },
    scenarios: [],
    errors: [],
  };
  const plan = [];
  if (config.only.includes('upgrade')) {
    for (const users of config.users) plan.push(() => upgradeScenario({ users, busy: 0, reps: config.reps, typeMs: config.typeMs, probeMs: config.probeMs }));
    if (config.busy > 0) plan.push(() => upgradeScenario({ users: config.busy, busy: config.busy, reps: config.reps, typeMs: config.typeMs, probeMs: config.probeMs }));
  }
  if (config.only.includes('crash') && config.crashUsers > 0) plan.push(() => crashScenario({ users: config.crashUsers, reps: config.reps, probeMs: config.probeMs, crashWaitMs: config.crashWaitMs }));
  for (const step of plan) {
    try {
      results.scenarios.push(await step());
    } catch (error) {
      log(`failed: ${error.stack ?? error}`);
      results.errors.push(String(error.message ?? error));
    }
  }
  const outDir = flags.out ? String(flags.out) : join(root, 'docs');
  const name = flags.name ? String(flags.name) : 'benchmarks-handover';
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(outDir, `${name}.md`), render(results));
  log(`wrote ${join(outDir, name)}.{md,json}`);
  process.exit(results.errors.length > 0 ? 1 : 0);
}

/** Runs of several result files (interleaved sessions) as one: each scenario's reps together. */
function mergeResults(paths) {
  const all = paths.map((path) => JSON.parse(readFileSync(path, 'utf8')));
  const merged = { ...all[0], scenarios: [], errors: all.flatMap((r) => r.errors) };
  for (const scenario of all.flatMap((r) => r.scenarios)) {
    const into = merged.scenarios.find((s) => s.label === scenario.label && s.kind === scenario.kind);
    if (!into) merged.scenarios.push({ ...scenario, runs: [...scenario.runs] });
    else {
      into.runs.push(...scenario.runs);
      into.usersClosed += scenario.usersClosed;
      into.probeClosed ||= scenario.probeClosed;
      if (into.busyLines && scenario.busyLines) for (const key of ['closed', 'sent', 'answered', 'doubled', 'outOfOrder']) into.busyLines[key] += scenario.busyLines[key];
    }
  }
  return merged;
}

// --merge a.json,b.json [--baseline c.json,d.json] --out DIR --name NAME [--note TEXT]: renders interleaved sessions together (runs nothing).
if (flags.merge) {
  const results = mergeResults(String(flags.merge).split(','));
  if (flags.baseline) results.baseline = { name: String(flags.baselineName ?? 'baseline'), ...mergeResults(String(flags.baseline).split(',')) };
  if (flags.note) results.note = String(flags.note);
  const outDir = flags.out ? String(flags.out) : join(root, 'docs');
  const name = flags.name ? String(flags.name) : 'benchmarks-handover';
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(outDir, `${name}.md`), render(results));
  log(`wrote ${join(outDir, name)}.{md,json}`);
} else if (flags.role === 'app') await runApp();
else if (flags.role === 'users') await runUsers();
else await main();
