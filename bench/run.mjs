// The benchmark suite: `pnpm bench` (builds first). By hand only; never part
// of the tests.
//
//   node bench/run.mjs                 full run, writes docs/benchmarks.{md,json,svg}
//   BENCH_QUICK=1 node bench/run.mjs   smoke run (fewer levels, shorter windows),
//                                      writes .bench-results/quick.{md,json,svg}
//
// Flags (all optional):
//   --quick                      same as BENCH_QUICK=1
//   --only a,b                   sections: throughput, open, memory, resync, codec
//                                (and handover, cluster: run bench/handover.mjs and bench/cluster.mjs,
//                                each with its own report; not in the default run)
//   --targets a,b                baseline-direct, baseline-relay, imi
//   --conns 1,10,100,1000        closed-loop concurrency levels
//   --reps N                     least repetitions (default 3; quick 2)
//   --max-reps N                 most repetitions (default 7; quick 3): after --reps, go on
//                                until no median ratio moves by more than --stable-within (0.03)
//   --warmup-ms N --duration-ms N   per measurement
//   --memory-users N             idle users of the memory run (default 10000)
//   --no-memory-max              skip the "as many as the fd limit allows" step
//   --resync-users 1000,10000
//   --out DIR --name NAME        where the results go (default docs/benchmarks; .bench-results/partial
//                                when --only, --targets or --conns limit the run, .bench-results/quick with --quick)
//   --note TEXT                  a line added to the report (e.g. "shared, busy machine")
//   --render FILE.json           only re-render the Markdown and the chart from a run's JSON
//                                (e.g. after editing bench/FINDINGS.md)
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TARGETS, holdUsers, runLoadgen, startTarget } from './lib/targets.mjs';
import { benchDir, fdLimit, median, openFds, parseFlags, root, sleep, spawnNode, wallNow } from './lib/util.mjs';
import { renderMarkdown, summarize } from './lib/report.mjs';
import { renderChart } from './lib/chart.mjs';

const flags = parseFlags(process.argv.slice(2));
const quick = flags.quick === true || process.env.BENCH_QUICK === '1';
const list = (value, fallback, map = (x) => x) => (value === undefined || value === true ? fallback : String(value).split(',').filter(Boolean).map(map));

const config = {
  quick,
  sections: list(flags.only, ['throughput', 'open', 'memory', 'resync', 'codec']),
  targets: list(flags.targets, TARGETS),
  conns: list(flags.conns, quick ? [1, 10, 100] : [1, 10, 100, 1000], Number),
  reps: Number(flags.reps ?? (quick ? 2 : 3)),
  maxReps: Math.max(Number(flags.reps ?? (quick ? 2 : 3)), Number(flags.maxReps ?? (quick ? 3 : 7))),
  stableWithin: Number(flags.stableWithin ?? 0.03),
  warmupMs: Number(flags.warmupMs ?? (quick ? 500 : 1000)),
  durationMs: Number(flags.durationMs ?? (quick ? 1500 : 3000)),
  openConns: list(flags.openConns, quick ? [100] : [100, 1000], Number),
  /** Open-loop rate: this fraction of the slowest target's closed-loop median at the same concurrency. */
  openFraction: Number(flags.openFraction ?? 0.5),
  memoryUsers: Number(flags.memoryUsers ?? (quick ? 2000 : 10_000)),
  memoryMax: flags.memoryMax !== undefined ? flags.memoryMax !== 'false' : flags.noMemoryMax === undefined && !quick,
  resyncUsers: list(flags.resyncUsers, quick ? [1000] : [1000, 10_000], Number),
  resyncReps: Number(flags.resyncReps ?? (quick ? 1 : 3)),
  codecMs: Number(flags.codecMs ?? (quick ? 300 : 700)),
  codecReps: Number(flags.codecReps ?? (quick ? 3 : 5)),
};
// docs/benchmarks.* is the full report: a partial run (--only, --targets, --conns) goes to .bench-results unless --out says otherwise.
const partial = quick || flags.only !== undefined || flags.targets !== undefined || flags.conns !== undefined;
const outDir = flags.out ? String(flags.out) : partial ? join(root, '.bench-results') : join(root, 'docs');
const baseName = flags.name ? String(flags.name) : quick ? 'quick' : partial ? 'partial' : 'benchmarks';
const startedAt = new Date();
const t0 = performance.now();

