/**
 * Upgrades a running `imi-server` to the one on disk without dropping a
 * user: the state machine of the old process (idle → preparing → handing
 * over → committing → done, or back to idle when anything fails).
 *
 * 1. spawn the successor — the same command line — with every listener and
 *    user socket open now as an inherited descriptor and an IPC channel,
 *    while this process goes on serving (users who arrive now wait); it
 *    says `booted` once its code is loaded (Node's start and module loading
 *    take the better part of a second, during which nobody is frozen);
 * 2. pre-copy: every session is sent as it is now, while this process
 *    still serves (when the successor takes it);
 * 3. freeze: apps are turned away, reading stops on every socket (in the
 *    kernel), output is flushed, MCCP2 streams are ended;
 * 4. send the global state and every session's snapshot over IPC, in chunks
 *    (only the id of one whose pre-copy is still exact);
 * 5. the successor restores them (taking nothing from the sockets), closes
 *    its copies of users who left since its start, and says
 *    `ready`; if it exits, refuses, breaks the protocol or is not ready
 *    within `timeoutMs`, it is killed and the old process thaws: nothing
 *    was lost;
 * 6. commit: the old process stops accepting, lets go of the handed-over
 *    descriptors (no FIN: the successor holds them), closes the users it
 *    cannot hand over, ends the app link (the app reconnects and is resynced
 *    by the successor, which redelivers what was not acked), passes users
 *    who arrived meanwhile with `subprocess.send`, and sends `commit`;
 * 7. the successor starts reading and serving, rewrites the pid file and
 *    says `serving`; the old process exits.
 *
 * @module
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { HANDOVER_SHUTDOWN_REASON, ImiError } from '@imi/core';
import type { Intermediary } from '../intermediary.js';
import { SESSION_SNAPSHOT_VERSION } from '../session/snapshot.js';
import { stopReading } from './fds.js';
import { Freeze, rawSocket } from './parent.js';
import { HANDOVER_VERSION, SESSIONS_PER_MESSAGE, SUCCESSOR_EARLY_ENV, SUCCESSOR_ENV, readChildMessage, type ChildMessage, type ParentMessage } from './protocol.js';

/** Default {@link UpgraderOptions.timeoutMs}: 10 s. */
export const DEFAULT_UPGRADE_TIMEOUT_MS = 10_000;
/** Longest wait for users still being let in and for output to drain before the snapshot. */
const SETTLE_MS = 2_000;
/** Longest wait for the app link's FIN to be written before this process closes the handed-over sockets. */
const FIN_WAIT_MS = 100;
/** Longest wait for the users who cannot be handed over to close after their notice. */
const STAYING_CLOSE_MS = 1_000;

/** How to start the successor. */
export interface UpgraderOptions {
  /** The Node.js binary (`process.execPath`). */
  execPath: string;
  /** The CLI script (`process.argv[1]`: the `imi-server` on disk now). */
  script: string;
  /** The arguments it runs with (the same as this process's). */
  args: string[];
  /** How long the successor may take to be ready, in ms. */
  timeoutMs: number;
  /** Where to log. */
  logger: Logger;
}

/** What an upgrade did. */
export interface UpgradeResult {
  /** The successor's pid. */
  pid: number;
  /** Sessions handed over. */
  sessions: number;
  /** Users closed because their transport cannot be handed over (TLS; `ws+tls` without `imi.v1`). */
  closed: number;
  /** Sessions sent before the freeze, while users were still served (0 when the successor takes no pre-copy). */
  precopied: number;
  /** Handed-over sessions that had not changed since their pre-copy: in the freeze only their id was sent. */
  unchanged: number;
  /** From the start of the upgrade (the signal) to the successor serving, in ms (the answer comes a little later: this process first lets go of its copies of the sockets). */
  durationMs: number;
  /** Where the time went. */
  phases: UpgradePhases;
}

/**
 * Where an upgrade's time went, in ms, in order. Users wait only from the
 * freeze (`settleMs` on), `frozenMs` in all; the successor starts while
 * they are still served.
 */
export interface UpgradePhases {
  /** Choosing the descriptors and starting the successor process. */
  spawnMs: number;
  /** Until the successor has loaded its code and says `booted` (users are still served). */
  bootMs: number;
  /** Sending every session as it is before the freeze (users are still served; 0 when the successor takes no pre-copy). */
  precopyMs: number;
  /** Freezing and waiting for users being let in and for output to drain. */
  settleMs: number;
  /** Taking every session's snapshot and telling whether its pre-copy still holds (inside sendMs: each chunk is sent as soon as it is taken). */
  planMs: number;
  /** Taking the snapshots and writing them to the IPC channel. */
  sendMs: number;
  /** From the last message written to the successor's `ready` (it restores as messages arrive). */
  readyMs: number;
  /** The successor's own time restoring sessions (part of sendMs + readyMs), when it says. */
  restoreMs?: number;
  /** This process letting go of every handed-over socket and closing the others. */
  commitMs: number;
  /** Until the successor listens and serves (by the time it gives in its `serving` message: this process is busy closing its copies then). */
  servingMs: number;
  /** From the freeze to the successor serving: how long users were not read from (the successor then waits for the app before reading). */
  frozenMs: number;
}

