// The cluster benchmark (issue #17 item 6): cluster mode (1 holder + 1 worker
// + a redis-server of its own) against single-node imi (imi-server + the echo
// app of bench/servers/imi-app.mjs), closed loop, at several connection
// counts; then a sizing on paper from the CPU each process spent per round
// trip. By hand only; never part of the tests. Builds nothing: run
// `pnpm build` (or `pnpm bench:cluster`).
//
//   node bench/cluster.mjs [--conns 1,100,1000] [--reps 3] [--duration-ms 3000]
//                          [--warmup-ms 1000] [--out docs/benchmarks-cluster.md]
//                          [--open-conns 100] [--open-rates 1000,5000]   (open loop: fixed total rates; '' for none)
//                          [--bare | --bare-acks]   (a third system: bench/servers/streams-relay.mjs, a bare relay over Redis Streams,
//                                                    without or with a consumer group and acks)
//
// Both systems are started once and stay up; the runs are interleaved (for
// each rep and connection count: single then cluster, the order swapped on
// odd reps). The redis-server listens on a free port (never 6379), with
// `--save '' --appendonly no` and a temporary --dir, and is stopped by pid.
// CPU per round trip comes from /proc/<pid>/stat (utime + stime) read by the
// loadgen at the start and end of each measured window.
//
// Roles (this file runs itself): --role worker --redis URL.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, parseFlags, root, sleep, spawnNode, emit } from './lib/util.mjs';
import { runLoadgen, startTarget } from './lib/targets.mjs';

const SELF = fileURLToPath(import.meta.url);
const CLI = join(root, 'packages/server/dist/cli.js');
const flags = parseFlags(process.argv.slice(2));
// IMI_BENCH_CPU_PROF=<dir>: the holder and the worker write V8 CPU profiles there (--cpu-prof) when stopped.
const PROF = process.env.IMI_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.IMI_BENCH_CPU_PROF}`] : [];

// ------------------------------------------------------------- role: worker
// The same echo logic as bench/servers/imi-app.mjs (an upper-caser on a
// buildResponse tap, acks on), as a cluster worker.
async function runWorker() {
  const { Client } = await import('@imi/client');
  const app = new Client({ redis: String(flags.redis), name: 'bench-uppercaser' });
  app.hooks.buildResponse.tap('UpperCaser', (reply, _session, line) => (reply ?? line + '\r\n').toUpperCase());
  const errors = {};
  app.on('error', (error) => {
    errors[error.code] = (errors[error.code] ?? 0) + 1;
    if (error.code !== 'IMI_UNKNOWN_ID') process.stderr.write(`cluster-worker: ${error.code} ${error.message}\n`);
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      // Lines per read and per commit tell how well the worker batched (docs/cluster.md#metrics).
      process.stderr.write(`cluster-worker stats ${JSON.stringify(app.clusterStats)}\n`);
      void app.close().then(() => process.exit(0));
    });
  }
  await app.connect();
  emit('ready', { pid: process.pid });
}

// ------------------------------------------------------------------- redis
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function redisCli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

async function startRedis() {
  const dir = mkdtempSync(join(os.tmpdir(), 'imi-bench-redis-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    if (port === 6379) continue;
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        if (redisCli(port, 'PING') === 'PONG') {
          const stop = async () => {
            if (child.exitCode === null && child.signalCode === null) {
              const gone = new Promise((resolve) => child.once('exit', resolve));
              process.kill(child.pid, 'SIGTERM');
              await gone;
            }
            rmSync(dir, { recursive: true, force: true });
          };
          return { port, pid: child.pid, url: `redis://127.0.0.1:${port}`, stop };
        }
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error('could not start redis-server on a free port');
}

