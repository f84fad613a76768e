/**
 * The old process's side of a handover: freezes the intermediary (new
 * connections wait, nobody is read from, output is flushed, MCCP2 streams
 * are ended), writes down what the successor needs, and then either commits
 * (lets go of everything without a FIN) or thaws (goes on serving as if
 * nothing happened).
 *
 * @module
 */
import type { Server, Socket } from 'node:net';
import { SocketChannel, SocketTransport } from '../users/socket-transport.js';
import { TelnetChannel } from '../users/telnet/telnet-channel.js';
import type { Connection } from '../users/connection.js';
import type { UserChannel } from '../users/transport.js';
import type { Intermediary } from '../intermediary.js';
import type { HandoverParts } from './types.js';
import { fdOf, resumeReading, stopReading } from './fds.js';
import type { DepartedUser, GlobalState, HandedSession, SameSession, UserSockets } from './protocol.js';
import { endCompression, readTelnetExtra, restartCompression, telnetFlushing } from './telnet-extra.js';
import { asWs, atMessageBoundary, freezeWs, wsPassable, wsSocket } from './ws-handover.js';

/** Transports whose users can be handed over: their state is all in the socket and the snapshot. */
const PASSABLE = new Set(['tcp', 'telnet']);
/** How often a freeze checks whether pending users settled and output drained. */
const SETTLE_POLL_MS = 5;

/** The plain socket under a TCP or telnet channel (undefined for TLS, WebSocket and custom channels). */
export function rawSocket(channel: UserChannel): Socket | undefined {
  if (!PASSABLE.has(channel.transport)) return undefined;
  if (channel instanceof SocketChannel || channel instanceof TelnetChannel) return channel.socket;
  return undefined;
}

/** The listening server under a built-in transport. */
export function listenerServer(transport: unknown): Server | undefined {
  // Every built-in transport has `listener`; WsTransport is not imported here (it loads `ws`), so it is duck-typed.
  if (transport instanceof SocketTransport) return transport.listener;
  const server = (transport as { listener?: unknown }).listener;
  return typeof server === 'object' && server !== null && typeof (server as Server).listen === 'function' ? (server as Server) : undefined;
}

/** What the successor is started with, before the freeze: every listener and every user socket open at that moment. */
export interface SpawnPlan {
  /** Descriptors to put in the successor's stdio, after `[stdin, stdout, stderr, ipc]`. */
  fds: number[];
  /** The stdio index of each user listener, of the app port, of the admin port. */
  layout: { users: number[]; app: number; admin?: number };
  /** Each user's socket at spawn time and the stdio index of the successor's copy of it. */
  users: Map<Connection, { socket: Socket; index: number }>;
  /** The stdio indices of user sockets: plain TCP and telnet in `[from, wsFrom)`, WebSocket in `[wsFrom, to)`. */
  sockets: UserSockets;
}

/** What goes to the successor once frozen: the messages that describe the sockets it was started with. */
export interface HandoverPlan {
  global: GlobalState;
  sessions: HandedSession[];
  /** Users who cannot be handed over (TLS, WebSocket without resume, still negotiating, not draining): closed at commit. */
  staying: Connection[];
  /** Stdio indices the successor holds but no session uses (users who left or stay): it closes them. */
  close: number[];
}

/** What the commit leaves to send. */
export interface CommitResult {
  /** The ledger's last seq, after the staying users left. */
  seq: number;
  /** Users the same app must still hear left. */
  departed: DepartedUser[];
  /** Users who arrived during the handover, with the index of their listener. */
  held: Array<{ channel: UserChannel; listener: number }>;
}

/** The stdio index of the successor's copy of `socket`; undefined when it was not started with it for this user (or it closed). */
function successorIndex(spawn: SpawnPlan, connection: Connection, socket: Socket): number | undefined {
  const at = spawn.users.get(connection);
  return at === undefined || at.socket !== socket || socket.destroyed ? undefined : at.index;
}