/** Where an upgrade is. */
export type UpgradeState = 'idle' | 'preparing' | 'handing-over' | 'committing' | 'done';

/** Upgrades one intermediary, one upgrade at a time. */
export class Upgrader {
  /** Where the upgrade is. */
  state: UpgradeState = 'idle';

  /**
   * @param imi - the running intermediary (listening)
   * @param options - how to start the successor
   */
  constructor(
    private readonly imi: Intermediary,
    private readonly options: UpgraderOptions,
  ) {}

  /**
   * Hands everything over to a new process. Resolves once it serves (this
   * process should exit then); rejects with `IMI_UPGRADE_FAILED` (reported
   * once) when it did not happen, and this process serves on.
   */
  async upgrade(): Promise<UpgradeResult> {
    if (this.state !== 'idle') throw this.fail(this.state === 'done' ? 'this process has handed over and is exiting' : 'an upgrade is under way');
    const started = performance.now();
    const phases: UpgradePhases = { spawnMs: 0, bootMs: 0, precopyMs: 0, settleMs: 0, planMs: 0, sendMs: 0, readyMs: 0, commitMs: 0, servingMs: 0, frozenMs: 0 };
    let mark = started;
    const lap = (phase: Exclude<keyof UpgradePhases, 'frozenMs' | 'restoreMs'>): void => {
      const now = performance.now();
      phases[phase] = now - mark;
      mark = now;
    };
    const { logger, timeoutMs } = this.options;
    this.state = 'preparing';
    logger.info({ execPath: this.options.execPath, script: this.options.script }, 'upgrade: handing over to a new process');
    // Users arriving from here wait (held) until the successor takes them, or this process lets them in after all.
    const freeze = new Freeze(this.imi);
    let child: ChildProcess | undefined;
    let messages: Messages | undefined;
    let plan: ReturnType<Freeze['plan']>;
    let frozenAt = started;
    let precopied = 0;
    try {
      // The successor starts (Node, module loading) while this process still serves: it gets every socket open now.
      const spawnPlan = freeze.spawnPlan(4);
      const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc', ...spawnPlan.fds];
      child = spawn(this.options.execPath, [this.options.script, ...this.options.args], { stdio, env: { ...process.env, [SUCCESSOR_ENV]: '1', [SUCCESSOR_EARLY_ENV]: `${spawnPlan.sockets.from},${spawnPlan.sockets.wsFrom},${spawnPlan.sockets.to}` } });
      const replies = (messages = listen(child));
      const deadline = setTimeout(() => replies.fail(`the successor was not ready within ${timeoutMs} ms (upgradeTimeoutMs)`), timeoutMs);
      try {
        lap('spawnMs');
        const booted = await replies.next('booted');
        lap('bootMs');
        // While this process still serves: what does not change by the freeze (idle users) need not cross in it.
        if (booted.kind === 'booted' && booted.precopy === true) {
          const copying = freeze.precopyChunks(spawnPlan, SESSIONS_PER_MESSAGE);
          for (;;) {
            const step = copying.next();
            if (step.done === true) {
              precopied = step.value;
              break;
            }
            await send(child, { imi: 'handover', kind: 'precopy', items: step.value });
            replies.check();
            // Users are served between chunks: a write to a successor that keeps up completes at once and its
            // callback comes before any I/O is polled, so without this the whole pre-copy would block the loop.
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
        lap('precopyMs');
        // A successor that has already refused a pre-copy is not waited for, nor is anyone frozen for it (one whose
        // refusal is still on its way fails the wait for `ready` below, and the freeze is undone).
        replies.check();
        this.state = 'handing-over';
        frozenAt = performance.now();
        freeze.start();
        await freeze.settle(SETTLE_MS);
        lap('settleMs');
        // `sessions` is the most there can be (`end` says how many came): the chunks go out as they are written down.
        const most = this.imi.handoverParts().users.openConnections.size;
        await send(child, { imi: 'handover', kind: 'begin', v: HANDOVER_VERSION, snapshotVersion: SESSION_SNAPSHOT_VERSION, from: process.pid, layout: spawnPlan.layout, global: freeze.global(), sessions: most });
        const planning = freeze.planInChunks(spawnPlan, SESSIONS_PER_MESSAGE);
        let planMs = 0;
        for (;;) {
          const planned = performance.now();
          const step = planning.next();
          planMs += performance.now() - planned;
          if (step.done === true) {
            plan = step.value;
            break;
          }
          await send(child, { imi: 'handover', kind: 'sessions', items: step.value });
        }
        await send(child, { imi: 'handover', kind: 'end', close: plan.close, sessions: plan.sessions.length });
        lap('sendMs');
        phases.planMs = planMs;
        const ready = await replies.next('ready');
        lap('readyMs');
        if (ready.kind === 'ready' && ready.restoreMs !== undefined) phases.restoreMs = ready.restoreMs;
      } finally {
        clearTimeout(deadline);
      }
    } catch (error) {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      freeze.thaw();
      this.state = 'idle';
      const message = error instanceof Error ? error.message : String(error);
      logger.error({ err: error }, 'upgrade failed: still serving');
      throw this.fail(message, error);
    }

    // From here there is no way back: the successor holds every socket.
    this.state = 'committing';
    const running = child!;
    let servedAt: number | undefined;
    const replies = messages!;
    const { seq, departed, held } = await freeze.commit(
      plan,
      this.imi.options.shutdownNotice === false ? undefined : this.imi.options.shutdownNotice,
      STAYING_CLOSE_MS,
      // The successor holds the app port's listening socket already: the app may retry at once.
      HANDOVER_SHUTDOWN_REASON,
    );
    lap('commitMs');
    try {
      await send(running, { imi: 'handover', kind: 'commit', seq, departed });
      // Once the app link's FIN is out (ten thousand closes first would hold it back, and the app's reconnection
      // with it): the successor listens and the app reconnects while this process lets go of the sockets.
      await freeze.appLinksEnded(FIN_WAIT_MS);
      freeze.release();
      for (const { channel, listener } of held) {
        const socket = rawSocket(channel);
        if (socket === undefined) {
          // A TLS or WebSocket user who arrived meanwhile: they were never let in.
          channel.destroy();
          continue;
        }
        const pending = stopReading(socket).toString('base64');
        await send(running, { imi: 'handover', kind: 'late', listener, pending }, socket);
      }
      const serving = setTimeout(() => replies.fail(`the successor did not confirm it serves within ${timeoutMs} ms`), timeoutMs);
      const said = await replies.next('serving').finally(() => clearTimeout(serving));
      // The same clock for both processes (the system's): when it served, not when this busy process read so.
      if (said.kind === 'serving' && said.at !== undefined) servedAt = Math.min(performance.now(), Math.max(mark, said.at - performance.timeOrigin));
    } catch (error) {
      // Committed: the successor has everything; nothing to go back to.
      logger.error({ err: error }, 'upgrade: the successor did not confirm; exiting anyway');
    }
    servedAt ??= performance.now();
    phases.servingMs = servedAt - mark;
    running.disconnect();
    this.state = 'done';
    const durationMs = servedAt - started;
    phases.frozenMs = servedAt - frozenAt;
    const result: UpgradeResult = { pid: running.pid!, sessions: plan.sessions.length, closed: plan.staying.length, precopied, unchanged: freeze.unchanged, durationMs, phases };
    logger.info(result, 'upgrade: the successor serves; exiting');
    return result;
  }

  private fail(message: string, cause?: unknown): ImiError {
    const error = new ImiError('IMI_UPGRADE_FAILED', `upgrade failed: ${message}`, { cause });
    this.imi.report(error);
    return error;
  }
}

/** Sends one message (and a socket), waiting until it is written to the channel. */
function send(child: ChildProcess, message: ParentMessage, socket?: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!child.connected) {
      reject(new Error('the successor is gone'));
      return;
    }
    const sent = (error: Error | null): void => (error ? reject(error) : resolve());
    if (socket === undefined) child.send(message, sent);
    else child.send(message, socket, sent);
  });
}

