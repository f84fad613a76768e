/**
 * `imi-server status` and `imi-server top`: the admin API's command-line
 * client. `status` prints one readable summary of `GET /stats` and
 * `GET /readyz`; `top` redraws it every second with rates and the sessions
 * with the deepest queues, until `q` or Ctrl-C.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import type { AdminSessionInfo, AdminStatsResponse } from './admin.js';
import type { IntermediaryStats } from '../api.js';
import { DEFAULT_ADMIN_HOST } from '../options.js';

/** Largest admin API answer the client reads. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** Where the admin API is and how to ask it. */
interface Target {
  host: string;
  port: number;
  token: string | undefined;
  timeoutMs: number;
}

/** A problem worth one line on stderr and an exit code. */
class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function usage(command: string): string {
  return [
    `Usage: imi-server ${command} [--admin-port N] [--admin-host H] [--admin-token T] [--config file.json]`,
    '',
    command === 'top'
      ? 'Shows the intermediary live (refreshed every --interval-ms, default 1000); q or Ctrl-C quits.'
      : command === 'upgrade'
        ? 'Hands every user over to the imi-server on disk now (a new process), then the old one exits; a failed upgrade changes nothing.'
        : "Prints a summary of a running intermediary's numbers, from its admin API.",
    '',
    '  --admin-port <port>     the admin port (or adminPort from --config); required',
    '  --admin-host <host>     default 127.0.0.1 (or adminHost from --config)',
    '  --admin-token <token>   or IMI_ADMIN_TOKEN, adminToken/token from --config, IMI_TOKEN',
    '  --config <file.json>    the config file imi-server runs with',
    '  --timeout-ms <ms>       per request, default 5000',
    ...(command === 'top' ? ['  --interval-ms <ms>      refresh interval, default 1000'] : [`  --json                  print the raw ${command === 'upgrade' ? '/upgrade' : '/stats'} answer`]),
    '  -h, --help              this text',
    '',
    'Exit codes: 0 ok, 1 the admin API cannot be reached or refused, 2 bad arguments.',
  ].join('\n');
}

function parseTarget(command: string, argv: string[], env: NodeJS.ProcessEnv): { target: Target; json: boolean; intervalMs: number } | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'admin-port': { type: 'string' },
        'admin-host': { type: 'string' },
        'admin-token': { type: 'string' },
        config: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'interval-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new CommandError(`${(error as Error).message} (see imi-server ${command} --help)`, 2);
  }
  if (values['help']) return 'help';
  let config: Record<string, unknown> = {};
  const configPath = values['config'];
  if (typeof configPath === 'string') {
    try {
      config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new CommandError(`cannot read --config ${configPath}: ${(error as Error).message}`, 2);
    }
  }
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  const number = (flag: string, raw: unknown, fallback: number | undefined): number | undefined => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) throw new CommandError(`--${flag} must be a non-negative integer, got ${JSON.stringify(raw)}`, 2);
    return value;
  };
  const port = number('admin-port', values['admin-port'] ?? config['adminPort'], undefined);
  if (port === undefined || port === 0 || port > 65535) throw new CommandError(`${command} needs --admin-port (the port imi-server's admin API listens on), or a --config with adminPort`, 2);
  let host = text(values['admin-host']) ?? text(config['adminHost']) ?? DEFAULT_ADMIN_HOST;
  // A bind-everything address is not one to connect to: use loopback.
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const token = text(values['admin-token']) ?? text(env['IMI_ADMIN_TOKEN']) ?? text(config['adminToken']) ?? text(config['token']) ?? text(env['IMI_TOKEN']);
  const timeoutMs = number('timeout-ms', values['timeout-ms'], 5_000)!;
  const intervalMs = Math.max(100, number('interval-ms', values['interval-ms'], 1_000)!);
  return { target: { host, port, token, timeoutMs }, json: values['json'] === true, intervalMs };
}

function baseUrl(target: Target): string {
  return `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

/** GETs a JSON answer, reading at most {@link MAX_RESPONSE_BYTES}. */
function getJson<T>(target: Target, path: string, auth = true): Promise<{ status: number; body: T }> {
  return request<T>(target, path, 'GET', auth);
}

/** Asks the admin API, reading at most {@link MAX_RESPONSE_BYTES} of JSON. */
function request<T>(target: Target, path: string, method: 'GET' | 'POST', auth = true): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (auth && target.token !== undefined) headers['authorization'] = `Bearer ${target.token}`;
    const request = http.request({ method, host: target.host, port: target.port, path, headers, timeout: target.timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          request.destroy(new Error(`the answer to ${path} is over ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new CommandError(`${path} answered ${status} with something that is not JSON; is ${baseUrl(target)} an imi admin port?`, 1));
          return;
        }
        if (status === 401) {
          reject(new CommandError(`the admin API refused the token (401): give --admin-token or set IMI_ADMIN_TOKEN`, 1));
          return;
        }
        resolve({ status, body: body as T });
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
    request.on('error', (error) => {
      reject(error instanceof CommandError ? error : new CommandError(`cannot reach the admin API at ${baseUrl(target)}/ (${error.message}); is imi-server running with --admin-port ${target.port}?`, 1));
    });
    request.end();
  });
}

