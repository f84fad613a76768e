// The load generator: its own process, raw TCP users typing lines.
//
//   closed  each user sends a line, waits for its reply, sends the next (no
//           think time): round trips/s at a given concurrency.
//   open    lines are sent at a fixed total rate, spread round-robin over the
//           users, whether or not replies came back: latency under a target
//           load. Latency is measured from the time a line was *due* (not
//           when it was sent), so a stalled loadgen or server cannot hide
//           its own delay (no coordinated omission).
//   hold    connect the users and keep them idle; commands on stdin then
//           make them type (for the memory and resync runs).
//
// Every reply is checked: it must be the line sent, upper-cased, followed by
// CRLF (or LF). The CPU% of the processes under test (--pids name=pid,...) is
// read from /proc/<pid>/stat at the start and end of the measured window.
//
// Usage:
//   node bench/loadgen.mjs --port P --conns N --mode closed --warmup-ms 1000 --duration-ms 3000 [--pids a=1,b=2]
//   node bench/loadgen.mjs --port P --conns N --mode open --rate 5000 ...
//   node bench/loadgen.mjs --port P --conns N --mode hold [--spread 4]
// Prints one JSON line {"event":"result",...} (closed/open) and exits; in
// hold mode prints {"event":"connected",...} and answers commands:
// `send-all`, `send-one`, `close`.
import net from 'node:net';
import { createInterface } from 'node:readline';
import { clkTck, emit, parseFlags, percentile, processTicks, systemTicks, wallNow } from './lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const host = flags.host ?? '127.0.0.1';
const port = Number(flags.port);
const connCount = Number(flags.conns ?? 1);
const mode = flags.mode ?? 'closed';
const warmupMs = Number(flags.warmupMs ?? 1000);
const durationMs = Number(flags.durationMs ?? 3000);
const rate = Number(flags.rate ?? 1000);
const size = Math.max(16, Number(flags.size ?? 32));
const spread = Math.max(1, Number(flags.spread ?? 1));
const connectConcurrency = Number(flags.connectConcurrency ?? 256);
const connectTimeoutMs = Number(flags.connectTimeoutMs ?? 60_000);
const drainMs = Number(flags.drainMs ?? 3000);
const pids = Object.fromEntries(
  String(flags.pids ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => pair.split('='))
    .map(([name, pid]) => [name, Number(pid)]),
);
if (!(port > 0) || !(connCount > 0)) {
  process.stderr.write('usage: loadgen --port P --conns N [--mode closed|open|hold]\n');
  process.exit(2);
}

const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(size / 36) + 1);

// ------------------------------------------------------------ measurements

let latencies = new Float64Array(1 << 16);
let latencyCount = 0;
function recordLatency(ms) {
  if (latencyCount === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[latencyCount++] = ms;
}

const counters = {
  roundTrips: 0,
  mismatches: 0,
  unexpected: 0,
  socketErrors: 0,
  disconnects: 0,
  connectFailures: 0,
  notices: 0,
};
const mismatchSamples = [];
let phase = 'connecting'; // connecting | warmup | measure | drain | done
let stopping = false;

// ------------------------------------------------------------ users

class User {
  constructor(index) {
    this.index = index;
    this.seq = 0;
    this.buffer = '';
    /** Lines in flight, oldest first: { expected, t, measured }. */
    this.pending = [];
    this.pendingHead = 0;
    this.socket = undefined;
    this.open = false;
    this.onReply = undefined;
  }

  connect() {
    return new Promise((resolve) => {
      const options = { host, port, noDelay: true };
      if (spread > 1) options.localAddress = `127.0.0.${1 + (this.index % spread)}`;
      const socket = net.connect(options);
      this.socket = socket;
      socket.setNoDelay(true);
      socket.setEncoding('utf8');
      let settled = false;
      socket.once('connect', () => {
        settled = true;
        this.open = true;
        resolve(true);
      });
      socket.on('data', (chunk) => this.receive(chunk));
      socket.on('error', () => {
        if (!settled) {
          settled = true;
          counters.connectFailures++;
          resolve(false);
          return;
        }
        counters.socketErrors++;
      });
      socket.on('close', () => {
        const wasOpen = this.open;
        this.open = false;
        if (wasOpen && !stopping) counters.disconnects++;
        closedCount++;
        if (closedCount === users.length && stopping && onAllClosed) onAllClosed();
      });
    });
  }

  send(t, measured) {
    if (!this.open) return;
    const head = `look ${this.index}.${this.seq++} `;
    const line = head.length >= size ? head : head + PAD.slice(0, size - head.length);
    this.pending.push({ expected: line.toUpperCase(), t, measured });
    this.socket.write(line + '\n');
  }

  receive(chunk) {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf('\n')) !== -1) {
      let line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line);
    }
  }

  line(line) {
    const now = performance.now();
    const head = this.pendingHead < this.pending.length ? this.pending[this.pendingHead] : undefined;
    if (head === undefined) {
      if (mode === 'hold') counters.notices++;
      else counters.unexpected++;
      return;
    }
    if (line !== head.expected) {
      // Hold mode: the intermediary may tell users the app is restarting.
      if (mode === 'hold') {
        counters.notices++;
        return;
      }
      counters.mismatches++;
      if (mismatchSamples.length < 5) mismatchSamples.push({ expected: head.expected, got: line.slice(0, 200) });
    }
    this.pendingHead++;
    if (this.pendingHead > 64 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    if (line === head.expected) {
      if (mode === 'closed' && phase === 'measure') {
        counters.roundTrips++;
        recordLatency(now - head.t);
      } else if (mode === 'open' && head.measured) {
        counters.roundTrips++;
        recordLatency(now - head.t);
        answeredMeasured++;
        if (phase === 'drain' && answeredMeasured >= sentMeasured) finish();
      }
    }
    if (this.onReply) this.onReply(this, line === head.expected);
    if (mode === 'closed' && (phase === 'warmup' || phase === 'measure')) this.send(performance.now(), true);
  }

  get inFlight() {
    return this.pending.length - this.pendingHead;
  }
}

