/**
 * `imi-server --supervise`: a small parent that runs no protocol code. It
 * starts the intermediary as its child (the worker), keeps a duplicate of
 * every listener and of every TCP and telnet user's socket the worker let
 * in (sent up by the worker; never read here), and a journal of those
 * sessions. When the worker dies — killed, an uncaught error, out of memory
 * — the users stay connected (the supervisor's copy keeps each connection
 * open), are told to hold on, and a new worker is started with the
 * listeners and every surviving socket in its stdio and the journal over
 * IPC; the app reconnects to it and is resynced with the same sessions.
 *
 * Resumable WebSocket users are journaled without a socket: their
 * connection dies with the worker (the kernel closes it, the browser
 * notices at once and reconnects into the listener's backlog), and the next
 * worker restores their session parked until the crash time plus
 * `wsResumeWindowMs`, so their resume token is good there.
 *
 * Too many crashes in a row (a crash loop) and the supervisor gives up:
 * it tells every user it holds, closes them and exits 1.
 *
 * @module
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import net, { type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import { ImiError } from '@imi/core';
import { fdOf } from '../handover/fds.js';
import { Reporter } from '../ops/reporter.js';
import { RestartPolicy, type RestartPolicyOptions } from './restart-policy.js';
import {
  RECORDS_PER_MESSAGE,
  SUPERVISED_ENV,
  badJournal,
  readWorkerMessage,
  checkJournalWs,
  isWsTransport,
  validateJournalRecord,
  type FinalSession,
  type JournalRecord,
  type RestoredItem,
  type SupervisorMessage,
  type WorkerMessage,
} from './protocol.js';

/** Default {@link SupervisorOptions.crashNotice}. */
export const DEFAULT_CRASH_NOTICE = '[the server is restarting after a fault: hold on, you are still connected; a line typed just now may need typing again]\r\n';
/** How long a user closed by the supervisor (it gave up, or stops) may take to read their notice, in ms. */
const CLOSE_LINGER_MS = 2_000;

/** A raw listening handle kept for the next worker (accepted on here only to turn apps away during an outage). */
interface RawHandle {
  fd?: number;
  close(): void;
  listen?(backlog: number): number;
  onconnection?: ((status: number, client?: { close(): void }) => void) | null;
}

/** The backlog of the app listener while the supervisor turns apps away. */
const APP_REFUSE_BACKLOG = 511;

/** How the supervisor runs. */
export interface SupervisorOptions extends RestartPolicyOptions {
  /** The Node.js binary. */
  execPath: string;
  /** The worker's script: the `imi-server` CLI (or `IMI_SUPERVISE_EXEC`). */
  script: string;
  /** The worker's arguments (this process's). */
  args: string[];
  /** Where to log. */
  logger: Logger;
  /** Written to every user the supervisor holds when the worker dies; false: nothing. */
  crashNotice: string | false;
  /** Written to every user when the supervisor gives up or stops without a worker; false: nothing. */
  shutdownNotice: string | false;
  /** Most sessions journaled (the intermediary's `maxConnections`). */
  maxSessions: number;
  /** How long a planned restart may take before the worker is killed, in ms. */
  plannedRestartTimeoutMs: number;
  /** The intermediary's `wsResumeWindowMs`: a WebSocket user connected at a crash may resume until the crash time plus this. */
  wsResumeWindowMs: number;
}

/** One journaled session: the supervisor's copy of its socket (none for WebSocket), and its record. */
interface Held {
  socket: Socket | undefined;
  record: JournalRecord;
}

/** The supervisor. */
export class Supervisor {
  /** Restarts after a crash so far. */
  restarts = 0;
  private worker: ChildProcess | undefined;
  private readonly reporter: Reporter;
  private readonly policy: RestartPolicy;
  private readonly sessions = new Map<string, Held>();
  private listeners: { users: RawHandle[]; app: RawHandle | undefined; admin: RawHandle | undefined } = { users: [], app: undefined, admin: undefined };
  private listening = false;
  private everServed = false;
  /** The users were told of the outage (once per outage). */
  private outage = false;
  private stopping = false;
  private final: { sessions: Map<string, FinalSession>; seq: number } | undefined;
  /** Users the last worker accepted while it froze for a planned restart: passed to the next one once it serves. */
  private late: Array<{ listener: number; pending: string; handle: RawHandle }> = [];
  private plannedTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  /** @param options - see {@link SupervisorOptions} */
  constructor(private readonly options: SupervisorOptions) {
    this.reporter = new Reporter(options.logger, new EventEmitter());
    this.policy = new RestartPolicy(options);
  }