/** The successor's messages, awaited by kind. */
interface Messages {
  /** The next message of this kind (one that came already counts); rejects once the successor failed. */
  next(kind: ChildMessage['kind']): Promise<ChildMessage>;
  /** Fails the wait (a timeout). */
  fail(reason: string): void;
  /** Throws why the successor failed (exited, refused, broke the protocol), if it did. */
  check(): void;
}

/** Listens to the successor: exits, errors, refusals and broken messages fail every wait from then on. */
function listen(child: ChildProcess): Messages {
  let waiting: { kind: ChildMessage['kind']; resolve(message: ChildMessage): void; reject(error: Error): void } | undefined;
  let failure: Error | undefined;
  const received: ChildMessage[] = [];
  const fail = (error: Error): void => {
    failure ??= error;
    waiting?.reject(failure);
    waiting = undefined;
  };
  child.on('message', (value: unknown) => {
    let message: ChildMessage | undefined;
    try {
      message = readChildMessage(value);
    } catch (error) {
      fail(error as Error);
      return;
    }
    if (message === undefined) return;
    if (message.kind === 'refused') fail(new ImiError('IMI_UPGRADE_FAILED', `the successor refused the handover: ${message.code}: ${message.message}`));
    else if (waiting?.kind === message.kind) {
      waiting.resolve(message);
      waiting = undefined;
    } else received.push(message);
  });
  child.on('error', (error) => fail(new Error(`cannot start the successor: ${error.message}`)));
  child.on('exit', (code, signal) => fail(new Error(`the successor exited (${signal ?? `code ${code}`}) before it was ready`)));
  return {
    next: (kind) =>
      new Promise((resolve, reject) => {
        const index = received.findIndex((message) => message.kind === kind);
        if (index !== -1) resolve(received.splice(index, 1)[0]!);
        else if (failure !== undefined) reject(failure);
        else waiting = { kind, resolve, reject };
      }),
    fail: (reason) => fail(new Error(reason)),
    check: () => {
      if (failure !== undefined) throw failure;
    },
  };
}