const users = [];
let closedCount = 0;
let onAllClosed;
for (let i = 0; i < connCount; i++) users.push(new User(i));

async function connectAll() {
  const started = performance.now();
  let next = 0;
  let connected = 0;
  const worker = async () => {
    while (next < users.length) {
      const user = users[next++];
      if (await user.connect()) connected++;
    }
  };
  const workers = [];
  for (let i = 0; i < Math.min(connectConcurrency, users.length); i++) workers.push(worker());
  let timer;
  await Promise.race([Promise.all(workers), new Promise((resolve) => (timer = setTimeout(resolve, connectTimeoutMs)))]);
  clearTimeout(timer);
  return { connected, ms: performance.now() - started };
}

// ------------------------------------------------------------ CPU

function cpuSnapshot() {
  const ticks = { loadgen: processTicks(process.pid) };
  for (const [name, pid] of Object.entries(pids)) ticks[name] = processTicks(pid);
  return { at: performance.now(), ticks, system: systemTicks() };
}

function cpuReport(start, end) {
  const seconds = (end.at - start.at) / 1000;
  const hz = clkTck();
  const cpu = {};
  let ours = 0;
  for (const name of Object.keys(start.ticks)) {
    const a = start.ticks[name];
    const b = end.ticks[name];
    if (a === undefined || b === undefined) continue;
    cpu[name] = ((b - a) / hz / seconds) * 100;
    ours += b - a;
  }
  let machine;
  if (start.system && end.system) {
    const busy = end.system.busy - start.system.busy;
    const total = end.system.total - start.system.total;
    // Everything busy that is not ours (other users of a shared machine, the kernel's softirq share excluded as best we can).
    machine = { busyPercent: total > 0 ? (busy / total) * 100 : undefined, otherCpuPercent: ((busy - ours) / hz / seconds) * 100 };
  }
  return { cpu, machine };
}

// ------------------------------------------------------------ closed / open

let sentMeasured = 0;
let answeredMeasured = 0;
let finishResolve;
function finish() {
  if (finishResolve) {
    const resolve = finishResolve;
    finishResolve = undefined;
    resolve();
  }
}

