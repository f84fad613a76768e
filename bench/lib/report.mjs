// Turns the raw results of a run into medians, ratios and docs/benchmarks.md.
import { median } from './util.mjs';
import { GOALS } from './targets.mjs';

/** [min, max] of the finite numbers in `values`, or undefined. */
export function spread(values) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  return list.length === 0 ? undefined : [Math.min(...list), Math.max(...list)];
}

/**
 * imi ÷ baseline of one metric, per repetition: the runs of the same
 * repetition were made next to each other (interleaved), so their ratio
 * is the least disturbed by load that comes and goes.
 */
function pairedRatios(runs, conns, base, pick) {
  const out = [];
  for (const a of runs) {
    if (a.target !== 'imi' || a.conns !== conns) continue;
    const b = runs.find((r) => r.target === base && r.conns === conns && r.rep === a.rep);
    const va = pick(a);
    const vb = b === undefined ? undefined : pick(b);
    if (va !== undefined && vb !== undefined && vb > 0) out.push(va / vb);
  }
  return out;
}

const TARGET_LABEL = { 'baseline-direct': 'baseline-direct', 'baseline-relay': 'baseline-relay', imi: '**imi**' };

/** Medians per (target, conns) of the closed- or open-loop runs. */
export function summarizeLoad(runs) {
  const groups = new Map();
  for (const run of runs) {
    const key = `${run.target}|${run.conns}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(run);
  }
  const out = [];
  for (const [key, list] of groups) {
    const [target, conns] = key.split('|');
    const cpuNames = [...new Set(list.flatMap((r) => Object.keys(r.cpu ?? {})))];
    out.push({
      target,
      conns: Number(conns),
      reps: list.length,
      throughput: median(list.map((r) => r.throughput)),
      throughputRuns: list.map((r) => r.throughput),
      throughputSpread: spread(list.map((r) => r.throughput)),
      p50Spread: spread(list.map((r) => r.latencyMs?.p50)),
      cpuUsSpread: spread(list.map((r) => sumUnderTest(r.cpuUsPerRoundTrip))),
      p50: median(list.map((r) => r.latencyMs?.p50)),
      p90: median(list.map((r) => r.latencyMs?.p90)),
      p99: median(list.map((r) => r.latencyMs?.p99)),
      max: median(list.map((r) => r.latencyMs?.max)),
      worstMax: Math.max(...list.map((r) => r.latencyMs?.max ?? 0)),
      errors: list.reduce((sum, r) => sum + (r.errors ?? 0), 0),
      disconnects: list.reduce((sum, r) => sum + (r.disconnects ?? 0), 0),
      cpu: Object.fromEntries(cpuNames.map((name) => [name, median(list.map((r) => r.cpu?.[name]))])),
      // CPU time of the processes under test (not the loadgen) per round trip, in µs.
      cpuUs: median(list.map((r) => sumUnderTest(r.cpuUsPerRoundTrip))),
      otherCpu: median(list.map((r) => r.machine?.otherCpuPercent)),
      targetRate: list[0].targetRate,
      unanswered: list.reduce((sum, r) => sum + (r.unanswered ?? 0), 0),
    });
  }
  return out;
}

export function sumUnderTest(perProcess) {
  if (!perProcess) return undefined;
  let sum = 0;
  for (const [name, value] of Object.entries(perProcess)) if (name !== 'loadgen') sum += value ?? 0;
  return sum;
}

export function summarize(results) {
  const closed = summarizeLoad(results.closed);
  const open = summarizeLoad(results.open);
  const get = (list, target, conns) => list.find((s) => s.target === target && s.conns === conns);
  const connsList = [...new Set(closed.map((s) => s.conns))].sort((a, b) => a - b);
  const ratio = (a, b) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  const ratios = connsList.map((conns) => {
    const imi = get(closed, 'imi', conns);
    const relay = get(closed, 'baseline-relay', conns);
    const direct = get(closed, 'baseline-direct', conns);
    return {
      conns,
      throughputVsRelay: ratio(imi?.throughput, relay?.throughput),
      throughputVsDirect: ratio(imi?.throughput, direct?.throughput),
      p50VsRelay: ratio(imi?.p50, relay?.p50),
      p50VsDirect: ratio(imi?.p50, direct?.p50),
      p99VsRelay: ratio(imi?.p99, relay?.p99),
      cpuVsRelay: ratio(imi?.cpuUs, relay?.cpuUs),
      // min–max over the repetitions of the per-repetition ratio
      throughputVsRelaySpread: spread(pairedRatios(results.closed, conns, 'baseline-relay', (r) => r.throughput)),
      p50VsRelaySpread: spread(pairedRatios(results.closed, conns, 'baseline-relay', (r) => r.latencyMs?.p50)),
      cpuVsRelaySpread: spread(pairedRatios(results.closed, conns, 'baseline-relay', (r) => sumUnderTest(r.cpuUsPerRoundTrip))),
    };
  });

  const memoryAt = (target, users) => results.memory.find((m) => m.target === target && m.users === users);
  const firstUsers = results.memory.find((m) => m.target === 'imi')?.users;
  const memImi = firstUsers !== undefined ? memoryAt('imi', firstUsers) : undefined;
  const memDirect = results.memory.filter((m) => m.target === 'baseline-direct')[0];
  const memoryRatio = memImi && memDirect ? { users: memImi.users, rss: ratio(memImi.perUser.rss, memDirect.perUser.rss), heapUsed: ratio(memImi.perUser.heapUsed, memDirect.perUser.heapUsed) } : undefined;

  const resyncBy = new Map();
  for (const r of results.resync) {
    if (!resyncBy.has(r.users)) resyncBy.set(r.users, []);
    resyncBy.get(r.users).push(r);
  }
  const resync = [...resyncBy].map(([users, list]) => ({
    users,
    reps: list.length,
    connectToSyncedMs: median(list.map((r) => r.connectToSyncedMs)),
    connectToSyncedSpread: spread(list.map((r) => r.connectToSyncedMs)),
    serverResyncSpread: spread(list.map((r) => r.serverResyncMs)),
    serverResyncMs: median(list.map((r) => r.serverResyncMs)),
    restartConnectToSyncedMs: median(list.map((r) => r.restart.connectToSyncedMs)),
    restartServerResyncMs: median(list.map((r) => r.restart.serverResyncMs)),
    connectToFirstReplyMs: median(list.map((r) => r.restart.connectToFirstReplyMs)),
    connectToAllRepliesMs: median(list.map((r) => r.restart.connectToAllRepliesMs)),
    spawnToFirstReplyMs: median(list.map((r) => r.restart.spawnToFirstReplyMs)),
    lost: list.reduce((sum, r) => sum + (r.restart.sent - r.restart.answered), 0),
    disconnects: list.reduce((sum, r) => sum + (r.restart.disconnects ?? 0), 0),
  }));

  const goals = GOALS.map((goal) => evaluateGoal(goal, { ratios, memoryRatio, resync, codec: results.codec })).filter((g) => g !== undefined);

  const others = results.closed.map((r) => r.machine?.otherCpuPercent).filter((v) => typeof v === 'number');
  return {
    closed,
    open,
    ratios,
    memoryRatio,
    resync,
    goals,
    busy: { otherCpuMedian: median(others), otherCpuMax: others.length ? Math.max(...others) : undefined, busyRuns: others.filter((v) => v > 15).length, runs: others.length },
  };
}

const x2 = (v) => v.toFixed(2);
const rangeText = (r, f = x2) => (r === undefined ? '' : r[0] === r[1] ? '' : ` (${f(r[0])}–${f(r[1])})`);

/** One goal of `GOALS` against the summary: { goal, measured, met } or undefined when not measured. */
function evaluateGoal(goal, { ratios, memoryRatio, resync, codec }) {
  const cmp = goal.better === 'higher' ? '≥' : '≤';
  const met = (v) => (goal.better === 'higher' ? v >= goal.limit : v <= goal.limit);
  if (goal.metric === 'throughput' || goal.metric === 'p50' || goal.metric === 'cpuUs') {
    const r = ratios.find((v) => v.conns === goal.conns);
    const [key, what] = { throughput: ['throughputVsRelay', 'imi throughput'], p50: ['p50VsRelay', 'imi p50 latency'], cpuUs: ['cpuVsRelay', 'imi CPU µs per round trip'] }[goal.metric];
    const value = r?.[key];
    if (value === undefined) return undefined;
    return { goal: `${what} ${cmp} ${goal.limit.toFixed(1)} × baseline-relay at ${goal.conns} conns`, measured: `${x2(value)} ×${rangeText(r[`${key}Spread`])}`, value, met: met(value) };
  }
  if (goal.metric === 'rss') {
    if (memoryRatio?.rss === undefined) return undefined;
    return { goal: `memory (RSS) per idle user ${cmp} ${goal.limit} × baseline-direct at ${memoryRatio.users} users`, measured: `${x2(memoryRatio.rss)} × (heap ${x2(memoryRatio.heapUsed)} ×; one run)`, value: memoryRatio.rss, met: met(memoryRatio.rss) };
  }
  if (goal.metric === 'resyncMs') {
    const r = resync.find((v) => v.users === goal.users);
    if (r === undefined) return undefined;
    const ms0 = (v) => v.toFixed(0);
    return { goal: `resync of ${goal.users.toLocaleString('en-US')} users ${cmp} ${goal.limit} ms (app connect → synced)`, measured: `${ms0(r.connectToSyncedMs)} ms${rangeText(r.connectToSyncedSpread, ms0)} (intermediary's part: ${ms0(r.serverResyncMs)} ms)`, value: r.connectToSyncedMs, met: met(r.connectToSyncedMs) };
  }
  if (goal.metric === 'codec') {
    const c = codec?.ratios?.find((v) => v.frameBytes === goal.frameBytes);
    if (c === undefined) return undefined;
    return { goal: `FrameDecoder + validation ${cmp} ${goal.limit.toFixed(1)} × split + JSON.parse, ${goal.frameBytes} B frames`, measured: `${x2(c.ratio)} ×${rangeText(c.spread)}`, value: c.ratio, met: met(c.ratio) };
  }
  return undefined;
}

// ------------------------------------------------------------ markdown

const n = (value, digits = 0) => (value === undefined || value === null || Number.isNaN(value) ? '–' : Number(value).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ms = (value) => (value === undefined ? '–' : value < 1 ? n(value, 3) : value < 10 ? n(value, 2) : n(value, 1));
const bytes = (value) => (value === undefined ? '–' : `${n(value, 0)} B`);
const other = (value) => (value === undefined ? '–' : n(Math.max(0, value), 0));
const x = (value) => (value === undefined ? '–' : `${value.toFixed(2)} ×`);

function table(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

function cpuCell(cpu) {
  return Object.entries(cpu)
    .filter(([name]) => name !== 'loadgen')
    .map(([name, value]) => `${name} ${n(value, 0)}`)
    .join(' + ');
}

/**
 * @param results - the raw results (with `summary`)
 * @param files - names of the chart and JSON next to the Markdown, and the findings text
 */
export function renderMarkdown(results, { chart, json, findings }) {
  const s = results.summary ?? summarize(results);
  const m = results.machine;
  const out = [];
  out.push('---', 'title: Benchmarks', '---', '', '# Benchmarks', '');
  out.push(`Generated by \`pnpm bench\` (\`bench/run.mjs\`) on ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC, in ${n(results.durationSeconds, 0)} s${results.config.quick ? ' — a **quick smoke run** (BENCH_QUICK=1), not for quoting' : ''}. Raw numbers: [${json}](${json}).`, '');
  out.push(`**Machine:** ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.os}, Node ${m.node}, open-files limit ${m.openFilesLimit}. Load average at start ${m.loadAvgAtStart.map((v) => v.toFixed(2)).join(' / ')}, at end ${m.loadAvgAtEnd?.map((v) => v.toFixed(2)).join(' / ') ?? '–'}. Code: ${m.git ?? 'unknown'}.`, '');
  const busy = s.busy;
  // One window in ten with a neighbour past 15 % is a quiet machine with blips, not a busy one.
  if (busy.otherCpuMedian !== undefined && busy.busyRuns * 10 > busy.runs) {
    out.push(`> **This run was on a shared, busy machine.** Other processes (not the loadgen, not the processes under test) used a median ${n(busy.otherCpuMedian, 0)} % CPU (max ${n(busy.otherCpuMax, 0)} %, out of ${m.cores * 100} %) during the measured windows; ${busy.busyRuns} of ${busy.runs} closed-loop windows had more than 15 %. Absolute numbers are low and noisy; the ratios are from the same run, with the targets interleaved. Re-run on a quiet machine before quoting.`, '');
  } else if (busy.otherCpuMedian !== undefined) {
    out.push(`Other processes used a median ${other(busy.otherCpuMedian)} % CPU during the measured windows (a quiet machine; max ${n(busy.otherCpuMax, 0)} %, ${busy.busyRuns} of ${busy.runs} closed-loop windows above 15 %).`, '');
  }
  if (results.note) out.push(`> ${results.note}`, '');
  if (results.errors.length > 0) out.push('**Sections that failed:**', '', ...results.errors.map((e) => `- ${e}`), '');

  out.push('## Goals', '');
  out.push('Ratios are imi ÷ baseline, medians of the same run; in brackets the lowest and highest ratio of one repetition (the targets of a repetition run next to each other).', '');
  out.push(table(['goal', 'measured: median (min–max)', 'met'], s.goals.map((g) => [g.goal, g.measured, g.met ? 'yes' : '**no**'])), '');

  out.push('## What is measured', '');
  out.push(
    'A load generator (`bench/loadgen.mjs`, its own process) opens N user connections (raw TCP to 127.0.0.1) that each type a 32-byte line and wait for the reply (closed loop, no think time). Every reply is checked: it must be the line upper-cased. It counts round trips in a measured window after a warm-up, latency percentiles (nearest rank over every round trip of the window), errors (wrong or unexpected replies, socket errors, failed connects) and disconnects, and reads the CPU time of each process under test from `/proc/<pid>/stat` at the start and end of the window (100 % = one core). The loadgen shares the 2 cores with the processes under test.',
    '',
    'The same load runs, in one run, against:',
    '',
    '1. **baseline-direct** (`bench/servers/direct.mjs`): a plain Node `net` server that upper-cases each line itself. One process, no hop: the ceiling.',
    '2. **baseline-relay** (`bench/servers/relay.mjs` + `relay-app.mjs`): a deliberately minimal two-process relay, written the naive way a competent dev would. The relay gives each user an id (a counter), decodes their bytes as UTF-8, splits on `\\n` (CR stripped) and writes each line to the app as one JSON message `{"type":"input","id":N,"line":"…"}` + `\\n` with its own `socket.write` (no batching); it splits the app\'s stream on `\\n`, `JSON.parse`s each message and writes `data` of `{"type":"output","id":N,"data":"…"}` to that user with one `socket.write`. Connects and disconnects are told to the app the same way; input while no app is connected is dropped. The app process splits, parses, and answers each input with one output message, one write each. `noDelay` on every socket, like imi. No acks, no queues, no resync, no limits, no validation: what the hop costs at the least.',
    '3. **imi**: `imi-server` (the CLI, default options, `--log-level warn`) and an upper-casing app on `@imi/client` (`bench/servers/imi-app.mjs`: a `buildResponse` tap as in `examples/uppercaser`, acks on, default options).',
    '',
    `Each (target, conns) is measured in interleaved repetitions (A, B, C, A, B, C, …; the order rotates between repetitions), at least ${results.config.reps} and at most ${results.config.maxReps ?? results.config.reps}: after the minimum, repetitions go on until one more repetition moves no median ratio (throughput and CPU per round trip, imi ÷ relay, at every concurrency) by more than ${Math.round((results.config.stableWithin ?? 0.03) * 100)} %. This run made ${results.closedReps ?? results.config.reps} (warm-up ${results.config.warmupMs} ms, window ${results.config.durationMs} ms). Tables show medians of the repetitions, with the lowest and highest repetition in brackets. Each target is started fresh per repetition and runs the concurrency levels in increasing order.`,
    '',
  );

  out.push('## Throughput and latency (closed loop)', '');
  if (chart) out.push(`![Throughput and p99 latency by concurrency](${chart})`, '');
  const closedRows = [];
  for (const conns of [...new Set(s.closed.map((c) => c.conns))].sort((a, b) => a - b)) {
    for (const target of ['baseline-direct', 'baseline-relay', 'imi']) {
      const c = s.closed.find((v) => v.target === target && v.conns === conns);
      if (!c) continue;
      closedRows.push([n(conns), TARGET_LABEL[target], `${n(c.throughput)}${rangeText(c.throughputSpread, (v) => n(v))}`, `${ms(c.p50)}${rangeText(c.p50Spread, ms)}`, ms(c.p90), ms(c.p99), ms(c.max), n(c.errors), n(c.disconnects), cpuCell(c.cpu), `${n(c.cpuUs, 1)}${rangeText(c.cpuUsSpread, (v) => n(v, 1))}`, n(c.cpu.loadgen, 0), other(c.otherCpu)]);
    }
  }
  out.push(table(['conns', 'target', 'round trips/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'disconnects', 'CPU % under test', 'CPU µs / round trip', 'loadgen CPU %', 'others CPU %'], closedRows), '');
  out.push('*CPU µs / round trip*: CPU time of the processes under test (all of them, the loadgen excepted) per round trip. It depends less on what else runs on the machine than round trips/s does. *others CPU %*: CPU used by processes outside the benchmark during the window (approximate: from /proc/stat).', '');
  out.push('Ratios (imi ÷ baseline, medians of the same run, in brackets the lowest and highest ratio of one repetition; > 1 is better for throughput, < 1 is better for latency and CPU):', '');
  out.push(
    table(
      ['conns', 'throughput imi/relay', 'throughput imi/direct', 'p50 imi/relay', 'p50 imi/direct', 'p99 imi/relay', 'CPU per round trip imi/relay'],
      s.ratios.map((r) => [n(r.conns), `${x(r.throughputVsRelay)}${rangeText(r.throughputVsRelaySpread)}`, x(r.throughputVsDirect), `${x(r.p50VsRelay)}${rangeText(r.p50VsRelaySpread)}`, x(r.p50VsDirect), x(r.p99VsRelay), `${x(r.cpuVsRelay)}${rangeText(r.cpuVsRelaySpread)}`]),
    ),
    '',
  );

  if (s.open.length > 0) {
    out.push('## Latency under a fixed load (open loop)', '');
    out.push(
      `Lines are sent at a fixed total rate (${Math.round(results.config.openFraction * 100)} % of the slowest target's closed-loop median at that concurrency, the same rate for all three), round-robin over the users, whether or not replies came back. Latency is measured from the time each line was due, so a stall anywhere (the loadgen included) shows up rather than slowing the sender down.`,
      '',
    );
    const rows = [];
    for (const conns of [...new Set(s.open.map((c) => c.conns))].sort((a, b) => a - b)) {
      for (const target of ['baseline-direct', 'baseline-relay', 'imi']) {
        const c = s.open.find((v) => v.target === target && v.conns === conns);
        if (!c) continue;
        rows.push([n(conns), n(c.targetRate), TARGET_LABEL[target], n(c.throughput), ms(c.p50), ms(c.p90), ms(c.p99), ms(c.max), n(c.errors), cpuCell(c.cpu)]);
      }
    }
    out.push(table(['conns', 'rate/s', 'target', 'achieved/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'CPU % under test'], rows), '');
  }

  if (results.memory.length > 0) {
    out.push('## Memory per idle user', '');
    out.push(
      'Users connect and send nothing. The server process (imi: `new Intermediary()` in a wrapper, `bench/servers/imi-wrapper.mjs`, with its app connected and every user announced to it; baseline-direct: the same script as above) is started with `--expose-gc` and asked for `process.memoryUsage()` after full GCs, before and after the users connect; per user = difference ÷ users. The second step fills what the server\'s open-files limit leaves. The imi app process (`@imi/client`, which keeps a `Session` per user) is shown apart: baseline-direct has no second process.',
      '',
    );
    const rows = [];
    for (const entry of results.memory) {
      rows.push([TARGET_LABEL[entry.target] + (entry.target === 'imi' ? ' (intermediary)' : ''), n(entry.users), bytes(entry.perUser.rss), bytes(entry.perUser.heapUsed), bytes(entry.perUser.external), `${n(entry.mem.rss / 2 ** 20, 1)} MiB`, `${n(entry.mem.heapUsed / 2 ** 20, 1)} MiB`]);
      if (entry.app) rows.push(['imi (app, @imi/client)', n(entry.users), bytes(entry.app.perUser.rss), bytes(entry.app.perUser.heapUsed), bytes(entry.app.perUser.external), `${n(entry.app.mem.rss / 2 ** 20, 1)} MiB`, `${n(entry.app.mem.heapUsed / 2 ** 20, 1)} MiB`]);
    }
    out.push(table(['process', 'idle users', 'RSS / user', 'heap / user', 'external / user', 'RSS total', 'heap total'], rows), '');
    if (s.memoryRatio) out.push(`imi ÷ baseline-direct at ${n(s.memoryRatio.users)} users: RSS ${x(s.memoryRatio.rss)}, heap ${x(s.memoryRatio.heapUsed)}.`, '');
  }

  if (s.resync.length > 0) {
    out.push('## Resync', '');
    out.push(
      'An intermediary (in-process wrapper, default options) holds N live users; an app (`bench/servers/imi-app.mjs`) connects. *connect → synced* is the app\'s wall time from calling `connect()` to its `synced` event (every user announced and their `connect` handlers run); *intermediary* is its own part (`synced` event `durationMs`: announcing every user and queueing `synced`, which includes writing what was queued past each 64 KiB). Then the app is killed (SIGKILL), every user types one line (queued by the intermediary), and a new app process starts: *restart* times are from its `connect()` call to its `synced`, to the first reply a user receives, and to the last of the N replies; *spawn → first reply* includes starting Node and loading the SDK. Wall clocks of different processes on one machine are compared (sub-millisecond).',
      '',
    );
    out.push(
      table(
        ['live users', 'connect → synced', 'intermediary', 'restart: connect → synced', 'restart: connect → first reply', 'restart: connect → all replies', 'spawn → first reply', 'lines lost', 'disconnects'],
        s.resync.map((r) => [n(r.users), `${ms(r.connectToSyncedMs)} ms${rangeText(r.connectToSyncedSpread, ms)}`, `${ms(r.serverResyncMs)} ms${rangeText(r.serverResyncSpread, ms)}`, `${ms(r.restartConnectToSyncedMs)} ms`, `${ms(r.connectToFirstReplyMs)} ms`, `${ms(r.connectToAllRepliesMs)} ms`, `${ms(r.spawnToFirstReplyMs)} ms`, n(r.lost), n(r.disconnects)]),
      ),
      '',
    );
  }

  if (results.codec) {
    out.push('## Codec', '');
    out.push(
      `\`FrameDecoder\` (\`@imi/core\`) fed a ${n(results.codec.streamBytes / 2 ** 20, 0)} MiB stream of \`output\` frames in ${n(results.codec.chunkBytes / 1024, 0)} KiB chunks, repeatedly for ${results.codec.runMs} ms after a warm-up; median of ${results.codec.reps}. With the validator the intermediary uses, with a no-op validator (the decoder alone), and the naive reference (split on \`\\n\` + \`JSON.parse\`, none of the decoder's guarantees: no back-to-back values, batches, resync after a broken frame, size limit before buffering).`,
      '',
    );
    out.push(table(['frame size', 'decoder', 'MB/s', 'frames/s'], results.codec.cases.map((c) => [`${c.frameBytes} B`, c.variant, `${n(c.mbPerSec, 1)}${rangeText(spread((c.runs ?? []).map((r) => r.mbPerSec)), (v) => n(v, 1))}`, n(c.framesPerSec, 0)])), '');
    if (results.codec.ratios) out.push(`FrameDecoder + validateAppMessage ÷ reference (the variants interleaved in each repetition; median of the per-repetition ratios, min–max): ${results.codec.ratios.map((r) => `${r.frameBytes} B ${x(r.ratio)}${rangeText(r.spread)}`).join(', ')}.`, '');
  }

  out.push('## Running it', '');
  out.push(
    '```sh',
    'pnpm bench                      # full run (under 10 minutes on 2 cores): writes docs/benchmarks.{md,json,svg}',
    'BENCH_QUICK=1 node bench/run.mjs   # smoke run (~1 minute): .bench-results/quick.*',
    'node bench/run.mjs --only throughput --targets baseline-relay,imi --conns 100,1000   # a part: .bench-results/partial.* (--out/--name to choose)',
    'node bench/profile.mjs          # imi under load with --cpu-prof; top functions by self time',
    'node bench/run.mjs --only cluster    # cluster mode on Redis against single-node: docs/benchmarks-cluster.md',
    'node bench/run.mjs --only handover   # upgrades under load: docs/benchmarks-handover.md',
    '```',
    '',
    'Every run is also kept in `.bench-results/` (git-ignored). Nothing here is a test: the suite only checks that the load generator still works (`test/bench-smoke.test.ts`, no timing assertions).',
    '',
  );
  if (findings) out.push(findings.trim(), '');
  return out.join('\n');
}
