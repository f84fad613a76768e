/**
 * `imi-server` as the worker of `imi-server --supervise`: the intermediary
 * itself, run by the supervisor. The first worker binds the ports and sends
 * the supervisor a duplicate of every listener; a restarted one takes the
 * listeners and every surviving user's socket from its stdio and their
 * sessions from the supervisor's journal (after a crash) or from its
 * predecessor's final snapshots (a planned restart), and serves on.
 * Resumable WebSocket sessions come without a socket: they are restored
 * parked, and their pages resume them with their tokens.
 *
 * A worker never upgrades itself (its successor would not be the
 * supervisor's child): `POST /upgrade` and SIGUSR2 ask the supervisor for a
 * planned restart instead.
 *
 * @module
 */
import net, { type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImiError } from '@imi/core';
import type { ListeningPorts } from '../api.js';
import type { Intermediary } from '../intermediary.js';
import { adoptSocket, rawHandle, stopReading } from '../handover/fds.js';
import { APP_RETURN_WAIT_MS, waitForApp } from '../handover/child.js';
import { Freeze, listenerServer, rawSocket } from '../handover/parent.js';
import { writeTelnetExtra } from '../handover/telnet-extra.js';
import type { SessionSnapshot, SnapshotTelnet } from '../session/snapshot.js';
import type { Connection } from '../users/connection.js';
import { TelnetChannel } from '../users/telnet/telnet-channel.js';
import { resumeTelnetCompression } from '../users/telnet/telnet-state.js';
import { WsChannel } from '../users/ws-channel.js';
import { badJournal, readSupervisorMessage, recordToSnapshot, SUPERVISED_ENV, type RestoredItem, type SupervisorMessage } from './protocol.js';
import { WorkerJournal, sendUp } from './worker-journal.js';

/** Longest wait, at a planned restart, for users still being let in and for output to drain. */
const SETTLE_MS = 2_000;
/** Longest wait for the users who cannot be kept (TLS, WebSocket) to close after their notice. */
const STAYING_CLOSE_MS = 1_000;

/** How this process was started: `first` and `restart` under a supervisor, undefined otherwise. Clears the mark so children are not confused. */
export function supervisedMode(): 'first' | 'restart' | undefined {
  const mode = process.env[SUPERVISED_ENV];
  delete process.env[SUPERVISED_ENV];
  if (typeof process.send !== 'function') return undefined;
  return mode === 'first' || mode === 'restart' ? mode : undefined;
}


/** Sends the supervisor a duplicate of every listener (users' in order, the app's, the admin one). */
function sendListeners(imi: Intermediary): void {
  const { transports, appServer, admin } = imi.handoverParts();
  const need = (handle: object | undefined, what: string): object => {
    if (handle === undefined) throw new ImiError('IMI_BAD_JOURNAL', `supervisor: ${what} has no descriptor to keep`);
    return handle;
  };
  transports.forEach((transport, index) => {
    const server = listenerServer(transport);
    sendUp({ imi: 'supervise', kind: 'listener', role: 'user', index }, need(server === undefined ? undefined : rawHandle(server), `user listener ${index}`));
  });
  sendUp({ imi: 'supervise', kind: 'listener', role: 'app', index: 0 }, need(appServer === undefined ? undefined : rawHandle(appServer), 'the app listener'));
  if (admin !== undefined) sendUp({ imi: 'supervise', kind: 'listener', role: 'admin', index: 0 }, need(rawHandle(admin.listener), 'the admin listener'));
  sendUp({ imi: 'supervise', kind: 'listening', users: transports.length, admin: admin !== undefined });
}

/** Sets the supervisor's error counters in this process's (so `/stats` shows restarts and what the supervisor refused). */
function applyErrors(imi: Intermediary, errors: Record<string, number>): void {
  const counters = imi.handoverParts().reporter.counters.errors as Record<string, number>;
  for (const [code, count] of Object.entries(errors)) if (/^IMI_[A-Z_]+$/.test(code) && typeof count === 'number' && Number.isInteger(count) && count >= 0) counters[code] = count;
}

/** A restored session waiting to read. */
interface Waiting {
  connection: Connection;
  /** Planned restart, MCCP2 on: a new stream starts once reading starts. */
  mccp2: SnapshotTelnet | undefined;
}