// ------------------------------------------------------------------ targets
async function startCluster() {
  const redis = await startRedis();
  const procs = {};
  const stop = async () => {
    for (const key of Object.keys(procs).reverse()) await procs[key].stop('SIGTERM', 5_000);
    await redis.stop();
  };
  try {
    procs.holder = spawnNode(CLI, ['--redis', redis.url, '--holder-id', 'h1', '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'warn'], { nodeArgs: ['--expose-gc', ...PROF], name: 'holder' });
    const match = await procs.holder.waitText(/users on port (\d+)/, 15_000);
    procs.worker = spawnNode(SELF, ['--role', 'worker', '--redis', redis.url], { nodeArgs: ['--expose-gc', ...PROF], name: 'worker' });
    await procs.worker.waitEvent('ready', 15_000);
    // Wait until the worker holds every partition's lease (it waits one heartbeat first).
    const partitions = Number(redisCli(redis.port, 'HGET', 'imi:config', 'partitions')) || 64;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const leases = redisCli(redis.port, '--scan', '--pattern', 'imi:lease:*').split('\n').filter(Boolean).length;
      if (leases >= partitions) break;
      if (Date.now() > deadline) throw new Error(`worker holds ${leases} of ${partitions} leases after 30 s`);
      await sleep(200);
    }
    return { name: 'cluster', port: Number(match[1]), partitions, pids: { holder: procs.holder.pid, worker: procs.worker.pid, redis: redis.pid }, redis, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The bare Redis Streams relay (bench/servers/streams-relay.mjs) on the cluster's Redis: what any relay over Redis costs here. */
async function startBare(redis, acks) {
  const procs = {};
  const stop = async () => {
    for (const key of Object.keys(procs).reverse()) await procs[key].stop('SIGTERM', 5_000);
  };
  try {
    const script = join(root, 'bench/servers/streams-relay.mjs');
    procs.worker = spawnNode(script, ['--role', 'worker', '--redis-port', String(redis.port), ...(acks ? ['--acks'] : [])], { name: 'bare-worker' });
    await procs.worker.waitEvent('ready', 15_000);
    procs.holder = spawnNode(script, ['--role', 'holder', '--redis-port', String(redis.port)], { name: 'bare-holder' });
    const ready = await procs.holder.waitEvent('ready', 15_000);
    return { name: 'bare', port: ready.port, pids: { holder: procs.holder.pid, worker: procs.worker.pid, redis: redis.pid }, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ------------------------------------------------------------------- report
const fmt = (v, digits = 0) => (v === undefined || !Number.isFinite(v) ? '–' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
function spread(values, digits = 0) {
  const list = values.filter((v) => Number.isFinite(v));
  if (list.length === 0) return '–';
  return `${fmt(median(list), digits)} (${fmt(Math.min(...list), digits)}–${fmt(Math.max(...list), digits)})`;
}

function summarize(results, target, conns) {
  const runs = results.filter((r) => r.target === target && r.conns === conns && r.mode !== 'open');
  const names = Object.keys(runs[0]?.cpuUsPerRoundTrip ?? {});
  return {
    runs,
    throughput: runs.map((r) => r.throughput),
    p50: runs.map((r) => r.latencyMs.p50),
    p99: runs.map((r) => r.latencyMs.p99),
    cpu: Object.fromEntries(names.map((n) => [n, runs.map((r) => r.cpuUsPerRoundTrip[n])])),
    cpuTotal: runs.map((r) => Object.values(r.cpuUsPerRoundTrip).reduce((a, b) => a + (b ?? 0), 0)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
  };
}

/** Open-loop runs of one system at one total rate. */
function summarizeOpen(results, target, rate) {
  const runs = results.filter((r) => r.target === target && r.mode === 'open' && r.targetRate === rate);
  return {
    runs,
    p50: runs.map((r) => r.latencyMs.p50),
    p99: runs.map((r) => r.latencyMs.p99),
    throughput: runs.map((r) => r.throughput),
    unanswered: runs.reduce((a, r) => a + (r.unanswered ?? 0), 0),
    // The loadgen counts an unanswered line as an error too: here errors are the others.
    errors: runs.reduce((a, r) => a + r.errors - (r.unanswered ?? 0), 0),
  };
}

function sizing(cpu) {
  // 1M users × 10 lines/s = 10M round trips/s. A Node process or a Redis
  // shard runs on one core: plan each at 70% of a core (headroom for bursts,
  // GC, failover of a neighbour).
  const rate = 1_000_000 * 10;
  const usable = 0.7e6; // µs of CPU per second per process
  const count = (us) => Math.ceil((rate * us) / usable);
  return { rate, usable, holders: count(cpu.holder), workers: count(cpu.worker), redis: count(cpu.redis), cores: Math.ceil((rate * (cpu.holder + cpu.worker + cpu.redis)) / 1e6) };
}

function writeReport({ out, results, conns, reps, durationMs, warmupMs, loadStart, loadEnd, startedAt, partitions, openConns, openRates, bare }) {
  const lines = [];
  const others = bare ? ['cluster', 'bare'] : ['cluster'];
  lines.push('---', 'title: Cluster benchmarks', '---', '', '# Cluster benchmark', '');
  lines.push(`Generated by \`node bench/cluster.mjs --conns ${conns.join(',')} --reps ${reps} --duration-ms ${durationMs} --open-conns ${openConns} --open-rates ${openRates.join(',')}${bare === 'acks' ? ' --bare-acks' : bare ? ' --bare' : ''}\` (${startedAt}); raw numbers in [benchmarks-cluster.json](benchmarks-cluster.json).`, '');
  lines.push(`Machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().split(' ').slice(0, 3).join(' ')}. Load average at start ${loadStart}, at end ${loadEnd}. ${Number(loadStart.split(' ')[0]) < os.cpus().length ? 'Quiet at the start (1-minute load average under the core count; no other work was started during the run), but the load generator, the system under test and Redis share its 2 cores' : '**Shared and noisy** (2 cores; other builds and test runs were going on, and the load generator, the system under test and Redis all share those 2 cores)'}: take the numbers as an order of magnitude, the spread as a hint of the noise.`, '');
  lines.push('- **single**: `imi-server` + the echo app of `bench/servers/imi-app.mjs` (an upper-caser on `@imi/client`, acks on), as in [benchmarks](benchmarks.md).');
  lines.push(`- **cluster**: \`imi-server --redis\` (1 holder) + 1 worker (\`new Client({ redis })\`, the same upper-caser) + its own \`redis-server --save '' --appendonly no\` on a free port; ${partitions} partitions, all leased by the worker before measuring. A line goes user → holder's intermediary → bridge (in process) → Redis (holder event script, one per turn: \`XADD\` part stream) → worker \`XREADGROUP … BLOCK\` of its own consumer group over every partition → gateway → Client (in process) → gateway → commit script, one per turn (\`XADD\` out stream, \`HSET\`, \`XACK\`, \`XDEL\`) → holder \`XREAD\` → bridge → intermediary → user.`);
  if (bare === 'plain') lines.push("- **bare**: the least a relay over Redis Streams does (`bench/servers/streams-relay.mjs`, on the cluster's Redis): a holder `XADD`s each line to one stream, a worker blocks on `XREAD`, upper-cases and `XADD`s the reply to another, the holder blocks on `XREAD` there and writes it to the user; ioredis with auto-pipelining. No consumer group, acks, leases, fencing, sessions, validation or recovery: a yardstick of what any relay over Redis costs on this machine, not a product.");
  if (bare === 'acks') lines.push("- **bare** (`--bare-acks`): the relay of `bench/servers/streams-relay.mjs --acks` on the cluster's Redis: a holder `XADD`s each line to one stream; a worker reads it with a consumer group (`XREADGROUP … BLOCK`) and writes each read's replies with their acks in one transaction (`MULTI`, `XADD` per reply, `XACK`, `XDEL`, `EXEC`); the holder blocks on `XREAD` for the replies. No Lua, leases, fencing, sessions, validation or recovery: what a Redis Streams relay with acknowledged input costs at the least here, not a product.");
  lines.push(`- Closed loop (bench/loadgen.mjs): each user sends a 32-byte line and waits for the reply; ${warmupMs} ms warm-up, ${durationMs} ms measured, ${reps} interleaved repetitions (${bare ? 'the order rotates: single, cluster, bare; cluster, bare, single; …' : 'single, cluster, cluster, single, …'}). Medians over the repetitions, (min–max) in brackets.`);
  lines.push(`- Open loop (the same loadgen, \`--mode open\`): ${openConns} users, lines sent at a fixed total rate round-robin over them whether or not the previous answer came (${openRates.map((r) => `${fmt(r)}/s = ${fmt(r / openConns, 1)} lines/s per user`).join('; ')}); latency from each line's due time, so a server that falls behind is charged for the queueing.`);
  lines.push('- **CPU µs / round trip**: utime + stime of each process over the measured window, from `/proc/<pid>/stat`, divided by the round trips in it.', '');

  lines.push('## Throughput and latency', '');
  lines.push('| conns | system | round trips/s | p50 ms | p99 ms | cluster ÷ single throughput | errors |', '|---|---|---|---|---|---|---|');
  for (const c of conns) {
    const s = summarize(results, 'single', c);
    const k = summarize(results, 'cluster', c);
    const ratio = median(k.throughput) / median(s.throughput);
    lines.push(`| ${c} | single | ${spread(s.throughput)} | ${spread(s.p50, 2)} | ${spread(s.p99, 2)} | | ${s.errors} |`);
    lines.push(`| ${c} | cluster | ${spread(k.throughput)} | ${spread(k.p50, 2)} | ${spread(k.p99, 2)} | **${fmt(ratio, 2)}×** | ${k.errors} |`);
    if (bare) {
      const b = summarize(results, 'bare', c);
      lines.push(`| ${c} | bare | ${spread(b.throughput)} | ${spread(b.p50, 2)} | ${spread(b.p99, 2)} | ${fmt(median(b.throughput) / median(s.throughput), 2)}× | ${b.errors} |`);
    }
  }
  lines.push('');

  if (openRates.length > 0) {
    lines.push(`## Latency at a fixed rate (open loop, ${openConns} users)`, '');
    lines.push('| lines/s (per user) | system | p50 ms | p99 ms | answered/s | unanswered | errors |', '|---|---|---|---|---|---|---|');
    for (const rate of openRates) {
      for (const t of ['single', ...others]) {
        const o = summarizeOpen(results, t, rate);
        lines.push(`| ${fmt(rate)} (${fmt(rate / openConns, 1)}) | ${t} | ${spread(o.p50, 2)} | ${spread(o.p99, 2)} | ${spread(o.throughput)} | ${o.unanswered} | ${o.errors} |`);
      }
    }
    lines.push('');
  }

  lines.push('## CPU per round trip (µs)', '');
  lines.push('| conns | system | per process | total |', '|---|---|---|---|');
  for (const c of conns) {
    for (const t of ['single', ...others]) {
      const s = summarize(results, t, c);
      const parts = Object.entries(s.cpu).map(([n, v]) => `${n} ${spread(v, 1)}`).join('; ');
      lines.push(`| ${c} | ${t} | ${parts} | ${spread(s.cpuTotal, 1)} |`);
    }
  }
  lines.push('');

  const target = conns.includes(100) ? 100 : conns[conns.length - 1];
  const s100 = summarize(results, 'single', target);
  const k100 = summarize(results, 'cluster', target);
  const ratio = median(k100.throughput) / median(s100.throughput);
  const p50 = median(k100.p50);
  lines.push('## Targets', '');
  lines.push('| target | measured | met |', '|---|---|---|');
  lines.push(`| cluster throughput ≥ 0.5 × single at ${target} connections | ${fmt(ratio, 2)}× | ${ratio >= 0.5 ? 'yes' : '**no**'} |`);
  lines.push(`| cluster p50 ≤ 2 ms at ${target} connections, closed loop | ${fmt(p50, 2)} ms (single: ${fmt(median(s100.p50), 2)} ms) | ${p50 <= 2 ? 'yes' : '**no**'} |`);
  for (const rate of openRates) {
    const o = median(summarizeOpen(results, 'cluster', rate).p50);
    lines.push(`| cluster p50 ≤ 2 ms at ${openConns} connections, open loop at ${fmt(rate)} lines/s (${fmt(rate / openConns, 1)} per user) | ${fmt(o, 2)} ms (single: ${fmt(median(summarizeOpen(results, 'single', rate).p50), 2)} ms) | ${o <= 2 ? 'yes' : '**no**'} |`);
  }
  if (conns.includes(1)) {
    const p50one = median(summarize(results, 'cluster', 1).p50);
    lines.push(`| cluster p50 ≤ 2 ms at 1 connection | ${fmt(p50one, 2)} ms (single: ${fmt(median(summarize(results, 'single', 1).p50), 2)} ms) | ${p50one <= 2 ? 'yes' : '**no**'} |`);
  }
  lines.push('');

  // Sizing from the busiest measured load (most connections): the per-message
  // cost is lowest there (batching), and that is how a loaded cluster runs.
  const big = conns[conns.length - 1];
  const kb = summarize(results, 'cluster', big);
  const cpu = { holder: median(kb.cpu.holder), worker: median(kb.cpu.worker), redis: median(kb.cpu.redis) };
  const sz = sizing(cpu);
  const sb = summarize(results, 'single', big);
  const singleCpu = { server: median(sb.cpu.server), app: median(sb.cpu.app) };
  lines.push('## Sizing on paper: 1M users, 10 lines/s each', '');
  lines.push(`10M round trips/s. Per round trip, cluster mode at ${big} connections (medians above): holder ${fmt(cpu.holder, 1)} µs, worker ${fmt(cpu.worker, 1)} µs, Redis ${fmt(cpu.redis, 1)} µs (single node: intermediary ${fmt(singleCpu.server, 1)} µs, app ${fmt(singleCpu.app, 1)} µs). Each holder, worker and Redis shard is one thread: planned at 70 % of a core. The worker's cost includes the echo app itself, which is almost nothing; a real app adds its own handler time to every worker.`, '');
  lines.push('| role | CPU for 10M/s | processes at 70 % of a core | users each |', '|---|---|---|---|');
  lines.push(`| holders | ${fmt((sz.rate * cpu.holder) / 1e6)} cores | **${fmt(sz.holders)}** | ${fmt(1e6 / sz.holders)} |`);
  lines.push(`| workers | ${fmt((sz.rate * cpu.worker) / 1e6)} cores | **${fmt(sz.workers)}** | ${fmt(1e6 / sz.workers)} |`);
  lines.push(`| Redis shards | ${fmt((sz.rate * cpu.redis) / 1e6)} cores | **${fmt(sz.redis)}** | ${fmt(1e6 / sz.redis)} |`);
  lines.push(`| total | ${fmt(sz.cores)} cores | | |`, '');
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ startedAt, conns, reps, durationMs, warmupMs, openConns, openRates, loadStart, loadEnd, partitions, sizing: { cpu, ...sz }, results }, null, 1) + '\n');
  return { text: lines.join('\n'), sizing: sz, cpu };
}

// --------------------------------------------------------------------- main
async function main() {
  const conns = String(flags.conns ?? '1,100,1000').split(',').filter(Boolean).map(Number);
  const reps = Number(flags.reps ?? 3);
  const durationMs = Number(flags.durationMs ?? 3000);
  // Open loop: p50 at a rate the systems can carry (the issue's sizing
  // assumes 10 lines/s per user), which a closed loop cannot show: there
  // p50 ≈ connections ÷ throughput.
  const openConns = Number(flags.openConns ?? 100);
  const openRates = String(flags.openRates ?? '1000,5000').split(',').filter(Boolean).map(Number);
  if (!(openConns > 0) || openRates.some((rate) => !(rate > 0))) throw new Error('--open-conns and every --open-rates value must be above 0');
  const warmupMs = Number(flags.warmupMs ?? 1000);
  const out = String(flags.out ?? join(root, 'docs/benchmarks-cluster.md'));
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg().map((v) => v.toFixed(1)).join(' ');
  const single = await startTarget('imi');
  let cluster;
  let bare;
  const results = [];
  try {
    cluster = await startCluster();
    // --bare: a third system, the least any relay over Redis Streams does (bench/servers/streams-relay.mjs).
    if (flags.bare === true || flags.bareAcks === true) bare = await startBare(cluster.redis, flags.bareAcks === true);
    const systems = [single, cluster, ...(bare === undefined ? [] : [bare])];
    // Order rotates between repetitions (single, cluster, bare; cluster, bare, single; …).
    const orderOf = (rep) => systems.map((_, i) => systems[(i + rep) % systems.length]);
    process.stderr.write(`single on ${single.port}, cluster holder on ${cluster.port} (redis ${cluster.redis.port})${bare ? `, bare on ${bare.port}` : ''}; load ${loadStart}\n`);
    for (let rep = 0; rep < reps; rep++) {
      for (const c of conns) {
        for (const t of orderOf(rep)) {
          const name = t === single ? 'single' : t.name;
          const result = await runLoadgen({ port: t.port, conns: c, warmupMs, durationMs, pids: t.pids });
          results.push({ target: name, rep, ...result });
          const cpu = Object.entries(result.cpuUsPerRoundTrip).map(([n, v]) => `${n}=${v?.toFixed(1)}`).join(' ');
          process.stderr.write(`rep ${rep} conns ${c} ${name}: ${Math.round(result.throughput)}/s p50 ${result.latencyMs.p50?.toFixed(2)} p99 ${result.latencyMs.p99?.toFixed(2)} errors ${result.errors} cpu µs/rt ${cpu}\n`);
          await sleep(500); // let the users' disconnects settle
        }
      }
      for (const rate of openRates) {
        for (const t of orderOf(rep)) {
          const name = t === single ? 'single' : t.name;
          const result = await runLoadgen({ port: t.port, conns: openConns, mode: 'open', rate, warmupMs, durationMs, pids: t.pids });
          results.push({ target: name, rep, ...result });
          const cpu = Object.entries(result.cpuUsPerRoundTrip).map(([n, v]) => `${n}=${v?.toFixed(1)}`).join(' ');
          process.stderr.write(`rep ${rep} open ${openConns} users ${rate}/s ${name}: p50 ${result.latencyMs.p50?.toFixed(2)} p99 ${result.latencyMs.p99?.toFixed(2)} answered ${Math.round(result.throughput)}/s unanswered ${result.unanswered} errors ${result.errors} cpu µs/rt ${cpu}\n`);
          await sleep(500);
        }
      }
    }
  } finally {
    await single.stop();
    if (bare) await bare.stop();
    if (cluster) await cluster.stop();
  }
  const loadEnd = os.loadavg().map((v) => v.toFixed(1)).join(' ');
  const { text } = writeReport({ out, results, conns, reps, durationMs, warmupMs, loadStart, loadEnd, startedAt, partitions: cluster.partitions, openConns, openRates, bare: bare === undefined ? undefined : flags.bareAcks === true ? 'acks' : 'plain' });
  // Hand-written sections below the marker are kept across runs.
  let tail = '';
  try {
    const old = readFileSync(out, 'utf8');
    const at = old.indexOf('<!-- hand-written -->');
    if (at !== -1) tail = '\n' + old.slice(at);
  } catch {
    // first run
  }
  writeFileSync(out, text + tail + (tail.endsWith('\n') ? '' : '\n'));
  process.stderr.write(`wrote ${out}\n`);
}

if (flags.role === 'worker') await runWorker();
else await main();
