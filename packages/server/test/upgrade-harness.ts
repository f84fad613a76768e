// Real processes for the upgrade tests (and the --supervise ones): imi-server
// with a pid file (whose successors inherit its stdout/stderr pipes), an app
// fixture (upgrade-app, or another script) printing JSON events, and users
// on raw sockets — plain TCP, and transport-harness.ts's telnet client
// negotiating like a MUD client (NAWS, TTYPE, ECHO, MCCP2), which follows a
// compressed stream that ends and a new one that starts (what a MUD client
// must do across a copyover).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './harness.js';
import { readJsonLines } from './process-harness.js';
import { TelnetPeer } from './transport-harness.js';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const APP = fileURLToPath(new URL('./fixtures/upgrade-app.mjs', import.meta.url));
export const FAULTY_SUCCESSOR = fileURLToPath(new URL('./fixtures/faulty-successor.mjs', import.meta.url));

const cleanups: Array<() => void> = [];

/** Kills every process and removes every file this module made. */
export function cleanUp(): void {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
}

/** A temp directory removed by {@link cleanUp}. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'imi-upgrade-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** imi-server and every successor it hands over to (they share its stdout and stderr). */
export class Server {
  out = '';
  err = '';
  readonly pids = new Set<number>();
  externalPort = 0;
  clientPort = 0;
  telnetPort = 0;
  adminPort = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly pidFile: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (this.out += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.err += text));
    cleanups.push(() => {
      for (const pid of this.pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
  }

  static async start(args: string[], env: Record<string, string> = {}): Promise<Server> {
    const pidFile = join(tempDir(), 'imi.pid');
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete childEnv['IMI_TOKEN'];
    delete childEnv['IMI_ADMIN_TOKEN'];
    const child = spawn(process.execPath, [CLI, '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--admin-port', '0', '--telnet-port', '0', '--telnet-mccp2', 'true', '--pid-file', pidFile, '--log-level', 'warn', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv,
    });
    const server = new Server(child, pidFile);
    server.pids.add(child.pid!);
    await waitFor(() => /admin: port \d+/.test(server.out) || child.exitCode !== null, 15_000, () => `imi-server to listen (${server.err})`);
    const listening = /users on port (\d+) .*app on port (\d+) .*telnet on port (\d+)/.exec(server.out);
    if (!listening) throw new Error(`imi-server did not start: ${server.err}`);
    server.externalPort = Number(listening[1]);
    server.clientPort = Number(listening[2]);
    server.telnetPort = Number(listening[3]);
    server.adminPort = Number(/admin: port (\d+)/.exec(server.out)![1]);
    return server;
  }

  /** The pid in the pid file. */
  pid(): number {
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    this.pids.add(pid);
    return pid;
  }

  /** Whether that process runs. */
  alive(pid: number): boolean {
    return alive(pid);
  }

  /** Runs `imi-server upgrade --admin-port … --json`; resolves with its exit code and output. */
  async upgradeCommand(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [CLI, 'upgrade', '--admin-port', String(this.adminPort), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  }

  /** GET /stats of whichever process serves now. */
  async stats(): Promise<{ stats: { errors: Record<string, number>; sessions: number; sessionsOpened: number; lastResyncAnnounced?: number }; process: { pid: number } }> {
    const response = await fetch(`http://127.0.0.1:${this.adminPort}/stats`);
    return (await response.json()) as { stats: { errors: Record<string, number>; sessions: number; sessionsOpened: number; lastResyncAnnounced?: number }; process: { pid: number } };
  }
}

/** One event the upgrade app printed. */
export interface AppEvent {
  event: string;
  id?: string;
  resumed?: boolean;
  transport?: string;
  line?: string;
  telnet?: { naws?: { width: number; height: number }; echo?: boolean; mccp2?: boolean } | null;
  state?: Record<string, unknown>;
  /** `synced`: how many users the resync named, and every session the app knows after it. */
  count?: number;
  sessions?: AppEvent[];
  /** `reconnecting`: the attempt, its delay in ms, and why the link went down. */
  attempt?: number;
  delay?: number;
  cause?: string;
}

/** An app fixture (the upgrade app unless another script is given): the events it prints, one JSON object a line. */
export class App {
  readonly events: AppEvent[] = [];

  private constructor(
    readonly child: ChildProcess,
    label: string,
  ) {
    readJsonLines<AppEvent>(
      child.stdout!,
      (event) => this.events.push(event),
      (line) => {
        throw new Error(`${label} printed a line that is not an event: ${JSON.stringify(line)}`);
      },
    );
    child.stderr!.setEncoding('utf8').on('data', (text: string) => process.stderr.write(`[${label}] ${text}`));
    cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  }

  /** Starts the fixture against the intermediary's app port and waits until it is ready. */
  static async start(clientPort: number, script = APP): Promise<App> {
    const app = new App(spawn(process.execPath, [script, String(clientPort)], { stdio: ['ignore', 'pipe', 'pipe'] }), basename(script, '.mjs'));
    await waitFor(() => app.events.some((event) => event.event === 'ready'), 15_000, 'the app to be ready');
    return app;
  }

  connects(): AppEvent[] {
    return this.events.filter((event) => event.event === 'connect');
  }

  resyncs(): AppEvent[] {
    return this.events.filter((event) => event.event === 'synced');
  }

  reconnects(): AppEvent[] {
    return this.events.filter((event) => event.event === 'reconnecting');
  }

  disconnects(): AppEvent[] {
    return this.events.filter((event) => event.event === 'disconnect');
  }
}

/** What every user has: lines typed, text received, whether the connection closed. */
export abstract class User {
  readonly sent: string[] = [];
  closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly name: string) {}

  /** The text received so far, protocol removed. */
  abstract get text(): string;
  protected abstract sendLine(line: string): void;

  /** Types a numbered line every `intervalMs` until {@link stop}. */
  typeSteadily(intervalMs: number): void {
    this.timer = setInterval(() => this.type(`${this.name}-${this.sent.length + 1}`), intervalMs);
    cleanups.push(() => this.stop());
  }

  stop(): void {
    clearInterval(this.timer);
  }

  type(line: string): void {
    this.sent.push(line);
    this.sendLine(line);
  }

  /** Every line received, in order (empty ones dropped). */
  lines(): string[] {
    return this.text.split(/\r?\n/).filter((line) => line.length > 0);
  }

  /** The replies received (`<line>!`), in order. */
  replies(): string[] {
    return this.lines().filter((line) => line.endsWith('!')).map((line) => line.slice(0, -1));
  }
}

/** A user on a plain TCP socket (lines end with LF). */
export class TcpUser extends User {
  private received = '';

  private constructor(
    name: string,
    readonly socket: net.Socket,
  ) {
    super(name);
    socket.setEncoding('utf8').on('data', (text: string) => (this.received += text));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
    cleanups.push(() => socket.destroy());
  }

  static async connect(name: string, port: number): Promise<TcpUser> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new TcpUser(name, socket);
  }

  get text(): string {
    return this.received;
  }

  protected sendLine(line: string): void {
    this.socket.write(line + '\n');
  }
}

