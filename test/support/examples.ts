/**
 * What the tests of examples/ share: a real intermediary in this process on
 * free ports of 127.0.0.1, an example app as a real child process, and users
 * as raw TCP sockets. Everything started is stopped by {@link cleanUp}
 * (call it in `afterEach`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Intermediary, type IntermediaryOptions } from '@imi/server';

export const root = fileURLToPath(new URL('../..', import.meta.url));

const cleanups: (() => Promise<void> | void)[] = [];

/** Stops everything started since the last call, newest first. */
export async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch {
      // best effort: a failed cleanup must not hide the test's own result
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until `predicate` holds. The deadline only turns a hang into a
 * readable failure; no test measures speed.
 */
export async function waitFor(predicate: () => boolean, what: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(5);
  }
}

/** A real intermediary on free ports of 127.0.0.1. */
export async function startIntermediary(options: IntermediaryOptions = {}): Promise<{ imi: Intermediary; userPort: number; appPort: number }> {
  const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', ...options });
  const ports = await imi.listen();
  cleanups.push(() => imi.close());
  return { imi, userPort: ports.externalPort, appPort: ports.clientPort };
}

/** A child process with what it printed so far. */
export interface Child {
  process: ChildProcess;
  stdout: string;
  stderr: string;
  /** Kills it (SIGKILL, unless another signal is given) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the exit code (or signal) once it exits. */
  exited: Promise<number | NodeJS.Signals | null>;
}

/** Runs `node <script>` from the repository root with extra environment. */
export function runNode(script: string, env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [root + script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const result: Child = {
    process: child,
    stdout: '',
    stderr: '',
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (result.stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (result.stderr += text));
  cleanups.push(() => result.kill());
  return result;
}

/**
 * Starts `examples/<name>/index.js` against the intermediary's app port and
 * waits until it is connected and resynced.
 */
export async function startExample(name: string, imi: Intermediary, appPort: number): Promise<Child> {
  const before = imi.stats().appConnects;
  const app = runNode(`examples/${name}/index.js`, { IMI_CLIENT_PORT: String(appPort) });
  await waitFor(
    () => (imi.appConnected && imi.stats().appConnects > before && app.stdout.includes('connected')) || app.process.exitCode !== null,
    () => `the ${name} example to connect (stderr: ${app.stderr})`,
  );
  if (app.process.exitCode !== null) throw new Error(`the ${name} example exited with ${app.process.exitCode}: ${app.stderr}`);
  return app;
}

/** A user on a raw TCP connection, as telnet or nc would be. */
export class User {
  /** Everything received, as text. */
  received = '';
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (this.received += text));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<User> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    cleanups.push(() => void socket.destroy());
    return new User(socket);
  }

  /** Received text split in lines (CR stripped), the unfinished last one included. */
  get lines(): string[] {
    return this.received.split('\n').map((line) => line.replace(/\r$/, ''));
  }

  /** Types a line (CRLF added, as telnet does). */
  type(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** Waits until a received line matches (a string is a whole line). */
  async waitForLine(wanted: string | RegExp): Promise<string> {
    const matches = (line: string): boolean => (typeof wanted === 'string' ? line === wanted : wanted.test(line));
    await waitFor(
      () => this.lines.some(matches),
      () => `a line ${String(wanted)}; received:\n${this.received}`,
    );
    return this.lines.find(matches)!;
  }

  /** Waits until the connection is closed by the other side. */
  async waitForClose(): Promise<void> {
    await waitFor(
      () => this.closed,
      () => `the connection to close; received:\n${this.received}`,
    );
  }

  /** Forgets what was received so far, so the next waits only see what comes after. */
  clear(): void {
    this.received = '';
  }
}