/** Brings one session back on its inherited socket, paused. */
function restoreItem(imi: Intermediary, item: RestoredItem): Waiting {
  const snapshot: SessionSnapshot = item.snapshot ?? recordToSnapshot(item.record!);
  // Nothing may be written before reading starts: MCCP2 starts again then (planned restarts only:
  // after a crash the supervisor closed compressed users, whose clients cannot follow a new stream).
  const mccp2 = snapshot.telnet?.info.mccp2 === true ? structuredClone(snapshot.telnet) : undefined;
  if (mccp2 !== undefined) snapshot.telnet!.info.mccp2 = false;
  // No descriptor: a WebSocket session, restored parked until its client resumes with its token.
  const socket = item.fd === undefined ? undefined : adoptSocket(item.fd);
  let connection: Connection;
  try {
    connection = imi.restoreSession(snapshot, socket) as Connection;
  } catch (error) {
    socket?.destroy();
    throw error;
  }
  if (item.record !== undefined && connection.userChannel instanceof WsChannel) connection.userChannel.restoredAfterCrash();
  if (item.telnet !== undefined && connection.userChannel instanceof TelnetChannel) writeTelnetExtra(connection.userChannel, item.telnet);
  return { connection, mccp2 };
}

/**
 * Listens (on the supervisor's listeners when restarted), restores the
 * sessions the supervisor hands over, and keeps the supervisor's journal
 * current from then on.
 *
 * @returns the ports, as `listen()` does
 */
export async function runSupervisedWorker(imi: Intermediary, logger: Logger, mode: 'first' | 'restart'): Promise<ListeningPorts> {
  let ports: ListeningPorts;
  let journal: WorkerJournal;
  if (mode === 'first') {
    ports = await imi.listen();
    sendListeners(imi);
    journal = new WorkerJournal(imi, logger);
  } else {
    const restored = await restoreFromSupervisor(imi, logger);
    ports = restored.ports;
    journal = new WorkerJournal(imi, logger, restored.ids);
    // Users wait in the kernel, not in a queue: the app (which the dead worker lost) reconnects first,
    // so nobody is told it is away for the moment it takes.
    await waitForApp(imi, APP_RETURN_WAIT_MS);
    for (const { connection, mccp2 } of restored.waiting) {
      if (connection.closing) continue;
      if (mccp2 !== undefined) resumeTelnetCompression(connection.userChannel as TelnetChannel, mccp2);
      connection.resume();
    }
  }
  let handingBack = false;
  const planned = (): void => {
    if (handingBack) return;
    handingBack = true;
    handBack(imi, logger, journal).catch((error: unknown) => {
      logger.fatal({ err: error }, 'planned restart: cannot hand back; exiting');
      process.exit(1);
    });
  };
  process.on('message', (value: unknown, handle: unknown) => {
    let message: SupervisorMessage | undefined;
    try {
      message = readSupervisorMessage(value);
    } catch (error) {
      imi.report(error as ImiError);
      return;
    }
    if (message?.kind === 'restart') planned();
    else if (message?.kind === 'errors') applyErrors(imi, message.errors);
    else if (message?.kind === 'late') letIn(imi, message, handle);
  });
  // The worker upgrades by asking the supervisor: a successor of its own would not be supervised.
  imi.upgradeHandler = async () => {
    sendUp({ imi: 'supervise', kind: 'restart' });
    return { supervised: true, pid: process.pid, sessions: imi.stats().sessions, closed: 0, durationMs: 0 };
  };
  process.on('SIGUSR2', () => sendUp({ imi: 'supervise', kind: 'restart' }));
  // Without its supervisor nobody would keep the users through a crash, and a new supervisor could
  // not bind the ports: stop gracefully.
  process.on('disconnect', () => {
    if (handingBack) return;
    logger.error('the supervisor is gone: stopping');
    void imi.close('supervisor gone').finally(() => process.exit(1));
  });
  return ports;
}

/** A user the previous worker accepted while freezing: let in as if this process's listener had accepted them. */
function letIn(imi: Intermediary, message: { listener: number; pending: string }, handle: unknown): void {
  const server = listenerServer(imi.handoverParts().transports[message.listener]);
  if (server === undefined || typeof handle !== 'object' || handle === null) {
    imi.report(badJournal('a user passed on by the supervisor came without a socket or a listener'));
    return;
  }
  const socket = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
  const pending = Buffer.from(message.pending, 'base64');
  if (pending.length > 0) socket.unshift(pending);
  server.emit('connection', socket);
}