/**
 * A telnet user (transport-harness.ts's {@link TelnetPeer}) that accepts
 * NAWS, TTYPE (`MUDLET`), ECHO and MCCP2, refuses the rest (GMCP, EOR,
 * MSSP, MSDP), and follows compressed streams ending and starting again.
 */
export class TelnetUser extends User {
  readonly socket: net.Socket;

  private constructor(
    name: string,
    private readonly peer: TelnetPeer,
  ) {
    super(name);
    this.socket = peer.socket;
    peer.socket.on('close', () => (this.closed = true));
    cleanups.push(() => peer.socket.destroy());
  }

  static async connect(name: string, port: number, size: [number, number]): Promise<TelnetUser> {
    return new TelnetUser(name, await TelnetPeer.connect(port, { size, ttypes: ['MUDLET'], gmcp: false, mccp2: true }));
  }

  /** Commands received, as `"WILL 1"`. */
  get commands(): readonly string[] {
    return this.peer.commands;
  }

  /** Compressed streams started by the server (IAC SB MCCP2 IAC SE). */
  get mccp2Starts(): number {
    return this.peer.mccp2Starts;
  }

  /** Compressed streams that ended cleanly. */
  get mccp2Ends(): number {
    return this.peer.mccp2Ends;
  }

  /** Whether an inflate error happened (garbage in a compressed stream). */
  get inflateErrors(): number {
    return this.peer.inflateErrors;
  }

  get text(): string {
    return this.peer.text;
  }

  protected sendLine(line: string): void {
    this.socket.write(line + '\r\n');
  }
}