/** How {@link Freeze} hands one session over (`describe`). */
interface Described {
  session: HandedSession;
  /** The plain socket of a TCP or telnet session (this process lets go of it at commit). */
  socket?: Socket;
  /** A WebSocket session that resumes on the successor: its connection here is closed at commit. */
  closeWs: boolean;
}

/** One frozen intermediary. */
export class Freeze {
  private readonly parts: HandoverParts;
  private readonly held: Array<{ channel: UserChannel; listener: number }> = [];
  private readonly frozen = new Set<Connection>();
  private readonly compressed = new Set<TelnetChannel>();
  private readonly handed = new Map<Connection, Socket>();
  /** WebSocket sessions handed over: true when their connection must be closed (they resume on the successor), false when their socket went along. */
  private readonly handedWs = new Map<Connection, boolean>();
  /** What undoes the freeze of each WebSocket channel. */
  private readonly wsThaws = new Map<Connection, () => void>();
  private readonly appSockets: Socket[] = [];
  /** Each pre-copied session's item as it was sent (its JSON), to tell at the freeze whether it changed. */
  private readonly precopied = new Map<Connection, string>();
  /** Sessions {@link planInChunks} found unchanged since their pre-copy (sent as `{ same: id }`). */
  unchanged = 0;

  private started = false;

  /** Holds users who arrive from now on (they are passed to the successor at commit, or let in by {@link thaw}); apps are still let in. */
  constructor(private readonly imi: Intermediary) {
    this.parts = imi.handoverParts();
    imi.handoverGate = {
      userArrived: (channel, listener) => this.held.push({ channel, listener }),
      appArrived: (socket) => this.parts.apps.accept(socket),
    };
  }

  /** Freezes: from here nobody is read from and no timer of the input rate fires. */
  start(): void {
    this.started = true;
    this.imi.handoverGate = {
      userArrived: (channel, listener) => this.held.push({ channel, listener }),
      // An app arriving now would be lost with this process: it retries, and finds the successor (or us again).
      appArrived: (socket) => socket.destroy(),
    };
    this.parts.apps.stopHeartbeat();
    for (const link of this.parts.apps.allLinks) {
      const socket = link.socket;
      stopReading(socket);
      this.appSockets.push(socket);
    }
    this.freezeAdmitted();
  }

  /**
   * The descriptors the successor is started with, while this process still
   * serves: every listener, and the socket of every user open now (a user
   * who leaves before the freeze is in {@link HandoverPlan.close}).
   *
   * @param firstFd - the stdio index of the first descriptor
   * @param webSocketSockets - false where the receiver cannot get a WebSocket's
   *   socket (a planned restart under `--supervise`: the supervisor keeps no copy
   *   of them): a plain WebSocket user then stays behind and is told
   *   `shutdownNotice`, and one that can resume goes without its socket
   * @throws Error when a listener has no descriptor (the upgrade cannot happen)
   */
  spawnPlan(firstFd: number, webSocketSockets = true): SpawnPlan {
    const { users, transports, appServer, admin } = this.parts;
    const fds: number[] = [];
    const place = (fd: number): number => fds.push(fd) - 1 + firstFd;
    const need = (fd: number | undefined, what: string): number => {
      if (fd === undefined) throw new Error(`${what} has no descriptor to hand over`);
      return place(fd);
    };
    const layout: SpawnPlan['layout'] = {
      users: transports.map((transport, i) => {
        const server = listenerServer(transport);
        return need(server === undefined ? undefined : fdOf(server), `user listener ${i}`);
      }),
      app: need(appServer === undefined ? undefined : fdOf(appServer), 'the app listener'),
    };
    if (admin !== undefined) layout.admin = need(fdOf(admin.listener), 'the admin listener');
    const placed = new Map<Connection, { socket: Socket; index: number }>();
    // Plain TCP and telnet sockets first, WebSocket ones after: the successor sets keepalive on the first range only (as their channels do).
    const wsSockets: Array<[Connection, Socket, number]> = [];
    const from = firstFd + fds.length;
    for (const connection of users.openConnections) {
      if (connection.closing) continue;
      const channel = connection.userChannel;
      const ws = asWs(channel);
      const socket = ws === undefined ? rawSocket(channel) : wsSocket(ws);
      const fd = socket === undefined ? undefined : fdOf(socket);
      if (fd === undefined || (ws !== undefined && !webSocketSockets)) continue;
      if (ws !== undefined) wsSockets.push([connection, socket!, fd]);
      else placed.set(connection, { socket: socket!, index: place(fd) });
    }
    const wsFrom = firstFd + fds.length;
    for (const [connection, socket, fd] of wsSockets) placed.set(connection, { socket, index: place(fd) });
    const sockets: SpawnPlan['sockets'] = { from, wsFrom, to: firstFd + fds.length };
    return { fds, layout, users: placed, sockets };
  }