  /** The worker's pid, while one runs. */
  get workerPid(): number | undefined {
    return this.worker?.pid;
  }

  /** Starts the first worker; from here the supervisor runs until it exits the process. */
  start(): void {
    this.spawnWorker(false);
  }

  /** SIGTERM / SIGINT: the worker stops gracefully (it tells the users); then the supervisor exits with its code. */
  stop(signal: NodeJS.Signals): void {
    if (this.stopping) {
      // A second signal: the worker exits at once (its own rule), and so does the supervisor after it.
      this.worker?.kill(signal);
      if (this.worker === undefined) process.exit(1);
      return;
    }
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.options.logger.info({ signal }, 'supervisor: stopping');
    if (this.worker !== undefined) this.worker.kill(signal);
    else void this.closeEverything(this.options.shutdownNotice).then(() => process.exit(0));
  }

  /** SIGUSR2, or the worker's `POST /upgrade`: the worker hands everything back and a new one (the `imi-server` on disk now) takes over. */
  plannedRestart(): void {
    const worker = this.worker;
    if (worker === undefined || this.stopping || this.plannedTimer !== undefined || !this.listening) {
      this.options.logger.warn('supervisor: a planned restart was asked while none can start (no worker serving, or one under way)');
      return;
    }
    this.options.logger.info({ worker: worker.pid }, 'supervisor: planned restart');
    this.sendTo(worker, { imi: 'supervise', kind: 'restart' });
    this.plannedTimer = setTimeout(() => {
      this.options.logger.error({ worker: worker.pid }, `supervisor: the worker did not hand back within ${this.options.plannedRestartTimeoutMs} ms; killing it`);
      worker.kill('SIGKILL');
    }, this.options.plannedRestartTimeoutMs);
  }

  private report(error: ImiError, level: 'warn' | 'info' = 'warn'): void {
    this.reporter.report(error, level);
    if (this.worker?.connected === true) this.sendTo(this.worker, { imi: 'supervise', kind: 'errors', errors: { ...this.reporter.counters.errors } });
  }

  private sendTo(worker: ChildProcess, message: SupervisorMessage): void {
    if (worker.connected) worker.send(message);
  }

  private spawnWorker(restart: boolean): void {
    const fds: number[] = [];
    const place = (fd: number): number => fds.push(fd) - 1 + 4;
    const items: RestoredItem[] = [];
    let begin: Extract<SupervisorMessage, { kind: 'begin' }> | undefined;
    if (restart) {
      const { users, app, admin } = this.listeners;
      const layout: { users: number[]; app: number; admin?: number } = { users: users.map((handle) => place(handle.fd!)), app: place(app!.fd!) };
      if (admin !== undefined) layout.admin = place(admin.fd!);
      const final = this.final;
      this.final = undefined;
      for (const [id, held] of this.sessions) {
        if (held.socket === undefined) {
          const item = this.wsItem(id, held, final);
          if (item !== undefined) items.push(item);
          continue;
        }
        const fd = fdOf(held.socket);
        if (fd === undefined) {
          // Its copy closed (a write of the notice failed: the user is gone).
          this.forget(id);
          continue;
        }
        const handed = final?.sessions.get(id);
        if (final !== undefined && handed === undefined) {
          // A planned restart: the worker closed this one itself (it was closing, or never let in).
          this.forget(id);
          continue;
        }
        items.push(handed === undefined ? { fd: place(fd), record: held.record } : { fd: place(fd), snapshot: handed.snapshot, ...(handed.telnet === undefined ? {} : { telnet: handed.telnet }) });
      }
      begin = { imi: 'supervise', kind: 'begin', layout, sessions: items.length, planned: final !== undefined, seq: final?.seq ?? 0, errors: { ...this.reporter.counters.errors } };
    }
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc', ...fds];
    const worker = spawn(this.options.execPath, [this.options.script, ...this.options.args], { stdio, env: { ...process.env, [SUPERVISED_ENV]: restart ? 'restart' : 'first' } });
    this.worker = worker;
    process.stdout.write(`imi-server supervisor: worker ${worker.pid ?? '?'} started${restart ? ` with ${items.length} sessions` : ''}\n`);
    worker.on('message', (value: unknown, handle: unknown) => this.onMessage(worker, value, handle));
    worker.on('error', (error) => this.options.logger.error({ err: error }, 'supervisor: cannot start the worker'));
    worker.on('exit', (code, signal) => this.onExit(worker, code, signal));
    if (begin !== undefined) {
      this.sendTo(worker, begin);
      for (let i = 0; i < items.length; i += RECORDS_PER_MESSAGE) this.sendTo(worker, { imi: 'supervise', kind: 'sessions', items: items.slice(i, i + RECORDS_PER_MESSAGE) });
      this.sendTo(worker, { imi: 'supervise', kind: 'end' });
    }
  }

