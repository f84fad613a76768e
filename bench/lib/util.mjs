// Shared helpers of the benchmark scripts: clocks, /proc readers, statistics,
// spawning child processes that talk JSON lines on stdout.
import { spawn, execFileSync } from 'node:child_process';
import { fstatSync, readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root (with a trailing slash). */
export const root = fileURLToPath(new URL('../../', import.meta.url));
/** The bench directory (with a trailing slash). */
export const benchDir = fileURLToPath(new URL('../', import.meta.url));

/** Wall-clock time in ms with sub-ms precision, comparable across processes of one machine. */
export function wallNow() {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let clockTicks;
/** Kernel clock ticks per second (USER_HZ), for /proc/<pid>/stat. */
export function clkTck() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (and its exited, waited-for children are not included), in clock ticks; undefined if gone. */
export function processTicks(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** Busy and total ticks of the whole machine (all cores), from /proc/stat. */
export function systemTicks() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = values[3] + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Open file descriptors of a process. */
export function openFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** The soft open-files limit of a process. */
export function fdLimit(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const match = /Max open files\s+(\d+)/.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** RSS of a process in bytes, from /proc (for processes that do not answer `mem`). */
export function rssOf(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function median(values) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (list.length === 0) return undefined;
  const mid = list.length >> 1;
  return list.length % 2 === 1 ? list[mid] : (list[mid - 1] + list[mid]) / 2;
}

/** The p-th percentile (0..100) of a sorted array, nearest-rank. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Spawns `node <script> ...args` with stdout read as JSON lines. Lines that
 * are not JSON are kept in `text` (the imi-server CLI prints plain text).
 */
export function spawnNode(script, args = [], { nodeArgs = [], env = {}, name = script, echoStderr = true } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const proc = new NodeProcess(child, name, echoStderr);
  return proc;
}

export class NodeProcess {
  constructor(child, name, echoStderr) {
    this.child = child;
    this.name = name;
    this.pid = child.pid;
    this.messages = [];
    this.text = '';
    this.stderr = '';
    this.waiters = [];
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exitInfo = undefined;
    void this.exited.then((info) => {
      this.exitInfo = info;
      this.check();
    });
    child.stdin.on('error', () => {});
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('{')) {
        try {
          this.messages.push(JSON.parse(line));
          this.check();
          return;
        } catch {
          // fall through: kept as text
        }
      }
      this.text += line + '\n';
      this.check();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      this.stderr += chunk;
      if (this.stderr.length > 100_000) this.stderr = this.stderr.slice(-50_000);
      if (echoStderr) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${name}] `));
    });
  }

  check() {
    for (const waiter of [...this.waiters]) {
      const found = waiter.find();
      if (found !== undefined) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.resolve(found);
      } else if (this.exitInfo !== undefined) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`${this.name} exited (${JSON.stringify(this.exitInfo)}) while waiting for ${waiter.what}; stderr: ${this.stderr.slice(-2000)}`));
      }
    }
  }

  /** Waits for (and consumes) the first message with `event`, optionally matching `filter`. */
  waitEvent(event, timeoutMs = 30_000, filter = () => true) {
    return this.waitFor(() => {
      const index = this.messages.findIndex((m) => m.event === event && filter(m));
      if (index === -1) return undefined;
      return this.messages.splice(index, 1)[0];
    }, timeoutMs, `event ${event}`);
  }

  /** Waits for a regex to match the plain-text stdout. */
  waitText(regex, timeoutMs = 30_000) {
    return this.waitFor(() => regex.exec(this.text) ?? undefined, timeoutMs, `text ${regex}`);
  }

  waitFor(find, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const waiter = { find, resolve, reject, what, timer: undefined };
      const found = find();
      if (found !== undefined) {
        resolve(found);
        return;
      }
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
      if (this.exitInfo !== undefined) this.check();
    });
  }

  /** Sends a command line on stdin. */
  command(line) {
    this.child.stdin.write(line + '\n');
  }

  /** Sends a command and waits for the reply event. */
  async request(line, event, timeoutMs = 30_000) {
    this.command(line);
    return this.waitEvent(event, timeoutMs);
  }

  /** Stops the process: `signal`, then SIGKILL after `graceMs`. */
  async stop(signal = 'SIGTERM', graceMs = 5_000) {
    if (this.exitInfo !== undefined) return this.exitInfo;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }
}

/**
 * The control channel of a process under test: reads commands on stdin and
 * answers `mem` with process.memoryUsage() after full GCs (run node with
 * --expose-gc), plus whatever `extra` handles.
 */
export function controlChannel(extra = {}) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    const [command, ...rest] = line.trim().split(' ');
    if (command === 'mem') {
      process.stdout.write(JSON.stringify({ event: 'mem', ...(await memorySnapshot()) }) + '\n');
      return;
    }
    if (command === 'heapsnapshot') {
      // For looking at what a user costs: node bench/lib/heap-summary.mjs <file>
      const { writeHeapSnapshot } = await import('node:v8');
      process.stdout.write(JSON.stringify({ event: 'heapsnapshot', file: writeHeapSnapshot(rest[0] || undefined) }) + '\n');
      return;
    }
    const handler = extra[command];
    if (handler) {
      const result = await handler(...rest);
      if (result !== undefined) process.stdout.write(JSON.stringify(result) + '\n');
    }
  });
  // Orphaned (the orchestrator that holds our stdin pipe died): do not linger.
  let piped = false;
  try {
    piped = fstatSync(0).isFIFO() || fstatSync(0).isSocket();
  } catch {
    // no stdin
  }
  if (piped) process.stdin.on('end', () => process.exit(0));
}

/** process.memoryUsage() after repeated full GCs (when gc is exposed). */
export async function memorySnapshot() {
  if (typeof globalThis.gc === 'function') {
    for (let i = 0; i < 3; i++) {
      globalThis.gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const usage = process.memoryUsage();
  return { rss: usage.rss, heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, arrayBuffers: usage.arrayBuffers, gcExposed: typeof globalThis.gc === 'function' };
}

/** Writes one JSON line on stdout. */
export function emit(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

/** Parses `--name value` / `--flag` arguments into an object (camelCased keys). */
export function parseFlags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) continue;
    const [rawKey, inline] = arg.slice(2).split('=', 2);
    const key = rawKey.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (inline !== undefined) out[key] = inline;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key] = argv[++i];
    else out[key] = true;
  }
  return out;
}