function log(message) {
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${message}\n`);
}

const results = {
  startedAt: startedAt.toISOString(),
  config,
  machine: machineInfo(),
  closed: [],
  open: [],
  memory: [],
  resync: [],
  codec: undefined,
  errors: [],
};

function machineInfo() {
  const cpus = os.cpus();
  let git;
  try {
    const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
    const dirty = spawnSync('git', ['status', '--porcelain', '--', 'packages'], { cwd: root, encoding: 'utf8' }).stdout.trim() !== '';
    git = head ? `${head}${dirty ? ' (+ uncommitted changes in packages/)' : ''}` : undefined;
  } catch {
    git = undefined;
  }
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAvgAtStart: os.loadavg(),
    openFilesLimit: fdLimit(process.pid),
    git,
  };
}

// ------------------------------------------------------------ closed loop

/** The median ratios (imi ÷ relay: throughput, CPU per round trip) at every concurrency, from the runs so far. */
function closedRatios() {
  const s = summarize({ ...results, memory: [], resync: [], codec: undefined });
  return s.ratios.flatMap((r) => [r.throughputVsRelay, r.cpuVsRelay]);
}

async function closedLoop() {
  let previous;
  for (let rep = 0; rep < config.maxReps; rep++) {
    // Rotate the order each repetition, so no target always runs first (or last).
    const order = config.targets.map((_, i) => config.targets[(i + rep) % config.targets.length]);
    for (const name of order) {
      log(`closed loop: ${name}, repetition ${rep + 1} (${config.reps} to ${config.maxReps})`);
      const target = await startTarget(name);
      try {
        for (const conns of config.conns) {
          const result = await runLoadgen({ port: target.port, conns, mode: 'closed', warmupMs: config.warmupMs, durationMs: config.durationMs, pids: target.pids });
          results.closed.push({ target: name, rep, ...trim(result) });
          log(`  ${String(conns).padStart(5)} conns: ${fmt(result.throughput, 0)} rt/s, p50 ${fmt(result.latencyMs?.p50, 3)} ms, p99 ${fmt(result.latencyMs?.p99, 2)} ms, errors ${result.errors}, cpu ${cpuText(result.cpu)}${otherText(result)}`);
        }
      } finally {
        await target.stop();
      }
    }
    results.closedReps = rep + 1;
    // Stable once one more repetition moved no median ratio by more than stableWithin.
    const now = closedRatios();
    if (previous !== undefined) {
      const moved = Math.max(...now.map((v, i) => (v === undefined || previous[i] === undefined ? Infinity : Math.abs(v / previous[i] - 1))));
      log(`closed loop: repetition ${rep + 1} moved the median ratios by at most ${(moved * 100).toFixed(1)} %`);
      if (rep + 1 >= config.reps && moved <= config.stableWithin) break;
    }
    previous = now;
  }
}

// ------------------------------------------------------------ open loop

async function openLoop() {
  for (const conns of config.openConns) {
    let rate = Number(flags.openRate);
    if (!(rate > 0)) {
      const medians = config.targets.map((name) => median(results.closed.filter((r) => r.target === name && r.conns === conns).map((r) => r.throughput)));
      const slowest = Math.min(...medians.filter((m) => m !== undefined));
      rate = Number.isFinite(slowest) ? roundNice(slowest * config.openFraction) : 2000;
    }
    for (let rep = 0; rep < config.reps; rep++) {
      const order = config.targets.map((_, i) => config.targets[(i + rep) % config.targets.length]);
      for (const name of order) {
        const target = await startTarget(name);
        try {
          const result = await runLoadgen({ port: target.port, conns, mode: 'open', rate, warmupMs: config.warmupMs, durationMs: config.durationMs, pids: target.pids });
          results.open.push({ target: name, rep, ...trim(result) });
          log(`open loop ${name} rep ${rep + 1}: ${conns} conns at ${rate}/s: achieved ${fmt(result.throughput, 0)}/s, p50 ${fmt(result.latencyMs?.p50, 2)} ms, p99 ${fmt(result.latencyMs?.p99, 2)} ms, max ${fmt(result.latencyMs?.max, 1)} ms, errors ${result.errors}`);
        } finally {
          await target.stop();
        }
      }
    }
  }
}

function roundNice(value) {
  if (!(value > 0)) return 1000;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return Math.max(100, Math.floor(value / (magnitude / 2)) * (magnitude / 2));
}

// ------------------------------------------------------------ memory

async function waitSessions(proc, count, timeoutMs = 60_000) {
  const started = performance.now();
  for (;;) {
    const stats = await proc.request('stats', 'stats', 10_000);
    if (stats.sessions >= count) return stats;
    if (performance.now() - started > timeoutMs) throw new Error(`${proc.name}: ${stats.sessions} sessions, waited for ${count}`);
    await sleep(50);
  }
}

async function memory() {
  for (const name of ['baseline-direct', 'imi']) {
    log(`memory: ${name}, ${config.memoryUsers} idle users${config.memoryMax ? ', then as many as the open-files limit allows' : ''}`);
    const target = await startTarget(name === 'imi' ? 'imi-wrapper' : name);
    const server = target.procs.server ?? target.procs.direct;
    const app = name === 'imi' ? target.procs.app : undefined;
    const holders = [];
    try {
      await sleep(200);
      const base = await server.request('mem', 'mem');
      const appBase = app ? await app.request('mem', 'mem') : undefined;
      const steps = [];
      const step = async (users) => {
        await waitSessions(server, users);
        if (app) await waitSessions(app, users);
        await sleep(300);
        const mem = await server.request('mem', 'mem');
        const appMem = app ? await app.request('mem', 'mem') : undefined;
        const entry = { target: name, users, base, mem, perUser: perUser(base, mem, users), fds: openFds(server.pid) };
        if (app) entry.app = { base: appBase, mem: appMem, perUser: perUser(appBase, appMem, users) };
        steps.push(entry);
        log(`  ${users} users: rss/user ${fmt(entry.perUser.rss, 0)} B, heap/user ${fmt(entry.perUser.heapUsed, 0)} B${app ? `; app rss/user ${fmt(entry.app.perUser.rss, 0)} B, heap/user ${fmt(entry.app.perUser.heapUsed, 0)} B` : ''}`);
      };
      const first = await holdUsers(target.port, config.memoryUsers);
      holders.push(first.loadgen);
      if (first.connected.failed > 0) results.errors.push(`memory ${name}: ${first.connected.failed} of ${config.memoryUsers} users failed to connect`);
      await step(first.connected.count);
      if (config.memoryMax) {
        // The server holds one descriptor per user: fill what its limit leaves (a margin for the
        // descriptors Node opens itself).
        const limit = fdLimit(server.pid) ?? 20_000;
        const used = openFds(server.pid) ?? first.connected.count;
        const more = Math.max(0, limit - used - 32);
        if (more > 0) {
          const second = await holdUsers(target.port, more);
          holders.push(second.loadgen);
          await step(first.connected.count + second.connected.count);
          steps[steps.length - 1].fdLimit = limit;
        }
      }
      results.memory.push(...steps);
    } finally {
      for (const holder of holders) {
        holder.command('close');
        await holder.exited;
      }
      await target.stop();
    }
  }
}

function perUser(base, mem, users) {
  if (!base || !mem || !(users > 0)) return {};
  const out = {};
  for (const key of ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers']) out[key] = (mem[key] - base[key]) / users;
  return out;
}

// ------------------------------------------------------------ resync

async function resync() {
  for (const users of config.resyncUsers) {
    for (let rep = 0; rep < config.resyncReps; rep++) {
      log(`resync: ${users} live users, repetition ${rep + 1}/${config.resyncReps}`);
      const server = spawnNode(`${benchDir}servers/imi-wrapper.mjs`, ['--max-connections', '1000000'], { nodeArgs: ['--expose-gc'], name: 'imi-wrapper' });
      let holder;
      const apps = [];
      try {
        const ready = await server.waitEvent('ready', 15_000);
        holder = (await holdUsers(ready.port, users)).loadgen;
        await waitSessions(server, users);
        // 1. An app connects to an intermediary holding `users` users.
        const app1 = spawnNode(`${benchDir}servers/imi-app.mjs`, ['--port', String(ready.appPort)], { nodeArgs: ['--expose-gc'], name: 'imi-app' });
        apps.push(app1);
        const synced1 = await app1.waitEvent('synced', 60_000);
        const serverSynced1 = await server.waitEvent('synced', 60_000);
        // 2. The app is killed; every user types a line meanwhile (queued); a new app starts.
        await app1.stop('SIGKILL');
        await server.waitEvent('app-disconnect', 15_000);
        holder.command('send-all 120000');
        const queuedStarted = performance.now();
        for (;;) {
          const stats = await server.request('stats', 'stats');
          if (stats.queuedLines >= users) break;
          if (performance.now() - queuedStarted > 30_000) throw new Error(`only ${stats.queuedLines} of ${users} lines queued`);
          await sleep(20);
        }
        const spawnedAt = wallNow();
        const app2 = spawnNode(`${benchDir}servers/imi-app.mjs`, ['--port', String(ready.appPort)], { nodeArgs: ['--expose-gc'], name: 'imi-app' });
        apps.push(app2);
        const replies = await holder.waitEvent('replies', 130_000);
        const synced2 = await app2.waitEvent('synced', 60_000);
        const serverSynced2 = await server.waitEvent('synced', 60_000);
        const entry = {
          users,
          rep,
          connectToSyncedMs: synced1.at - synced1.t0,
          serverResyncMs: serverSynced1.durationMs,
          syncedCount: synced1.count,
          restart: {
            connectToSyncedMs: synced2.at - synced2.t0,
            serverResyncMs: serverSynced2.durationMs,
            connectToFirstReplyMs: replies.first !== undefined ? replies.first - synced2.t0 : undefined,
            connectToAllRepliesMs: replies.answered === replies.sent ? replies.last - synced2.t0 : undefined,
            spawnToFirstReplyMs: replies.first !== undefined ? replies.first - spawnedAt : undefined,
            answered: replies.answered,
            sent: replies.sent,
            disconnects: replies.disconnects,
          },
        };
        results.resync.push(entry);
        log(`  connect->synced ${fmt(entry.connectToSyncedMs, 1)} ms (server resync ${fmt(entry.serverResyncMs, 1)} ms); restart: connect->synced ${fmt(entry.restart.connectToSyncedMs, 1)} ms, connect->first reply ${fmt(entry.restart.connectToFirstReplyMs, 1)} ms, ->all ${replies.answered}/${replies.sent} replies ${fmt(entry.restart.connectToAllRepliesMs, 1)} ms, spawn->first reply ${fmt(entry.restart.spawnToFirstReplyMs, 1)} ms`);
      } finally {
        if (holder) {
          holder.command('close');
          await Promise.race([holder.exited, sleep(10_000)]);
          await holder.stop('SIGKILL');
        }
        for (const app of apps) await app.stop('SIGTERM');
        await server.stop('SIGTERM');
      }
    }
  }
}

// ------------------------------------------------------------ codec

async function codec() {
  log('codec: FrameDecoder');
  const proc = spawnNode(`${benchDir}codec.mjs`, ['--ms', String(config.codecMs), '--reps', String(config.codecReps)], { name: 'codec' });
  const result = await proc.waitEvent('result', 120_000);
  await proc.exited;
  results.codec = result;
  for (const c of result.cases) log(`  ${String(c.frameBytes).padStart(4)} B ${c.variant}: ${fmt(c.mbPerSec, 1)} MB/s, ${fmt(c.framesPerSec, 0)} frames/s`);
  for (const r of result.ratios ?? []) log(`  ${r.frameBytes} B: FrameDecoder + validation ÷ reference ${fmt(r.ratio, 2)} × (${fmt(r.spread[0], 2)}–${fmt(r.spread[1], 2)})`);
}

// ------------------------------------------------------------ helpers

function trim(result) {
  const { event: _event, detail, ...rest } = result;
  // Keep the error detail only when something went wrong.
  return result.errors > 0 || result.disconnects > 0 ? { ...rest, detail } : rest;
}

function fmt(value, digits) {
  if (value === undefined || value === null || Number.isNaN(value)) return '–';
  return Number(value).toFixed(digits);
}

function cpuText(cpu = {}) {
  return Object.entries(cpu)
    .map(([name, value]) => `${name} ${value.toFixed(0)}%`)
    .join(', ');
}

function otherText(result) {
  const other = result.machine?.otherCpuPercent;
  return other !== undefined && other > 10 ? ` (other processes: ${other.toFixed(0)}% CPU)` : '';
}

// ------------------------------------------------------------ main

if (flags.render) {
  // Re-render only: the Markdown and the chart next to the given JSON.
  const jsonPath = String(flags.render);
  const saved = JSON.parse(readFileSync(jsonPath, 'utf8'));
  saved.summary = summarize(saved);
  const base = jsonPath.replace(/\.json$/, '');
  const name = base.slice(base.lastIndexOf('/') + 1);
  const findingsFile = join(benchDir, 'FINDINGS.md');
  writeFileSync(`${base}.svg`, renderChart(saved));
  writeFileSync(`${base}.md`, renderMarkdown(saved, { chart: `${name}.svg`, json: `${name}.json`, findings: existsSync(findingsFile) ? readFileSync(findingsFile, 'utf8') : undefined }));
  writeFileSync(jsonPath, JSON.stringify(saved, null, 2) + '\n');
  log(`re-rendered ${base}.{md,svg}`);
  process.exit(0);
}

// ---- handover (issue #16): its own script and report (docs/benchmarks-handover.md); only with --only handover.
async function handover() {
  const args = quick ? ['--users', '1000', '--busy', '200', '--reps', '1', '--crash-users', '200', '--out', outDir, '--name', 'quick-handover'] : [];
  const run = spawnSync(process.execPath, [join(benchDir, 'handover.mjs'), ...args], { stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`bench/handover.mjs exited ${run.status}`);
}

// ---- cluster (issue #17): its own script and report (docs/benchmarks-cluster.md, with the open-loop rows and the
// sizing); only with --only cluster. It starts its own redis-server (`redis-server` must be installed).
async function cluster() {
  mkdirSync(outDir, { recursive: true });
  const args = quick ? ['--conns', '1,100', '--reps', '1', '--duration-ms', '1000', '--open-rates', '1000', '--out', join(outDir, 'quick-cluster.md')] : [];
  const run = spawnSync(process.execPath, [join(benchDir, 'cluster.mjs'), ...args], { stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`bench/cluster.mjs exited ${run.status}`);
}

const sections = { throughput: closedLoop, open: openLoop, memory, resync, codec, handover, cluster };
for (const section of config.sections) {
  const run = sections[section];
  if (!run) throw new Error(`unknown section ${section}`);
  try {
    await run();
  } catch (error) {
    log(`section ${section} failed: ${error.stack ?? error}`);
    results.errors.push(`${section}: ${error.message ?? error}`);
  }
}

results.machine.loadAvgAtEnd = os.loadavg();
results.durationSeconds = (performance.now() - t0) / 1000;
if (flags.note) results.note = String(flags.note);
else if (process.env.BENCH_NOTE) results.note = process.env.BENCH_NOTE;

results.summary = summarize(results);
mkdirSync(outDir, { recursive: true });
const findingsPath = join(benchDir, 'FINDINGS.md');
const findings = existsSync(findingsPath) ? readFileSync(findingsPath, 'utf8') : undefined;
writeFileSync(join(outDir, `${baseName}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(outDir, `${baseName}.svg`), renderChart(results));
writeFileSync(join(outDir, `${baseName}.md`), renderMarkdown(results, { chart: `${baseName}.svg`, json: `${baseName}.json`, findings }));
// Every run is also kept (git-ignored) for comparison.
mkdirSync(join(root, '.bench-results'), { recursive: true });
writeFileSync(join(root, '.bench-results', `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify(results, null, 2) + '\n');
log(`done in ${results.durationSeconds.toFixed(0)} s: ${join(outDir, baseName)}.{md,json,svg}`);
if (results.errors.length > 0) {
  log(`with errors:\n  ${results.errors.join('\n  ')}`);
  process.exitCode = 1;
}
