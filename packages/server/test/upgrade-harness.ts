// Real processes for the upgrade tests: imi-server with a pid file (whose
// successors inherit its stdout/stderr pipes), the upgrade-app fixture, and
// users on raw sockets — plain TCP, and a telnet client that negotiates
// like a MUD client (NAWS, TTYPE, ECHO, MCCP2) and, unlike the one in
// transport-harness.ts, follows a compressed stream that ends and a new one
// that starts (what a MUD client must do across a copyover).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { TELNET, TELNET_OPTION } from '@imi/server';
import { waitFor } from './harness.js';

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
  async stats(): Promise<{ stats: { errors: Record<string, number>; sessions: number; sessionsOpened: number }; process: { pid: number } }> {
    const response = await fetch(`http://127.0.0.1:${this.adminPort}/stats`);
    return (await response.json()) as { stats: { errors: Record<string, number>; sessions: number; sessionsOpened: number }; process: { pid: number } };
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
}

/** The upgrade-app fixture. */
export class App {
  readonly events: AppEvent[] = [];
  private buffer = '';

  private constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      this.buffer += text;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        this.events.push(JSON.parse(this.buffer.slice(0, newline)) as AppEvent);
        this.buffer = this.buffer.slice(newline + 1);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => process.stderr.write(`[upgrade-app] ${text}`));
    cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  }

  static async start(clientPort: number): Promise<App> {
    const app = new App(spawn(process.execPath, [APP, String(clientPort)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitFor(() => app.events.some((event) => event.event === 'ready'), 15_000, 'the app to be ready');
    return app;
  }

  connects(): AppEvent[] {
    return this.events.filter((event) => event.event === 'connect');
  }

  resyncs(): AppEvent[] {
    return this.events.filter((event) => event.event === 'synced');
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

const { IAC, DO, DONT, WILL, WONT, SB, SE } = TELNET;
const VERBS: Record<number, string> = { [WILL]: 'WILL', [WONT]: 'WONT', [DO]: 'DO', [DONT]: 'DONT' };

/** A telnet user that accepts NAWS, TTYPE, ECHO and MCCP2, and follows compressed streams ending and starting again. */
export class TelnetUser extends User {
  /** Commands received, as `"WILL 1"`. */
  readonly commands: string[] = [];
  /** Compressed streams started by the server (IAC SB MCCP2 IAC SE). */
  mccp2Starts = 0;
  /** Compressed streams that ended cleanly. */
  mccp2Ends = 0;
  /** Whether an inflate error happened (garbage in a compressed stream). */
  inflateErrors = 0;
  /** Bytes outside commands that were not UTF-8 text of the replies (garbage). */
  private received = '';
  private state: 'data' | 'iac' | 'verb' | 'sb' | 'sbdata' | 'sbiac' = 'data';
  private verb = 0;
  private subOption = 0;
  private sub: number[] = [];
  private inflate: zlib.Inflate | undefined;
  private compressed: Buffer[] = [];

  private constructor(
    name: string,
    readonly socket: net.Socket,
    private readonly size: [number, number],
  ) {
    super(name);
    socket.on('data', (chunk: Buffer) => this.onWire(chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
    cleanups.push(() => socket.destroy());
  }

  static async connect(name: string, port: number, size: [number, number]): Promise<TelnetUser> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    socket.setNoDelay(true);
    return new TelnetUser(name, socket, size);
  }

  get text(): string {
    return this.received;
  }

  protected sendLine(line: string): void {
    this.socket.write(line + '\r\n');
  }

  private onWire(chunk: Buffer): void {
    if (this.inflate === undefined) {
      this.parse(chunk);
      return;
    }
    this.compressed.push(chunk);
    this.inflate.write(chunk);
  }

  private startInflate(rest: Buffer): void {
    this.mccp2Starts++;
    const inflate = zlib.createInflate();
    this.inflate = inflate;
    this.compressed = [];
    inflate.on('data', (plain: Buffer) => this.parse(plain));
    inflate.on('error', () => this.inflateErrors++);
    inflate.on('end', () => {
      // The stream ended: whatever followed it on the wire is plain telnet again.
      this.mccp2Ends++;
      const after = Buffer.concat(this.compressed).subarray(inflate.bytesWritten);
      this.inflate = undefined;
      this.compressed = [];
      this.parse(after);
    });
    if (rest.length > 0) this.onWire(rest);
  }

  private reply(bytes: number[]): void {
    this.socket.write(Buffer.from(bytes));
  }

  private onCommand(verb: number, option: number): void {
    this.commands.push(`${VERBS[verb]} ${option}`);
    const { NAWS, TTYPE, ECHO, MCCP2 } = TELNET_OPTION;
    if (verb === DO && option === NAWS) {
      this.reply([IAC, WILL, NAWS, IAC, SB, NAWS, 0, this.size[0], 0, this.size[1], IAC, SE]);
    } else if (verb === DO && option === TTYPE) this.reply([IAC, WILL, TTYPE]);
    else if (verb === WILL && (option === MCCP2 || option === ECHO)) this.reply([IAC, DO, option]);
    else if (verb === WONT && option === ECHO) this.reply([IAC, DONT, ECHO]);
    else if (verb === DO) this.reply([IAC, WONT, option]);
    else if (verb === WILL) this.reply([IAC, DONT, option]);
  }

  private parse(chunk: Buffer): void {
    let text: number[] = [];
    const flush = (): void => {
      if (text.length > 0) this.received += Buffer.from(text).toString('utf8');
      text = [];
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      switch (this.state) {
        case 'data':
          if (byte === IAC) this.state = 'iac';
          else text.push(byte);
          break;
        case 'iac':
          if (byte === IAC) {
            text.push(IAC);
            this.state = 'data';
          } else if (byte >= WILL && byte <= DONT) {
            this.verb = byte;
            this.state = 'verb';
          } else this.state = byte === SB ? 'sb' : 'data';
          break;
        case 'verb':
          this.state = 'data';
          this.onCommand(this.verb, byte);
          break;
        case 'sb':
          this.subOption = byte;
          this.sub = [];
          this.state = 'sbdata';
          break;
        case 'sbdata':
          if (byte === IAC) this.state = 'sbiac';
          else this.sub.push(byte);
          break;
        case 'sbiac':
          if (byte !== SE) {
            this.sub.push(byte);
            this.state = 'sbdata';
            break;
          }
          this.state = 'data';
          if (this.subOption === TELNET_OPTION.TTYPE && this.sub[0] === 1) this.reply([IAC, SB, TELNET_OPTION.TTYPE, 0, ...Buffer.from('MUDLET'), IAC, SE]);
          if (this.subOption === TELNET_OPTION.MCCP2) {
            flush();
            // Everything after IAC SB MCCP2 IAC SE is a zlib stream.
            this.startInflate(chunk.subarray(i + 1));
            return;
          }
          break;
      }
    }
    flush();
  }
}