  private onMessage(worker: ChildProcess, value: unknown, handle: unknown): void {
    if (worker !== this.worker) return;
    let message: WorkerMessage | undefined;
    try {
      message = readWorkerMessage(value);
    } catch (error) {
      this.report(error as ImiError);
      if (isClosable(handle)) handle.close();
      return;
    }
    if (message === undefined) return;
    try {
      this.apply(message, handle);
    } catch (error) {
      // Never fatal here: a bad record costs that record.
      this.report(error instanceof ImiError ? error : badJournal(`a message the supervisor could not apply: ${(error as Error).message}`, error));
    }
  }

  private apply(message: WorkerMessage, handle: unknown): void {
    const { logger } = this.options;
    switch (message.kind) {
      case 'listener': {
        if (!isClosable(handle) || typeof (handle as RawHandle).fd !== 'number') throw badJournal(`the worker's ${message.role} listener came without a descriptor`);
        const raw = handle as RawHandle;
        if (message.role === 'user') this.listeners.users[message.index] = raw;
        else if (message.role === 'app') {
          // A restarted worker listens now: a fresh copy replaces the one this process turned apps away on.
          if (this.listeners.app !== undefined && this.listeners.app !== raw) this.listeners.app.close();
          this.listeners.app = raw;
        } else this.listeners.admin = raw;
        return;
      }
      case 'listening': {
        const { users, app, admin } = this.listeners;
        if (users.length !== message.users || users.some((handle) => handle === undefined) || app === undefined || (admin !== undefined) !== message.admin) throw badJournal('the worker said it listens but its listeners did not all come');
        this.listening = true;
        this.everServed = true;
        logger.info({ worker: this.worker?.pid }, 'supervisor: holding the listeners');
        return;
      }
      case 'open': {
        const record = validateOrClose(message.record, handle);
        const ws = isWsTransport(record.transport);
        if (ws ? handle !== undefined && handle !== null : !isClosable(handle)) throw badJournal(`session ${record.id} came ${ws ? 'with' : 'without'} a socket`);
        if (this.sessions.size >= this.options.maxSessions && !this.sessions.has(record.id)) {
          if (isClosable(handle)) handle.close();
          this.reporter.reportLimit('maxConnections', this.options.maxSessions, `supervisor: session ${record.id} is not journaled (it will not survive a crash)`, record.id);
          return;
        }
        this.forget(record.id);
        if (ws) {
          this.sessions.set(record.id, { socket: undefined, record });
          return;
        }
        const socket = new net.Socket({ handle, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts);
        // A failed write (the notice to a user who is gone) destroys this copy: that user is not handed on.
        socket.on('error', () => {});
        this.sessions.set(record.id, { socket, record });
        return;
      }
      case 'ws':
        for (const item of message.items) {
          try {
            if (typeof item?.id !== 'string') throw badJournal('a WebSocket journal entry without a session id');
            const ws = checkJournalWs(item.ws);
            const held = this.sessions.get(item.id);
            if (held?.record.ws !== undefined && held.record.ws !== null) held.record = { ...held.record, ws };
          } catch (error) {
            this.report(error as ImiError);
          }
        }
        return;
      case 'received':
        // The one message per input turn: checked as a whole by readWorkerMessage, applied in place.
        message.ids.forEach((id, i) => {
          const ws = this.sessions.get(id)?.record.ws;
          if (ws !== undefined && ws !== null) ws.received = message.counts[i]!;
        });
        return;
      case 'update':
        for (const value of message.records) {
          try {
            const record = validateJournalRecord(value);
            const held = this.sessions.get(record.id);
            if (held !== undefined) held.record = record;
          } catch (error) {
            this.report(error as ImiError);
          }
        }
        return;
      case 'drop':
        for (const id of message.ids) this.forget(id);
        return;
      case 'serving': {
        this.outage = false;
        logger.info({ worker: message.pid, sessions: message.sessions }, 'supervisor: the worker serves');
        const worker = this.worker!;
        for (const { listener, pending, handle: raw } of this.late.splice(0)) {
          // The worker gets its own descriptor; this copy is closed once it is sent.
          worker.send({ imi: 'supervise', kind: 'late', listener, pending } satisfies SupervisorMessage, raw as never, () => raw.close());
        }
        return;
      }
      case 'late':
        if (!isClosable(handle)) throw badJournal('a user passed on came without a socket');
        if (this.late.length >= this.options.maxSessions) handle.close();
        else this.late.push({ listener: message.listener, pending: message.pending, handle });
        return;
      case 'restart':
        this.plannedRestart();
        return;
      case 'final':
        this.turnAppsAway();
        this.final = { sessions: new Map(message.sessions.map((item) => [String(item.snapshot.id), item])), seq: message.seq };
        return;
    }
  }

  /** Closes the supervisor's copy of a session's socket (the worker closed its own, or the user is gone). */
  private forget(id: string): void {
    const held = this.sessions.get(id);
    if (held === undefined) return;
    this.sessions.delete(id);
    held.socket?.destroy();
  }

  /**
   * What the next worker gets of a WebSocket session: after a planned
   * restart its full snapshot (the output log too), after a crash its
   * record; none when the session is gone (a planned restart did not hand
   * it back).
   */
  private wsItem(id: string, held: Held, final: { sessions: Map<string, FinalSession> } | undefined): RestoredItem | undefined {
    if (final === undefined) return { record: held.record };
    const handed = final.sessions.get(id);
    const ws = handed?.snapshot.ws;
    if (handed !== undefined && ws !== undefined && ws !== null && ws.tokenHash !== null) return { snapshot: handed.snapshot };
    this.forget(id);
    return undefined;
  }

  /** The worker died: a WebSocket user connected until now may resume until the crash time plus the window. */
  private startResumeWindows(now: number): void {
    const until = now + this.options.wsResumeWindowMs;
    for (const held of this.sessions.values()) {
      const ws = held.record.ws;
      if (ws !== undefined && ws !== null && ws.parkedUntil === null) held.record = { ...held.record, ws: { ...ws, parkedUntil: until } };
    }
  }

  private onExit(worker: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    clearTimeout(this.plannedTimer);
    this.plannedTimer = undefined;
    const { logger } = this.options;
    const how = signal ?? `code ${code}`;
    if (this.stopping) {
      logger.info({ worker: worker.pid, how }, 'supervisor: the worker stopped; exiting');
      void this.closeEverything(false).then(() => process.exit(code ?? 0));
      return;
    }
    if (this.final !== undefined && code === 0) {
      logger.info({ worker: worker.pid, sessions: this.final.sessions.size }, 'supervisor: the worker handed back; starting the new one');
      this.spawnWorker(true);
      return;
    }
    if (!this.everServed || !this.listening) {
      // It never listened: a configuration or startup error, which a restart does not fix.
      logger.fatal({ worker: worker.pid, how }, 'supervisor: the worker exited before it served; exiting');
      void this.closeEverything(false).then(() => process.exit(code ?? 1));
      return;
    }
    this.final = undefined;
    this.startResumeWindows(Date.now());
    this.report(new ImiError('IMI_WORKER_CRASHED', `the intermediary (pid ${worker.pid}) died (${how}); ${this.sessions.size} users are held by the supervisor`));
    const delay = this.policy.crashed(Date.now());
    if (delay === undefined) {
      this.giveUp();
      return;
    }
    if (!this.outage) {
      this.outage = true;
      this.holdOn();
    }
    this.turnAppsAway();
    this.restarts++;
    logger.warn({ delayMs: delay, crashesInWindow: this.policy.recent }, 'supervisor: restarting the worker');
    this.restartTimer = setTimeout(() => this.spawnWorker(true), delay);
  }

  /**
   * Until the next worker listens, an app that connects is closed at once
   * rather than left in the backlog: `@imi/client` takes a connection that
   * says nothing for a second for an old intermediary with nobody online,
   * and would tell the app every user left. Closed, it retries.
   */
  private turnAppsAway(): void {
    const app = this.listeners.app;
    // Null until someone listens on it; set once this process turns apps away on it.
    if (app === undefined || app.listen === undefined || typeof app.onconnection === 'function') return;
    app.onconnection = (_status, client) => client?.close();
    const status = app.listen(APP_REFUSE_BACKLOG);
    if (status !== 0) this.options.logger.warn({ status }, 'supervisor: cannot turn apps away during the outage; they wait in the backlog');
  }

  /** The worker is gone: users are told to hold on; MCCP2 users, whose clients cannot follow a new compressed stream, are closed. */
  private holdOn(): void {
    const notice = this.options.crashNotice;
    for (const [id, held] of [...this.sessions]) {
      if (held.record.telnet?.info.mccp2 === true) {
        this.forget(id);
        continue;
      }
      if (notice !== false) held.socket?.write(notice);
    }
  }

  private giveUp(): void {
    const { maxRestarts, restartWindowMs } = this.options;
    const error = new ImiError('IMI_SUPERVISOR_GAVE_UP', `the intermediary crashed more than ${maxRestarts} times in ${restartWindowMs} ms (maxRestarts, restartWindowMs): giving up; closing ${this.sessions.size} users`);
    this.reporter.report(error);
    this.options.logger.fatal({ code: error.code }, error.message);
    void this.closeEverything(this.options.shutdownNotice).then(() => process.exit(1));
  }

  /** Closes every user the supervisor holds (with `notice`, unless their stream is compressed) and the listeners. */
  private async closeEverything(notice: string | false): Promise<void> {
    const closing: Array<Promise<void>> = [];
    for (const [id, held] of this.sessions) {
      this.sessions.delete(id);
      const { socket } = held;
      if (socket === undefined || socket.destroyed) continue;
      closing.push(
        new Promise<void>((resolve) => {
          socket.on('close', () => resolve());
          const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS);
          timer.unref();
          // Read and drop what the user sent: closing with unread input would reset the connection, and the notice with it.
          socket.on('data', () => {});
          socket.on('end', () => socket.destroy());
          if (notice !== false && held.record.telnet?.info.mccp2 !== true) socket.end(notice);
          else socket.end();
          socket.resume();
        }),
      );
    }
    for (const handle of [...this.listeners.users, this.listeners.app, this.listeners.admin, ...this.late.splice(0).map((item) => item.handle)]) handle?.close();
    this.listeners = { users: [], app: undefined, admin: undefined };
    await Promise.all(closing);
    this.reporter.flush();
  }
}

function isClosable(handle: unknown): handle is RawHandle {
  return typeof handle === 'object' && handle !== null && typeof (handle as RawHandle).close === 'function';
}

/** Validates an `open` record; a refused one's socket copy is closed at once (the worker serves the user on). */
function validateOrClose(value: unknown, handle: unknown): JournalRecord {
  try {
    return validateJournalRecord(value);
  } catch (error) {
    if (isClosable(handle)) handle.close();
    throw error;
  }
}