  /**
   * Waits until users still being let in (telnet negotiation, `connect`
   * taps) are in, and every user's output is in the kernel; at most
   * `timeoutMs`. Those not done by then stay behind.
   */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.freezeAdmitted();
      let busy = false;
      for (const connection of this.parts.users.openConnections) {
        if (connection.closing) continue;
        const channel = connection.userChannel;
        if (!connection.accepted || (channel instanceof TelnetChannel ? telnetFlushing(channel) : channel.writableLength > 0)) busy = true;
        const ws = asWs(channel);
        if (ws !== undefined && wsSocket(ws) !== undefined && !atMessageBoundary(ws)) busy = true;
      }
      if (!busy || Date.now() >= deadline) return;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
    }
  }

  /** Writes down every session and the global state, frozen; each session's socket is the successor's copy from `spawn`. */
  plan(spawn: SpawnPlan): HandoverPlan {
    const planning = this.planInChunks(spawn, Infinity);
    for (;;) {
      const step = planning.next();
      if (step.done === true) return step.value;
    }
  }

  /** What is not per session (the same before and after the sessions are written down: nothing runs while frozen). */
  global(): GlobalState {
    const { apps, ledger, reporter } = this.parts;
    const app = apps.handoverState();
    return {
      seq: ledger.nextSeq(),
      lastAppInstance: app.lastAppInstance ?? null,
      appConnected: apps.current !== undefined,
      lastAppConnectionId: app.lastAppConnectionId,
      departed: app.departed,
      counters: structuredClone(reporter.counters) as unknown as Record<string, unknown>,
    };
  }

  /**
   * {@link plan}, `size` sessions at a time: yields each chunk as it is
   * written down, so the successor restores one while the next is taken. A
   * session whose {@link precopyChunks pre-copy} is exactly what it would be
   * sent as now is yielded as `{ same: id }`.
   */
  *planInChunks(spawn: SpawnPlan, size: number): Generator<Array<HandedSession | SameSession>, HandoverPlan> {
    const { users, apps } = this.parts;
    const used = new Set<number>();
    const indexOf = (connection: Connection, socket: Socket): number | undefined => {
      const index = successorIndex(spawn, connection, socket);
      if (index !== undefined) used.add(index);
      return index;
    };
    const lastApp = apps.handoverState().lastAppConnectionId;
    const sessions: HandedSession[] = [];
    const staying: Connection[] = [];
    let chunk: Array<HandedSession | SameSession> = [];
    for (const connection of users.openConnections) {
      const described = this.describe(connection, lastApp, indexOf);
      if (described === undefined) {
        staying.push(connection);
        continue;
      }
      const { session } = described;
      if (described.socket !== undefined) this.handed.set(connection, described.socket);
      else this.handedWs.set(connection, described.closeWs);
      sessions.push(session);
      const copy = this.precopied.get(connection);
      if (copy !== undefined && copy === JSON.stringify(session)) {
        chunk.push({ same: connection.id });
        this.unchanged++;
      } else chunk.push(session);
      if (chunk.length >= size) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
    const global = this.global();
    const close: number[] = [];
    for (const { index } of spawn.users.values()) if (!used.has(index)) close.push(index);
    return { global, sessions, staying, close };
  }

  /**
   * The pre-copy: every session that could be handed over now, written down
   * while this process still serves, `size` at a time (each chunk goes in a
   * `precopy` message). Takes nothing from any socket and changes nothing;
   * what changes before the freeze is sent again by {@link planInChunks}.
   *
   * @returns how many sessions were pre-copied
   */
  *precopyChunks(spawn: SpawnPlan, size: number): Generator<HandedSession[], number> {
    const { users, apps } = this.parts;
    const indexOf = (connection: Connection, socket: Socket): number | undefined => successorIndex(spawn, connection, socket);
    let count = 0;
    let chunk: HandedSession[] = [];
    // Read again after each chunk: the app may change while this process serves between chunks.
    let lastApp = apps.handoverState().lastAppConnectionId;
    // A copy: users come and go while this process serves between chunks.
    for (const connection of [...users.openConnections]) {
      if (!users.openConnections.has(connection)) continue;
      const described = this.describe(connection, lastApp, indexOf);
      if (described === undefined) continue;
      this.precopied.set(connection, JSON.stringify(described.session));
      chunk.push(described.session);
      count++;
      if (chunk.length >= size) {
        yield chunk;
        chunk = [];
        lastApp = apps.handoverState().lastAppConnectionId;
      }
    }
    if (chunk.length > 0) yield chunk;
    return count;
  }

  /**
   * How one session goes to the successor, or undefined when it stays with
   * this process (TLS, a WebSocket that can neither go with its socket nor
   * resume, still being let in, closing, output not drained).
   *
   * @param at - the successor's stdio index of the session's socket (undefined: it has none)
   */
  private describe(connection: Connection, lastApp: number, at: (connection: Connection, socket: Socket) => number | undefined): Described | undefined {
    const { users } = this.parts;
    const channel = connection.userChannel;
    const announced = connection.announcedTo !== 0 && connection.announcedTo === lastApp;
    const live = connection.accepted && !connection.closing && users.connections.has(connection.id);
    const ws = asWs(channel);
    if (ws !== undefined) {
      if (!live || !(wsPassable(ws) || ws.tokenHash !== undefined)) return undefined;
      // A plain one between messages goes with its socket; any other that can resume goes without.
      const wsSocketFd = wsPassable(ws) ? at(connection, wsSocket(ws)!) : undefined;
      if (wsSocketFd === undefined && ws.tokenHash === undefined) return undefined;
      const session: HandedSession = { snapshot: this.imi.snapshotSession(connection.id)!, announced };
      if (wsSocketFd !== undefined) session.fd = wsSocketFd;
      return { session, closeWs: wsSocketFd === undefined };
    }
    const socket = rawSocket(channel);
    const flushed = channel instanceof TelnetChannel ? !telnetFlushing(channel) : channel.writableLength === 0;
    if (socket === undefined || !live || !flushed) return undefined;
    const fd = at(connection, socket);
    if (fd === undefined) return undefined;
    const session: HandedSession = { fd, snapshot: this.imi.snapshotSession(connection.id)!, announced };
    if (channel instanceof TelnetChannel) session.telnet = readTelnetExtra(channel);
    if (announced && connection.telnetSent !== undefined) session.telnetSent = connection.telnetSent;
    return { session, socket, closeWs: false };
  }

  /** The upgrade did not happen: serve on as before (nothing was taken from any socket). */
  thaw(): void {
    const { users, apps } = this.parts;
    this.imi.handoverGate = undefined;
    this.handed.clear();
    this.handedWs.clear();
    this.precopied.clear();
    this.unchanged = 0;
    for (const connection of this.frozen) {
      const socket = rawSocket(connection.userChannel);
      const wsThaw = this.wsThaws.get(connection);
      if (wsThaw !== undefined) wsThaw();
      if (socket !== undefined) resumeReading(socket);
      else if (connection.delayedCount === 0) connection.resume();
      if (connection.delayedCount > 0 && connection.delayTimer === undefined && !connection.closing) users.scheduleDelayed(connection);
    }
    for (const channel of this.compressed) if (!channel.destroyed) restartCompression(channel);
    for (const socket of this.appSockets) resumeReading(socket);
    if (this.started && apps.current !== undefined) apps.startHeartbeat();
    for (const { channel } of this.held.splice(0)) users.accept(channel);
  }

  /**
   * The successor is ready: stop accepting, forget every handed-over user
   * (their descriptors are closed by {@link release}), close those staying
   * with `notice`, and end the app link so the app reconnects to the
   * successor. Nothing is written to a handed-over socket from here on.
   *
   * @param appReason - the current app's `shutdown` reason: `HANDOVER_SHUTDOWN_REASON` (@imi/core)
   *   only where the successor already holds the app port (an upgrade), so the app retries at once
   */
  async commit(plan: HandoverPlan, notice: string | undefined, timeoutMs: number, appReason: string): Promise<CommitResult> {
    const { users, apps, ledger, transports, appServer, admin } = this.parts;
    users.closing = true;
    for (const transport of transports) listenerServer(transport)?.close();
    appServer?.close();
    admin?.listener.close();
    for (const connection of this.handed.keys()) {
      users.connections.delete(connection.id);
      users.openConnections.delete(connection);
      // The only timer that writes to an admitted user: from here the successor's, so this process must never write again.
      const channel = connection.userChannel;
      if (channel instanceof TelnetChannel) channel.watchPeer(0, 0);
    }
    for (const [connection, closeConnection] of this.handedWs) {
      users.connections.delete(connection.id);
      users.openConnections.delete(connection);
      asWs(connection.userChannel)!.release(closeConnection);
    }
    const gone = plan.staying.map((connection) => {
      asWs(connection.userChannel)?.endForRestart();
      connection.close(notice, 'shutdown');
      return connection.closed;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(gone), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    for (const connection of plan.staying) if (!connection.userChannel.destroyed) connection.destroy('shutdown');
    // No app hook may run now: `clientDisconnect` taps write to every user, and the users are not ours any more.
    apps.closing = true;
    void apps.endAll(appReason);
    return { seq: ledger.nextSeq(), departed: apps.handoverState().departed, held: this.held.splice(0) };
  }

  /** Resolves once every app link's FIN is written (after {@link commit} ended them), or after `timeoutMs`. */
  appLinksEnded(timeoutMs: number): Promise<void> {
    const ended = this.appSockets.map((socket) =>
      socket.writableFinished || socket.destroyed ? undefined : new Promise<void>((resolve) => {
        socket.once('finish', resolve);
        socket.once('close', resolve);
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([Promise.all(ended), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).then(() => clearTimeout(timer));
  }

  /**
   * Closes this process's descriptors of the handed-over sockets (after
   * {@link commit}, which stopped every timer that could write to them; the
   * successor's copies keep the connections open, so the peers see
   * nothing). Call it once the `commit` message and the app link's FIN are
   * out: the successor's start and the app's reconnection overlap it.
   */
  release(): void {
    for (const socket of this.handed.values()) {
      for (const event of ['data', 'end', 'close', 'error', 'drain', 'timeout']) socket.removeAllListeners(event);
      socket.on('error', () => {});
      socket.destroy();
    }
    this.handed.clear();
  }

  private freezeAdmitted(): void {
    for (const connection of this.parts.users.openConnections) {
      if (!connection.accepted || this.frozen.has(connection)) continue;
      this.frozen.add(connection);
      if (connection.delayTimer !== undefined) {
        clearTimeout(connection.delayTimer);
        connection.delayTimer = undefined;
      }
      const channel = connection.userChannel;
      const socket = rawSocket(channel);
      const ws = asWs(channel);
      if (socket !== undefined) stopReading(socket);
      else if (ws !== undefined && wsSocket(ws) !== undefined) this.wsThaws.set(connection, freezeWs(ws));
      else {
        if (ws !== undefined) this.wsThaws.set(connection, freezeWs(ws));
        connection.pause();
      }
      if (channel instanceof TelnetChannel && endCompression(channel)) this.compressed.add(channel);
    }
  }
}
