/**
 * The successor's side of a handover: reads the old process's messages
 * (checking pre-copied sessions as they come, before the freeze), restores
 * every session on its inherited socket without reading from it or
 * writing to it, says `ready`, and only at `commit` starts: listens on the
 * inherited listeners, starts MCCP2 streams again, reads. A successor that
 * cannot read what it is sent (an unknown version, a broken message, a bad
 * snapshot) says `refused` and exits; the old process serves on.
 *
 * @module
 */
import { closeSync, writeFileSync, renameSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImiError } from '@imi/core';
import type { ListeningPorts } from '../api.js';
import type { Intermediary } from '../intermediary.js';
import { OLDEST_SESSION_SNAPSHOT_VERSION, SESSION_SNAPSHOT_VERSION, validateSessionSnapshot, type SessionSnapshot, type SnapshotDelayedLine, type SnapshotTelnet } from '../session/snapshot.js';
import type { Connection } from '../users/connection.js';
import { preloadMetrics } from '../ops/metrics.js';
import { preloadTransports } from '../users/create-transport.js';
import { isTransport, type ListenerOptions, type UserChannel } from '../users/transport.js';
import { TelnetChannel } from '../users/telnet/telnet-channel.js';
import { resumeTelnetCompression } from '../users/telnet/telnet-state.js';
import { adoptSocket } from './fds.js';
import { listenerServer } from './parent.js';
import { readParentMessage, readUserSockets, SUCCESSOR_EARLY_ENV, SUCCESSOR_ENV, type UserSockets, type ChildMessage, type GlobalState, type HandedSession, type ParentMessage } from './protocol.js';
import { writeTelnetExtra } from './telnet-extra.js';

/**
 * How long a successor waits for the app (which the old process let go) to
 * reconnect and be resynced before it reads from users: their lines then go
 * straight to the app, and nobody is told the app is away for the blip of its
 * reconnection (`@imi/client` retries at once on the `handover` shutdown;
 * another SDK may wait its own delay).
 */
export const APP_RETURN_WAIT_MS = 1_000;

/** A restored session waiting for `commit`. */
interface Waiting {
  connection: Connection;
  /** Undefined for a WebSocket session parked for its client to resume. */
  socket: Socket | undefined;
  /** Lines the input rate held back: they pass it again once reading starts. */
  delayed: SnapshotDelayedLine[];
  /** The telnet state, when MCCP2 must start again. */
  mccp2: SnapshotTelnet | undefined;
}

/** Whether the old process waits for `booted` before it freezes (see {@link SUCCESSOR_EARLY_ENV}). */
let startedEarly = false;
/** The user sockets to make before saying `booted`, when the old process said where they are. */
let earlySockets: UserSockets | undefined;

/** Loads what commit() would otherwise load in the freeze: the transports of the configured listeners, and prom-client and the admin listener's metrics for an admin port. */
async function preloadForCommit(imi: Intermediary): Promise<void> {
  const kinds = imi.options.listeners.filter((spec): spec is ListenerOptions => !isTransport(spec)).map((spec) => spec.kind);
  await preloadTransports(['tcp', ...kinds]);
  if (imi.options.adminPort !== undefined) {
    preloadMetrics();
    // Making the metrics (prom-client's histograms, default metrics) took some 30 ms in the freeze at commit.
    imi.prepareAdmin();
  }
}

/** Whether this process was started by an upgrade (and should take over rather than bind its ports). Clears the marks so its own successors are not confused. */
export function isSuccessor(): boolean {
  const marked = process.env[SUCCESSOR_ENV] === '1';
  const early = process.env[SUCCESSOR_EARLY_ENV];
  startedEarly = early !== undefined && early !== '';
  earlySockets = readUserSockets(early);
  delete process.env[SUCCESSOR_ENV];
  delete process.env[SUCCESSOR_EARLY_ENV];
  return marked && typeof process.send === 'function';
}

/**
 * Makes a socket (not reading) of every inherited user descriptor while the
 * old process still serves: `new net.Socket({ fd })` and the socket options
 * are most of a restore's cost (about 70 µs a user, in system calls).
 * Options the old process set are set again here (the kernel keeps them;
 * Node does not know), so that the channels' own calls at restore do nothing.
 */
