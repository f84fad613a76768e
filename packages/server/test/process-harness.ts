// Real processes for the transport tests: the imi-server CLI, the chat app
// fixture (an @imi/client app), the Debian telnet client driven under tmux,
// and netcat. Every process started here is stopped by stopAll().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from './harness.js';

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

/** Starts `imi-server` with these arguments (on 127.0.0.1, free ports unless given) and waits for its listening line. */
export async function startServer(args: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMI_TOKEN: '' },
  });
  started.push({ stop: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL') });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (err += text));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  await waitFor(() => LISTENING.test(out) || gone, 15_000, () => `imi-server to listen (stdout ${JSON.stringify(out)}, stderr ${JSON.stringify(err)})`);
  const match = LISTENING.exec(out);
  if (!match) throw new Error(`imi-server exited: ${err}`);
  const listeners = [...match[3]!.matchAll(/, (\S+) on port (\d+) \(([^)]*)\)/g)].map((m) => ({ transport: m[1]!, port: Number(m[2]), details: m[3]! }));
  return { child, stdout: () => out, stderr: () => err, externalPort: Number(match[1]), clientPort: Number(match[2]), listeners, exited };
}

/** One event the chat app printed. */
export type AppEvent = { event: string; id?: string; transport?: string; line?: string; [key: string]: unknown };

/** The chat app fixture as a child process. */
export class AppProcess {
  readonly child: ChildProcess;
  readonly events: AppEvent[] = [];
  private buffer = '';
  stderr = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      this.buffer += text;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        try {
          this.events.push(JSON.parse(line) as AppEvent);
        } catch {
          // not an event
        }
      }
    });
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
