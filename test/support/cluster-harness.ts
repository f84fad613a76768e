// Real processes for the cluster tests: a redis-server on a free port (never
// 6379) with a temporary --dir, imi-server holders (`--redis`), worker
// processes (test/fixtures/cluster-app.mjs on @imi/client) and users on raw
// sockets. stopAll() kills everything started here, by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonLines, readLines, sleep, startServer, stopAll as stopProcesses, waitFor } from '../../packages/server/test/process-harness.js';

export { sleep, waitFor } from '../../packages/server/test/process-harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const started: ChildProcess[] = [];
const dirs: string[] = [];

/** Kills every process started here (SIGKILL) and removes the temporary directories. */
export function stopAll(): void {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  stopProcesses();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something answers RESP `PING` with `+PONG` on the port. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (text: string) => {
      reply += text;
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
    setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1_000).unref();
  });
}

/** A redis-server child process. */
export class RedisProcess {
  child!: ChildProcess;
  log = '';
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly appendonly: boolean,
  ) {}

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server on a free port (retrying on a port taken meanwhile) in a new temporary --dir. */
  static async start(appendonly: boolean): Promise<RedisProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'imi-redis-'));
    dirs.push(dir);
    for (let attempt = 0; attempt < 5; attempt++) {
      const redis = new RedisProcess(await freePort(), dir, appendonly);
      if (await redis.spawn()) return redis;
    }
    throw new Error('could not start redis-server on a free port');
  }

  private async spawn(): Promise<boolean> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', this.appendonly ? 'yes' : 'no', '--appendfsync', 'everysec'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    this.child = child;
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (this.log += text));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) return false; // EADDRINUSE: another port
      if (await ping(this.port)) return true;
      await sleep(50);
    }
    return false;
  }

  /** Stops it gracefully (SIGTERM: it writes its append-only file) and waits for the exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await gone;
  }

  /** Starts it again on the same port and --dir. */
  async restart(): Promise<void> {
    if (!(await this.spawn())) throw new Error(`redis-server did not come back on port ${this.port}: ${this.log.slice(-500)}`);
  }
}

/** An imi-server holder process. */
export interface Holder {
  child: ChildProcess;
  id: string;
  port: number;
  /** The admin API's port, when started with `--admin-port`. */
  adminPort?: number;
  stderr(): string;
}

/** Starts `imi-server --redis` (plus `extraArgs`) and waits until it says it is a holder (and where its admin API is, when asked). */
export async function startHolder(redisUrl: string, id: string, ttlMs: number, extraArgs: string[] = []): Promise<Holder> {
  const admin = extraArgs.includes('--admin-port');
  const server = await startServer(['--redis', redisUrl, '--holder-id', id, '--holder-ttl-ms', String(ttlMs), ...extraArgs], { until: admin ? /cluster holder[\s\S]*admin: port \d+/ : /cluster holder/ });
  const adminMatch = /admin: port (\d+)/.exec(server.stdout());
  return { child: server.child, id, port: server.externalPort, ...(adminMatch ? { adminPort: Number(adminMatch[1]) } : {}), stderr: server.stderr };
}

/** One thing a worker printed. */
export type WorkerEvent = { event: string; id?: string; reason?: string; resumed?: boolean };

/** A worker process (the cluster-app fixture). */
export class WorkerProcess {
  readonly events: WorkerEvent[] = [];
  stderr = '';
  private constructor(
    readonly id: string,
    readonly child: ChildProcess,
  ) {
    readJsonLines<WorkerEvent>(child.stdout!, (event) => this.events.push(event));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.stderr += text));
  }

  /** Starts a worker (its app answers each line after `replyDelayMs`; `env` adds to its environment) and waits until its client is up. */
  static async start(redisUrl: string, id: string, leaseTtlMs: number, holderTtlMs: number, replyDelayMs = 30, env: Record<string, string> = {}): Promise<WorkerProcess> {
    const child = spawn(process.execPath, [`${root}test/fixtures/cluster-app.mjs`, redisUrl, id, String(leaseTtlMs)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOLDER_TTL_MS: String(holderTtlMs), REPLY_DELAY_MS: String(replyDelayMs), ...env },
    });
    started.push(child);
    const worker = new WorkerProcess(id, child);
    await waitFor(() => worker.events.some((event) => event.event === 'ready') || child.exitCode !== null, 15_000, () => `worker ${id} (stderr ${worker.stderr})`);
    return worker;
  }

  /** SIGKILL, and wait for it to be gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await gone;
  }
}

/** A user on a raw socket typing numbered lines `<name>-<k>`; the worker answers `<line>#<worker>`. */
export class User {
  id = '';
  closed = false;
  sent = 0;
  notices = 0;
  /** Times the holder said it lost contact with the cluster (it was declared lost while paused). */
  lostNotices = 0;
  readonly replies = new Map<number, number>();
  readonly order: number[] = [];
  /** Every reply in arrival order as `<k>#<worker>`, for a failure message. */
  readonly log: string[] = [];

  private constructor(
    readonly name: string,
    readonly holder: Holder,
    readonly socket: net.Socket,
  ) {
    readLines(socket, (line) => this.receive(line));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  /** Connects to a holder's users port. */
  static async connect(name: string, holder: Holder): Promise<User> {
    const socket = net.connect({ port: holder.port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new User(name, holder, socket);
  }

  private receive(line: string): void {
    let match: RegExpExecArray | null;
    if (line.includes('The application is restarting')) this.notices++;
    if (line.includes('Lost contact with the cluster')) this.lostNotices++;
    if ((match = /^hello (\S+) /.exec(line))) this.id = match[1]!;
    else if ((match = /^(u\d+)-(\d+)#(\S+)$/.exec(line)) && match[1] === this.name) {
      const k = Number(match[2]);
      this.log.push(`${k}#${match[3]}`);
      this.replies.set(k, (this.replies.get(k) ?? 0) + 1);
      this.order.push(k);
    }
  }

  /** Types the next line. */
  sendNext(): void {
    this.socket.write(`${this.name}-${this.sent++}\r\n`);
  }

  /** Lines with no reply, lines answered more than once, and replies out of order. */
  tally(): { lost: number; doubled: number; reordered: number } {
    let lost = 0;
    let doubled = 0;
    for (let k = 0; k < this.sent; k++) {
      const count = this.replies.get(k) ?? 0;
      if (count === 0) lost++;
      if (count > 1) doubled += count - 1;
    }
    let reordered = 0;
    for (let i = 1; i < this.order.length; i++) if (this.order[i]! <= this.order[i - 1]!) reordered++;
    return { lost, doubled, reordered };
  }

  /** Every line typed has at least one reply. */
  get complete(): boolean {
    for (let k = 0; k < this.sent; k++) if (!this.replies.has(k)) return false;
    return true;
  }
}

/** Sums the tallies of users. */
export function tallyAll(users: User[]): { lost: number; doubled: number; reordered: number; lines: number } {
  const total = { lost: 0, doubled: 0, reordered: 0, lines: 0 };
  for (const user of users) {
    const tally = user.tally();
    total.lost += tally.lost;
    total.doubled += tally.doubled;
    total.reordered += tally.reordered;
    total.lines += user.sent;
  }
  return total;
}