function makeSockets(range: UserSockets, keepAliveMs: number): Map<number, Socket> {
  const sockets = new Map<number, Socket>();
  for (let fd = range.from; fd < range.to; fd++) {
    const socket = adoptSocket(fd);
    socket.setNoDelay(true);
    if (fd < range.wsFrom && keepAliveMs > 0) socket.setKeepAlive(true, keepAliveMs);
    sockets.set(fd, socket);
  }
  return sockets;
}

/** Closes this process's copies of users who left before the freeze (or stay with the old process), and any socket made early that no session took. */
function closeUnused(fds: readonly number[], made: Map<number, Socket>): void {
  for (const socket of made.values()) socket.destroy();
  for (const fd of fds) {
    if (made.delete(fd)) continue;
    try {
      closeSync(fd);
    } catch {
      // Already closed (EBADF): nothing held.
    }
  }
  made.clear();
}

/** Writes the pid file atomically (a reader never sees it half-written). */
export function writePidFile(path: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${process.pid}\n`);
  renameSync(temporary, path);
}

function reply(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(message, undefined, undefined, () => resolve()));
}

/** Resolves once an app is connected and resynced, or after `ms` (a successor, or a worker restarted by the supervisor, waits for the app before reading users). */
export function waitForApp(imi: Intermediary, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      imi.off('synced', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    imi.on('synced', done);
  });
}

/** Merges counters (numbers, and records of numbers) taken from the old process. */
function mergeCounters(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
    const current = target[key];
    if (typeof value === 'number' && (typeof current === 'number' || current === undefined)) target[key] = value;
    else if (typeof value === 'object' && value !== null && typeof current === 'object' && current !== null) mergeCounters(current as Record<string, unknown>, value as Record<string, unknown>);
  }
}

/**
 * Takes over from the process that started this one. Resolves with the
 * ports once serving; on a handover this process cannot take, tells the old
 * one why and exits 1.
 *
 * @param pidFile - rewritten with this process's pid once it serves
 */
export function takeOver(imi: Intermediary, logger: Logger, pidFile: string | undefined): Promise<ListeningPorts> {
  const started = performance.now();
  const parts = imi.handoverParts();
  const waiting: Waiting[] = [];
  let begin: Extract<ParentMessage, { kind: 'begin' }> | undefined;
  let serving: ListeningPorts | undefined;
  /** Users who arrived during the handover, passed on before this process reads: let in with the others. */
  let lateUsers: Array<[Extract<ParentMessage, { kind: 'late' }>, unknown]> | undefined = [];
  /** Sockets made while booting, by stdio index, until a session takes one. */
  const made = earlySockets === undefined ? new Map<number, Socket>() : makeSockets(earlySockets, imi.options.keepAliveMs);
  const socketOf = (fd: number): Socket => {
    const socket = made.get(fd);
    if (socket === undefined) return adoptSocket(fd);
    made.delete(fd);
    return socket;
  };
  return new Promise((resolve) => {
    const refuse = (error: unknown): void => {
      const imiError = error instanceof ImiError ? error : new ImiError('IMI_UPGRADE_FAILED', `the handover failed: ${(error as Error).message}`, { cause: error });
      imi.report(imiError);
      logger.error({ err: imiError }, 'cannot take over: the old process serves on');
      void reply({ imi: 'handover', kind: 'refused', code: imiError.code, message: imiError.message }).finally(() => process.exit(1));
    };

    let restoreMs = 0;
    /** Sessions sent before the freeze, checked, by id: restored when `sessions` names them (`{ same: id }`). */
    const precopied = new Map<string, HandedSession & { snapshot: SessionSnapshot }>();
    const restore = (item: HandedSession, checked = false): void => {
      const snapshot = checked ? (item.snapshot as SessionSnapshot) : validateSessionSnapshot(item.snapshot);
      // Nothing may be written before commit: MCCP2 starts and held lines pass then.
      const mccp2 = snapshot.telnet?.info.mccp2 === true ? structuredClone(snapshot.telnet) : undefined;
      if (mccp2 !== undefined) snapshot.telnet!.info.mccp2 = false;
      const delayed = snapshot.delayed;
      snapshot.delayed = [];
      const socket = item.fd === undefined ? undefined : socketOf(item.fd);
      let connection: Connection;
      try {
        connection = imi.restoreValidSession(snapshot, socket) as Connection;
      } catch (error) {
        socket?.destroy();
        throw error;
      }
      if (item.announced) {
        connection.announcedTo = begin!.global.lastAppConnectionId;
        connection.telnetSent = item.telnetSent;
      }
      const channel = connection.userChannel;
      if (item.telnet !== undefined && channel instanceof TelnetChannel) writeTelnetExtra(channel, item.telnet);
      waiting.push({ connection, socket, delayed, mccp2 });
    };

    const applyGlobal = (global: GlobalState): void => {
      const { ledger, apps, reporter } = parts;
      ledger.advanceSeq(global.seq);
      apps.adoptHandoverState({ lastAppInstance: global.lastAppInstance ?? undefined, lastAppConnectionId: global.lastAppConnectionId, departed: global.departed });
      mergeCounters(reporter.counters as unknown as Record<string, unknown>, global.counters);
    };

    const commit = async (message: Extract<ParentMessage, { kind: 'commit' }>): Promise<void> => {
      parts.ledger.advanceSeq(message.seq);
      parts.apps.setDeparted(message.departed);
      const layout = begin!.layout;
      const appBack = begin!.global.appConnected ? waitForApp(imi, APP_RETURN_WAIT_MS) : Promise.resolve();
      // New users wait with the others until the app is back: none is told it is away for a blip.
      const arrived: UserChannel[] = [];
      imi.handoverGate = { userArrived: (channel) => arrived.push(channel), appArrived: (socket) => parts.apps.accept(socket) };
      const committed = performance.now();
      // Before the app port listens, so before any resync: the users' telnet info then says MCCP2 as the app was told
      // (no `telnet` for the restart). Writing is allowed from the commit on.
      for (const { connection, mccp2 } of waiting) if (mccp2 !== undefined) resumeTelnetCompression(connection.userChannel as TelnetChannel, mccp2);
      const ports = await imi.listen({ users: layout.users, app: layout.app, ...(layout.admin === undefined ? {} : { admin: layout.admin }) });
      if (pidFile !== undefined) writePidFile(pidFile);
      serving = ports;
      await reply({ imi: 'handover', kind: 'serving', pid: process.pid, at: performance.timeOrigin + performance.now() });
      const listened = performance.now();
      await appBack;
      // What the app was told of each telnet user is trusted only if it came back at once, as an app that read the
      // old process's `handover` shutdown does: one that did not may sit on a half-open link that lost the last writes.
      if (!imi.appConnected) for (const { connection } of waiting) connection.telnetSent = undefined;
      const appReturned = performance.now();
      for (const { connection, delayed } of waiting) {
        connection.resume();
        for (const line of delayed) parts.users.onLine(connection, line.value, line.truncated, line.bytes);
      }
      imi.handoverGate = undefined;
      for (const channel of arrived) parts.users.accept(channel);
      const queued = lateUsers ?? [];
      lateUsers = undefined;
      for (const [late, socket] of queued) letIn(late, socket);
      const now = performance.now();
      // listenMs: commit → listening and `serving` said; appWaitMs: → the app back and resynced; resumeMs: → every user read from again.
      const times = { ms: Math.round(now - started), listenMs: Math.round(listened - committed), appWaitMs: Math.round(appReturned - listened), resumeMs: Math.round(now - appReturned) };
      logger.info({ from: begin!.from, sessions: waiting.length, ...times, appConnected: imi.appConnected }, 'took over from the old process: serving');
      resolve(ports);
    };

    const letIn = (message: Extract<ParentMessage, { kind: 'late' }>, socket: unknown): void => {
      // Asked now: the transports exist only since listen().
      const server = listenerServer(imi.handoverParts().transports[message.listener]);
      if (server === undefined || typeof socket !== 'object' || socket === null) {
        imi.report(new ImiError('IMI_UPGRADE_FAILED', 'a user passed on during the handover came without a socket or a listener'));
        return;
      }
      const user = socket as Socket;
      const pending = Buffer.from(message.pending, 'base64');
      if (pending.length > 0) user.unshift(pending);
      // As if the listener had accepted it: the transport makes its channel.
      server.emit('connection', user);
    };

    // Loaded now, while the old process serves: commit() makes the listeners and the admin port's metrics, and
    // loading ws, ssh2 or prom-client there would be paid by every user in the freeze (about 150 ms at 10,000 idle
    // users, docs/benchmarks-handover.md). `booted` and `ready` wait for it, so a failure is refused before any commit.
    const loaded = preloadForCommit(imi);
    process.on('message', (value: unknown, handle: unknown) => {
      let message: ParentMessage | undefined;
      try {
        message = readParentMessage(value);
        if (message === undefined) return;
        switch (message.kind) {
          case 'begin':
            if (message.snapshotVersion > SESSION_SNAPSHOT_VERSION || message.snapshotVersion < OLDEST_SESSION_SNAPSHOT_VERSION) {
              throw new ImiError('IMI_BAD_SNAPSHOT', `unknown snapshot version ${message.snapshotVersion} (this imi-server reads versions ${OLDEST_SESSION_SNAPSHOT_VERSION} to ${SESSION_SNAPSHOT_VERSION})`);
            }
            if (message.layout.users.length !== imi.options.listeners.length + 1) throw new ImiError('IMI_UPGRADE_FAILED', `the old process has ${message.layout.users.length} user listeners, this one is configured with ${imi.options.listeners.length + 1}`);
            begin = message;
            applyGlobal(message.global);
            break;
          case 'precopy':
            if (begin !== undefined) throw new ImiError('IMI_UPGRADE_FAILED', 'precopy after begin');
            // Checked now, while the old process serves; a bad one is refused before any freeze.
            for (const item of message.items) {
              const snapshot = validateSessionSnapshot(item.snapshot);
              precopied.set(snapshot.id, { ...item, snapshot });
            }
            break;
          case 'sessions':
            if (begin === undefined) throw new ImiError('IMI_UPGRADE_FAILED', 'sessions before begin');
            {
              const restoring = performance.now();
              for (const item of message.items) {
                if (!('same' in item)) {
                  restore(item);
                  continue;
                }
                const copy = precopied.get(item.same);
                if (copy === undefined) throw new ImiError('IMI_UPGRADE_FAILED', `no pre-copy of session ${item.same.slice(0, 64)}`);
                precopied.delete(item.same);
                restore(copy, true);
              }
              restoreMs += performance.now() - restoring;
            }
            break;
          case 'end':
            if (begin === undefined || waiting.length !== (message.sessions ?? begin.sessions)) throw new ImiError('IMI_UPGRADE_FAILED', `expected ${message.sessions ?? begin?.sessions ?? '?'} sessions, got ${waiting.length}`);
            closeUnused(message.close ?? [], made);
            precopied.clear();
            // A failed load is refused by the handler below; `ready` is never said then.
            loaded.then(() => reply({ imi: 'handover', kind: 'ready', sessions: waiting.length, restoreMs }), () => undefined);
            break;
          case 'commit':
            commit(message).catch((error: unknown) => {
              // Committed: the old process is gone or going; there is no one to hand back to.
              logger.fatal({ err: error }, 'cannot serve after the handover');
              process.exit(1);
            });
            break;
          case 'late':
            if (lateUsers !== undefined) lateUsers.push([message, handle]);
            else letIn(message, handle);
            break;
        }
      } catch (error) {
        if (serving === undefined && message?.kind !== 'late') refuse(error);
        else imi.report(error instanceof ImiError ? error : new ImiError('IMI_UPGRADE_FAILED', String(error)));
      }
    });
    // Loaded (see `loaded` above) and the handler in place: the old process may freeze.
    loaded.then(() => {
      if (startedEarly) void reply({ imi: 'handover', kind: 'booted', precopy: true });
    }, refuse);
    // The old process is gone: the channel must not keep this one from exiting on SIGTERM.
    process.on('disconnect', () => {
      if (serving === undefined) {
        logger.fatal('the old process went away before the handover was committed');
        process.exit(1);
      }
    });
  });
}