async function runLoad() {
  const { connected, ms: connectMs } = await connectAll();
  const live = users.filter((u) => u.open);
  if (live.length === 0) {
    report({ connected, connectMs, error: 'no connection' });
    return;
  }
  const t0 = performance.now();
  const warmEnd = t0 + warmupMs;
  const end = warmEnd + durationMs;
  let cpuStart;
  let cpuEnd;
  phase = 'warmup';

  if (mode === 'closed') {
    for (const user of live) user.send(performance.now(), false);
    await sleepUntil(warmEnd);
    cpuStart = cpuSnapshot();
    phase = 'measure';
    await sleepUntil(end);
    cpuEnd = cpuSnapshot();
    phase = 'done';
  } else {
    // open loop: a line is due every 1000/rate ms, round-robin over the users.
    const interval = 1000 / rate;
    let k = 0;
    let measuring = false;
    await new Promise((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (!measuring && now >= warmEnd) {
          measuring = true;
          cpuStart = cpuSnapshot();
          phase = 'measure';
        }
        const dueUntil = Math.min(now, end);
        while (t0 + k * interval <= dueUntil) {
          const due = t0 + k * interval;
          const inWindow = due >= warmEnd && due < end;
          if (inWindow) sentMeasured++;
          live[k % live.length].send(due, inWindow);
          k++;
        }
        if (now >= end) {
          cpuEnd = cpuSnapshot();
          resolve();
          return;
        }
        setTimeout(tick, 1);
      };
      tick();
    });
    phase = 'drain';
    if (answeredMeasured < sentMeasured) {
      await new Promise((resolve) => {
        finishResolve = resolve;
        setTimeout(finish, drainMs);
      });
    }
    phase = 'done';
  }

  const sorted = latencies.subarray(0, latencyCount).sort();
  const windowSeconds = (cpuEnd.at - cpuStart.at) / 1000;
  const result = {
    connected,
    connectMs,
    windowMs: cpuEnd.at - cpuStart.at,
    throughput: counters.roundTrips / windowSeconds,
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length > 0 ? sorted[sorted.length - 1] : undefined,
      mean: sorted.length > 0 ? sorted.reduce((a, b) => a + b, 0) / sorted.length : undefined,
    },
    ...cpuReport(cpuStart, cpuEnd),
  };
  // CPU time each process spent per round trip: steadier than round trips/s on a busy machine.
  result.cpuUsPerRoundTrip = Object.fromEntries(
    Object.entries(result.cpu).map(([name, percent]) => [name, counters.roundTrips > 0 ? (percent / 100) * windowSeconds * 1e6 / counters.roundTrips : undefined]),
  );
  if (mode === 'open') {
    result.targetRate = rate;
    result.sentInWindow = sentMeasured;
    result.unanswered = sentMeasured - answeredMeasured;
  }
  report(result);
}

function report(result) {
  emit('result', {
    mode,
    conns: connCount,
    size,
    ...result,
    roundTrips: counters.roundTrips,
    errors: counters.mismatches + counters.unexpected + counters.socketErrors + counters.connectFailures + (result.unanswered ?? 0),
    disconnects: counters.disconnects,
    detail: { ...counters, mismatchSamples },
  });
}

function sleepUntil(t) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())));
}

async function closeAll(timeoutMs = 3000) {
  stopping = true;
  const waiting = new Promise((resolve) => {
    onAllClosed = resolve;
    if (closedCount === users.length) resolve();
  });
  for (const user of users) {
    if (user.socket === undefined) {
      closedCount++;
      continue;
    }
    user.socket.end();
  }
  if (closedCount === users.length) onAllClosed();
  let timer;
  await Promise.race([waiting, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  for (const user of users) user.socket?.destroy();
}

// ------------------------------------------------------------ hold

async function runHold() {
  const { connected, ms } = await connectAll();
  phase = 'hold';
  emit('connected', { count: connected, failed: connCount - connected, connectMs: ms, at: wallNow() });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (text) => {
    const [command, arg] = text.trim().split(' ');
    if (command === 'send-all' || command === 'send-one') {
      const targets = command === 'send-one' ? users.filter((u) => u.open).slice(0, 1) : users.filter((u) => u.open);
      const timeoutMs = Number(arg ?? 60_000);
      let first;
      let last;
      let answered = 0;
      const sentAt = wallNow();
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        for (const user of targets) {
          user.onReply = (u, ok) => {
            if (!ok) return;
            u.onReply = undefined;
            const at = wallNow();
            first ??= at;
            last = at;
            if (++answered === targets.length) {
              clearTimeout(timer);
              resolve();
            }
          };
          user.send(performance.now(), false);
        }
        if (targets.length === 0) resolve();
      });
      for (const user of targets) user.onReply = undefined;
      emit('replies', { sent: targets.length, answered, sentAt, first, last, disconnects: counters.disconnects, notices: counters.notices, mismatches: counters.mismatches });
    } else if (command === 'stats') {
      emit('stats', { open: users.filter((u) => u.open).length, ...counters });
    } else if (command === 'close') {
      await closeAll();
      emit('closed', { disconnects: counters.disconnects });
      process.exit(0);
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

// ------------------------------------------------------------ main

if (mode === 'hold') {
  await runHold();
} else {
  await runLoad();
  await closeAll();
  process.exit(0);
}