interface Snapshot {
  stats: AdminStatsResponse;
  ready: { ready: boolean; appConnected: boolean };
}

async function fetchSnapshot(target: Target): Promise<Snapshot> {
  const [stats, ready] = await Promise.all([
    getJson<AdminStatsResponse>(target, '/stats'),
    getJson<{ ready: boolean; appConnected: boolean }>(target, '/readyz?app=1', false),
  ]);
  if (stats.status !== 200) throw new CommandError(`/stats answered ${stats.status}: ${JSON.stringify(stats.body).slice(0, 200)}`, 1);
  return { stats: stats.body, ready: ready.body };
}

// ------------------------------------------------------------ formatting

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d ${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/** `name n, name n` for the non-zero entries, or `none`. */
function nonZero(record: Record<string, number>): string {
  const entries = Object.entries(record).filter(([, value]) => value > 0);
  return entries.length === 0 ? 'none' : entries.map(([key, value]) => `${key} ${int(value)}`).join(', ');
}

/** Per-second rates between two snapshots of the counters. */
interface Rates {
  inputLines: number;
  inputBytes: number;
  outputWrites: number;
  outputBytes: number;
}

/**
 * The summary `imi-server status` prints (and `top` redraws).
 *
 * @param target - where the admin API is
 * @param snapshot - what it answered
 * @param rates - per-second rates (top only)
 */
function formatSummary(target: Target, snapshot: Snapshot, rates?: Rates): string {
  const { stats: response, ready } = snapshot;
  const s: IntermediaryStats = response.stats;
  const p = response.process;
  const transports = Object.entries(s.sessionsByTransport ?? {})
    .map(([transport, count]) => `${transport} ${int(count)}`)
    .join(', ');
  const app = s.appConnected ? `connected${s.appName ? ` (${s.appName})` : ''}` : 'NOT CONNECTED';
  const lines = [
    `imi-server at ${baseUrl(target)}: up ${duration(response.uptimeSeconds)}, ${response.listening ? 'listening' : 'not listening'}, ${ready.ready ? 'ready' : 'not ready (no app)'}`,
    `app       ${app}; ${int(s.appConnects)} connects, ${int(s.appDisconnects)} disconnects, ${int(s.appReplacements)} replaced; last resync ${s.lastResyncMs === undefined ? 'none' : `${s.lastResyncMs.toFixed(2)} ms${s.lastResyncAnnounced === undefined ? '' : `, ${int(s.lastResyncAnnounced)} announced`}`}`,
    `sessions  ${int(s.sessions)} live${transports ? ` (${transports})` : ''}; ${int(s.sessionsOpened)} opened since start`,
    `input     ${int(s.inputLines)} lines (${bytes(s.inputBytes)})${rates ? `, ${rates.inputLines.toFixed(1)} lines/s` : ''}; queued ${int(s.queuedLines)} lines (${bytes(s.queuedBytes)}); unacked ${int(s.unacked)}; redelivered ${int(s.redelivered)}`,
    `output    ${int(s.outputWrites)} writes (${bytes(s.outputBytes)})${rates ? `, ${rates.outputWrites.toFixed(1)} writes/s, ${bytes(rates.outputBytes)}/s` : ''}; held app messages ${int(s.heldMessages)}`,
    `dropped   ${nonZero(s.dropped)}`,
    `refused   ${nonZero(s.refused ?? {})}`,
    `errors    ${nonZero(s.errors)}`,
    `limits    ${nonZero(s.limits)}`,
    `process   pid ${p.pid}, node ${p.nodeVersion}; rss ${bytes(p.rssBytes)}, heap ${bytes(p.heapUsedBytes)} of ${bytes(p.heapTotalBytes)}; event-loop delay mean ${p.eventLoopDelayMeanMs.toFixed(2)} ms, p99 ${p.eventLoopDelayP99Ms.toFixed(2)} ms`,
  ];
  return lines.join('\n');
}

function formatSessions(sessions: AdminSessionInfo[], total: number, now: number): string {
  const header = `${'session'.padEnd(36)}  ${'transport'.padEnd(9)}  ${'remote'.padEnd(28)}  ${'for'.padStart(8)}  ${'queued'.padStart(7)}  ${'q bytes'.padStart(9)}  ${'unacked'.padStart(7)}  state keys`;
  const rows = sessions.map((session) => {
    const remote = `${session.remote.address}:${session.remote.port}`;
    const age = duration((now - Date.parse(session.connectedSince)) / 1000);
    return `${session.id.padEnd(36)}  ${session.transport.padEnd(9)}  ${remote.slice(0, 28).padEnd(28)}  ${age.padStart(8)}  ${int(session.queuedLines).padStart(7)}  ${bytes(session.queuedBytes).padStart(9)}  ${int(session.unacked).padStart(7)}  ${session.stateKeys.length}`;
  });
  return [`sessions (${sessions.length} of ${int(total)}, deepest queues first)`, header, ...rows].join('\n');
}

// -------------------------------------------------------------- commands

async function status(target: Target, json: boolean): Promise<number> {
  const snapshot = await fetchSnapshot(target);
  process.stdout.write((json ? JSON.stringify(snapshot.stats, null, 2) : formatSummary(target, snapshot)) + '\n');
  return 0;
}

/** `imi-server upgrade`: POST /upgrade, which answers once the successor serves (or the upgrade failed). */
async function upgrade(target: Target, json: boolean): Promise<number> {
  // The upgrade itself is bounded by upgradeTimeoutMs (twice: ready, then serving); wait past that.
  const answer = await request<{ pid?: number; sessions?: number; closed?: number; durationMs?: number; phases?: { frozenMs?: number }; error?: string }>({ ...target, timeoutMs: Math.max(target.timeoutMs, 60_000) }, '/upgrade', 'POST');
  if (answer.status !== 200) throw new CommandError(`the upgrade failed (${answer.status}): ${answer.body.error ?? JSON.stringify(answer.body).slice(0, 200)}; the old process serves on`, 1);
  const b = answer.body;
  process.stdout.write(json ? JSON.stringify(b) + '\n' : `upgraded: pid ${b.pid} serves ${b.sessions} sessions (${b.closed} closed: TLS), handed over in ${b.durationMs?.toFixed(1)} ms${b.phases?.frozenMs === undefined ? '' : ` (users not read from for ${b.phases.frozenMs.toFixed(1)} ms)`}\n`);
  return 0;
}

async function top(target: Target, intervalMs: number): Promise<number> {
  // Fail at once when nothing answers or the token is wrong; later errors are shown and retried.
  await fetchSnapshot(target);
  const tty = process.stdout.isTTY === true;
  let previous: { at: number; stats: IntermediaryStats } | undefined;
  let stopped = false;
  let drawing = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  const draw = async (): Promise<void> => {
    let frame: string;
    try {
      const rows = Math.max(5, (process.stdout.rows ?? 40) - 16);
      const [snapshot, listed] = await Promise.all([
        fetchSnapshot(target),
        getJson<{ total: number; sessions: AdminSessionInfo[] }>(target, `/sessions?sort=queue&limit=${rows}`),
      ]);
      const now = Date.now();
      const s = snapshot.stats.stats;
      let rates: Rates | undefined;
      if (previous !== undefined) {
        const seconds = Math.max(0.001, (now - previous.at) / 1000);
        rates = {
          inputLines: (s.inputLines - previous.stats.inputLines) / seconds,
          inputBytes: (s.inputBytes - previous.stats.inputBytes) / seconds,
          outputWrites: (s.outputWrites - previous.stats.outputWrites) / seconds,
          outputBytes: (s.outputBytes - previous.stats.outputBytes) / seconds,
        };
      }
      previous = { at: now, stats: s };
      frame = `${formatSummary(target, snapshot, rates)}\n\n${formatSessions(listed.body.sessions ?? [], listed.body.total ?? 0, now)}`;
    } catch (error) {
      frame = `imi-server top: ${(error as Error).message} (retrying)`;
    }
    if (stopped) return;
    const footer = `\n\n[${new Date().toISOString().slice(11, 19)}] refreshing every ${intervalMs} ms; q or Ctrl-C quits`;
    process.stdout.write(tty ? `\x1b[H\x1b[2J${frame}${footer}\n` : `${frame}${footer}\n\n`);
  };
  const tick = (): void => {
    if (drawing || stopped) return;
    drawing = true;
    void draw().finally(() => (drawing = false));
  };
  const timer = setInterval(tick, intervalMs);
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    // Let go of stdin (a pipe left open by the parent would keep the process alive).
    process.stdin.destroy();
    if (tty) process.stdout.write('\x1b[?25h');
    resolveDone(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on('data', (data: Buffer) => {
    if (data.includes(0x71) || data.includes(0x51) || data.includes(0x03)) stop(); // q, Q, Ctrl-C (raw mode)
  });
  process.stdin.on('error', () => {});
  if (tty) process.stdout.write('\x1b[?25l');
  tick();
  return done;
}

/**
 * Runs `imi-server status` or `imi-server top`.
 *
 * @param command - `"status"` or `"top"`
 * @param argv - the arguments after the subcommand
 * @param env - the environment (`IMI_ADMIN_TOKEN`, `IMI_TOKEN`)
 * @returns the exit code
 */
export async function runAdminCommand(command: 'status' | 'top' | 'upgrade', argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const parsed = parseTarget(command, argv, env);
    if (parsed === 'help') {
      process.stdout.write(usage(command) + '\n');
      return 0;
    }
    if (command === 'upgrade') return await upgrade(parsed.target, parsed.json);
    return command === 'status' ? await status(parsed.target, parsed.json) : await top(parsed.target, parsed.intervalMs);
  } catch (error) {
    process.stderr.write(`imi-server ${command}: ${(error as Error).message}\n`);
    return error instanceof CommandError ? error.exitCode : 1;
  }
}