/** Reads `begin`, `sessions`, `end` from the supervisor and restores every session paused, then listens. */
function restoreFromSupervisor(imi: Intermediary, logger: Logger): Promise<{ ports: ListeningPorts; ids: string[]; waiting: Waiting[] }> {
  const started = performance.now();
  const waiting: Waiting[] = [];
  const dropped: string[] = [];
  let begin: Extract<SupervisorMessage, { kind: 'begin' }> | undefined;
  return new Promise((resolve, reject) => {
    const onMessage = (value: unknown): void => {
      let message: SupervisorMessage | undefined;
      try {
        message = readSupervisorMessage(value);
      } catch (error) {
        imi.report(error as ImiError);
        return;
      }
      if (message === undefined) return;
      if (message.kind === 'begin') {
        begin = message;
        imi.handoverParts().ledger.advanceSeq(message.seq);
        applyErrors(imi, message.errors);
      } else if (message.kind === 'sessions') {
        for (const item of message.items) {
          try {
            waiting.push(restoreItem(imi, item));
          } catch (error) {
            // Reported by restoreSession (IMI_BAD_SNAPSHOT) or here; the supervisor closes its copy.
            if (!(error instanceof ImiError && error.code === 'IMI_BAD_SNAPSHOT')) imi.report(badJournal(`cannot restore a session: ${(error as Error).message}`, error));
            const id = item.record?.id ?? item.snapshot?.id;
            if (typeof id === 'string') dropped.push(id);
          }
        }
      } else if (message.kind === 'end') {
        process.off('message', onMessage);
        if (begin === undefined) {
          reject(badJournal('end before begin'));
          return;
        }
        const layout = begin.layout;
        const planned = begin.planned;
        imi
          .listen({ users: layout.users, app: layout.app, ...(layout.admin === undefined ? {} : { admin: layout.admin }) })
          .then((ports) => {
            if (dropped.length > 0) sendUp({ imi: 'supervise', kind: 'drop', ids: dropped });
            // A fresh copy of the app listener: the supervisor turned apps away on its own until now.
            const appServer = imi.handoverParts().appServer;
            const appHandle = appServer === undefined ? undefined : rawHandle(appServer);
            if (appHandle !== undefined) sendUp({ imi: 'supervise', kind: 'listener', role: 'app', index: 0 }, appHandle);
            sendUp({ imi: 'supervise', kind: 'serving', pid: process.pid, sessions: waiting.length });
            logger.info({ sessions: waiting.length, dropped: dropped.length, planned, ms: Math.round(performance.now() - started) }, planned ? 'restarted by the supervisor: serving' : 'restarted after a crash: serving the users the supervisor kept');
            resolve({ ports, ids: waiting.map((item) => item.connection.id), waiting });
          }, reject);
      }
    };
    process.on('message', onMessage);
  });
}

/**
 * A planned restart: freeze (stop reading in the kernel, flush output, end
 * MCCP2 streams), stop accepting (new users wait in the backlog of the
 * supervisor's listeners), hand every session's full snapshot to the
 * supervisor, close the users who cannot be kept, and exit.
 */
async function handBack(imi: Intermediary, logger: Logger, journal: WorkerJournal): Promise<void> {
  journal.flush();
  journal.stop();
  const freeze = new Freeze(imi);
  freeze.start();
  await freeze.settle(SETTLE_MS);
  // The stdio indices mean nothing here (the supervisor holds copies of every socket); the plan maps each session to its socket.
  // WebSocket sockets are left out: the supervisor holds none, so a plain WebSocket user (who cannot resume) is told and closed
  // with the TLS users rather than dropped without a word when this process exits.
  const plan = freeze.plan(freeze.spawnPlan(3, false));
  const notice = imi.options.shutdownNotice === false ? undefined : imi.options.shutdownNotice;
  // Not HANDOVER_SHUTDOWN_REASON: the supervisor turns apps away until the next worker listens (the app keeps its reconnect delay).
  const { seq, held } = await freeze.commit(plan, notice, STAYING_CLOSE_MS, 'restart');
  freeze.release();
  // Accepted while freezing, never let in: passed on (plain sockets), or closed (TLS, WebSocket: they reconnect).
  for (const { channel, listener } of held) {
    const socket: Socket | undefined = rawSocket(channel);
    const handle = socket === undefined ? undefined : rawHandle(socket);
    if (socket === undefined || handle === undefined) {
      channel.destroy();
      continue;
    }
    const pending = stopReading(socket).toString('base64');
    sendUp({ imi: 'supervise', kind: 'late', listener, pending }, handle);
  }
  const sessions = plan.sessions.map((item) => ({ snapshot: item.snapshot as SessionSnapshot, ...(item.telnet === undefined ? {} : { telnet: item.telnet }) }));
  await new Promise<void>((resolve) => process.send!({ imi: 'supervise', kind: 'final', sessions, seq }, undefined, undefined, () => resolve()));
  logger.info({ sessions: sessions.length, closed: plan.staying.length }, 'planned restart: handed back to the supervisor; exiting');
  process.exit(0);
}
