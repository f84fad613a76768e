// Real processes for the transport tests and the cross-package ones
// (test/): the imi-server CLI, Node scripts such as the app fixtures, the
// Debian telnet client driven under tmux, and netcat; and the readers of
// what they print (JSON events) and of users' sockets (lines). Every process
// started here is stopped by stopAll().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { waitFor } from './harness.js';

export { sleep, waitFor } from './harness.js';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const CHAT_APP = fileURLToPath(new URL('./fixtures/chat-app.mjs', import.meta.url));

const started: Array<{ stop(): void }> = [];

/** Stops everything started through this module (call it in afterEach/afterAll). */
export function stopAll(): void {
  for (const thing of started.splice(0).reverse()) thing.stop();
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the commands a test needs are installed. On a developer's machine
 * a missing tool skips the test; in CI (`CI` set) it is an error, so a
 * broken setup (.ci/run installs them) cannot pass silently.
 */
export function commandsAvailable(...names: string[]): boolean {
  const missing = names.filter((name) => !hasCommand(name));
  if (missing.length > 0 && process.env['CI']) throw new Error(`missing commands in CI: ${missing.join(', ')} (.ci/run installs them)`);
  return missing.length === 0;
}

/** A listener as the CLI's listening line names it. */
export interface PrintedListener {
  transport: string;
  port: number;
  details: string;
}

/** An imi-server child process. */
export interface ServerProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  externalPort: number;
  clientPort: number;
  /** The listeners after the default one, as printed. */
  listeners: PrintedListener[];
  exited: Promise<number | null>;
}

const LISTENING = /^imi-server listening: users on port (\d+) \(host [^)]*\), app on port (\d+) \(host [^)]*\)(.*)$/m;

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** After the listening line, wait for one matching this too (a cluster holder's `cluster holder …`). */
  until?: RegExp;
  /** Copy its stderr to the test's, each chunk prefixed with `[label]`. */
  label?: string;
}

/** Starts `imi-server` with these arguments (on 127.0.0.1, free ports unless given) and waits for its listening line. */
export async function startServer(args: string[], options: StartServerOptions = {}): Promise<ServerProcess> {
  const server = startNode(CLI, ['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...args], {
    env: { ...process.env, IMI_TOKEN: '' },
    ...(options.label === undefined ? {} : { label: options.label }),
  });
  const { child, stdout, stderr } = server;
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const ready = (): boolean => LISTENING.test(stdout()) && (options.until === undefined || options.until.test(stdout()));
  await waitFor(() => ready() || gone, 15_000, () => `imi-server to listen (stdout ${JSON.stringify(stdout())}, stderr ${JSON.stringify(stderr())})`);
  const match = LISTENING.exec(stdout());
  if (!match || !ready()) throw new Error(`imi-server exited: ${stderr()}`);
  const listeners = [...match[3]!.matchAll(/, (\S+) on port (\d+) \(([^)]*)\)/g)].map((m) => ({ transport: m[1]!, port: Number(m[2]), details: m[3]! }));
  return { child, stdout, stderr, externalPort: Number(match[1]), clientPort: Number(match[2]), listeners, exited };
}

/** A Node script as a child process (stopped by {@link stopAll}). */
export interface NodeProcess {
  child: ChildProcess;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
}

/**
 * Starts `node script ...args`, collecting what it prints; with `label`, its
 * stderr is copied to the test's too (an app's errors show in the test log).
 */
export function startNode(script: string, args: string[], options: { label?: string; env?: NodeJS.ProcessEnv } = {}): NodeProcess {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  started.push({ stop: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL') });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    err += text;
    if (options.label !== undefined) process.stderr.write(`[${options.label}] ${text}`);
  });
  return { child, stdout: () => out, stderr: () => err };
}

/**
 * Reads a process's stdout as one JSON value a line (how the test fixtures
 * report events), handing each to `onEvent`; a line that is not JSON goes to
 * `onOther`, or is skipped.
 */
export function readJsonLines<T>(stream: Readable, onEvent: (event: T) => void, onOther?: (line: string) => void): void {
  let buffer = '';
  stream.setEncoding('utf8').on('data', (text: string) => {
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let event: T;
      try {
        event = JSON.parse(line) as T;
      } catch {
        onOther?.(line);
        continue;
      }
      onEvent(event);
    }
  });
}

/** Reads a user's socket as UTF-8 lines (a CR before the LF dropped), handing each to `onLine`. */
export function readLines(socket: net.Socket, onLine: (line: string) => void): void {
  let buffer = '';
  socket.setEncoding('utf8').on('data', (text: string) => {
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      onLine(line);
    }
  });
}

/** One event the chat app printed. */
export type AppEvent = { event: string; id?: string; transport?: string; line?: string; [key: string]: unknown };

/** The chat app fixture as a child process. */
export class AppProcess {
  readonly child: ChildProcess;
  readonly events: AppEvent[] = [];
  stderr = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    readJsonLines<AppEvent>(child.stdout!, (event) => this.events.push(event));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.stderr += text));
  }

  /** Starts the app against the intermediary's app port and waits until it is resynced. */
  static async start(clientPort: number): Promise<AppProcess> {
    const child = spawn(process.execPath, [CHAT_APP, String(clientPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push({ stop: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL') });
    const app = new AppProcess(child);
    await app.waitForEvent((event) => event.event === 'ready', 15_000, 'the app to be ready');
    return app;
  }

  async waitForEvent(predicate: (event: AppEvent) => boolean, timeoutMs = 10_000, what = 'an app event'): Promise<AppEvent> {
    let found: AppEvent | undefined;
    await waitFor(() => (found = this.events.find(predicate)) !== undefined, timeoutMs, () => `${what} (events ${JSON.stringify(this.events.slice(-8))}, stderr ${JSON.stringify(this.stderr)})`);
    return found!;
  }

  /** Kills the app (SIGKILL: a crash) and waits for it to be gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((resolve) => this.child.once('close', resolve));
    this.child.kill('SIGKILL');
    await gone;
  }
}

let tmuxServers = 0;

/**
 * The Debian `telnet` client in a detached tmux session: keys are typed into
 * it, and the screen is read back, exactly what a person would see.
 */
export class TmuxTelnet {
  private readonly socketName: string;
  private socketPath: string | undefined;

  private constructor(socketName: string) {
    this.socketName = socketName;
  }

  /** Opens `telnet 127.0.0.1 <port>` in a terminal of `width` x `height`. */
  static start(port: number, width = 100, height = 30): TmuxTelnet {
    const socketName = `imi-test-${process.pid}-${++tmuxServers}`;
    const session = new TmuxTelnet(socketName);
    session.tmux(['-f', '/dev/null', 'new-session', '-d', '-s', 'imi', '-x', String(width), '-y', String(height), `env TERM=xterm-256color telnet 127.0.0.1 ${port}`]);
    session.tmux(['set-option', '-t', 'imi', 'remain-on-exit', 'on']);
    session.socketPath = session.tmux(['display-message', '-p', '#{socket_path}']).trim();
    started.push({ stop: () => session.kill() });
    return session;
  }

  private tmux(args: string[]): string {
    return execFileSync('tmux', ['-L', this.socketName, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Types a line and presses Enter. */
  type(line: string): void {
    if (line.length > 0) this.tmux(['send-keys', '-t', 'imi', '-l', line]);
    this.tmux(['send-keys', '-t', 'imi', 'Enter']);
  }

  /** Sends tmux key names (`C-]`, `Enter`, …). */
  keys(...keys: string[]): void {
    this.tmux(['send-keys', '-t', 'imi', ...keys]);
  }

  /** The screen and its scrollback, as text. */
  screen(): string {
    return this.tmux(['capture-pane', '-p', '-J', '-S', '-200', '-t', 'imi']);
  }

  /** Resizes the terminal (the client then sends NAWS). */
  resize(width: number, height: number): void {
    this.tmux(['resize-window', '-t', 'imi', '-x', String(width), '-y', String(height)]);
  }

  async waitForScreen(text: string | RegExp, timeoutMs = 10_000): Promise<string> {
    const started = Date.now();
    for (;;) {
      const screen = this.screen();
      if (typeof text === 'string' ? screen.includes(text) : text.test(screen)) return screen;
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${String(text)} on the telnet screen:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  kill(): void {
    try {
      this.tmux(['kill-server']);
    } catch {
      // already gone
    }
    // tmux leaves its socket file behind.
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }
}

/** `nc 127.0.0.1 <port>` with a pipe for its input: what a netcat user types, and what they see. */
export class Netcat {
  readonly child: ChildProcess;
  received = '';
  closed = false;

  private constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (this.received += text));
    child.on('close', () => (this.closed = true));
  }

  static start(port: number): Netcat {
    const child = spawn('nc', ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
    started.push({ stop: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL') });
    return new Netcat(child);
  }

  /** Types a line (netcat sends LF). */
  type(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.received.includes(text), timeoutMs, () => `netcat to receive ${JSON.stringify(text)} (got ${JSON.stringify(this.received.slice(-300))})`);
  }
}

/** The Debian Chromium (override with CHROMIUM_PATH). */
export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** Flags for a quiet, headless Chromium in a container: no sandbox, no GPU, no network of its own. */
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Where tests leave screenshots (gitignored). */
export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

/** Launches headless Chromium with playwright-core (which never downloads a browser). */
export async function launchBrowser(): Promise<import('playwright-core').Browser> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  started.push({ stop: () => void browser.close().catch(() => {}) });
  return browser;
}
