/**
 * The intermediary: holds users' connections on the external port, talks to
 * one app at a time on the app port, and keeps users connected — and their
 * input safe — while the app crashes, restarts or is replaced.
 *
 * This file composes the parts and holds the public API:
 *
 * - `users/` — transports, telnet, line splitting, admission, the input pipeline ({@link UserSide})
 * - `delivery/` — the input ledger: seq, queued, unacked, acks, redelivery ({@link InputLedger})
 * - `app/` — the app link, handshake, resync, handover policy, heartbeat, app messages ({@link AppSide})
 * - `session/` — the session snapshot and its restore
 * - `ops/` — counters and reports, admin API, metrics, CLI
 *
 * @module
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import pino, { type Logger } from 'pino';
import { ImiError, LimitError, SessionRegistry, memorySocketPair } from '@imi/core';
import type { IntermediaryApi, IntermediaryEvents, IntermediaryStats, ListeningPorts, SessionQueues } from './api.js';
import { AppSide } from './app/app-side.js';
import type { InputLedger, QueueLimit, UnackedLimit } from './delivery/ledger.js';
import { MemoryLedger } from './delivery/memory-ledger.js';
import { createHooks, type AppInfo, type IntermediaryHooks, type Session } from './hooks.js';
import type { IntermediaryOptions, ResolvedOptions } from './options.js';
import { resolveOptions } from './resolve-options.js';
import { AdminServer } from './ops/admin.js';
import type { IntermediaryMetrics } from './ops/metrics.js';
import { Reporter } from './ops/reporter.js';
import type { HandoverGate, HandoverParts, InheritedListeners } from './handover/types.js';
import { AppDownNoticePlugin, IdleTimeoutPlugin, WelcomeBannerPlugin } from './plugins.js';
import { restoreValidSnapshot, takeSnapshot } from './session/session-state.js';
import { validateSessionSnapshot, type SessionSnapshot } from './session/snapshot.js';
import { createTransport } from './users/create-transport.js';
import { ServerStatus } from './users/telnet/mssp.js';
import { closeServer, listenOn } from './users/socket-transport.js';
import { isTransport, type Transport, type TransportAddress, type UserChannel } from './users/transport.js';
import { UserSide } from './users/user-side.js';
import { isLoopback } from './users/admission.js';
import { ResumeTokens, type WsResumeSettings } from './users/ws-resume.js';

export type { DropReason, IntermediaryEvents, IntermediaryStats, ListeningPorts, SessionQueues } from './api.js';

/**
 * The intermediary. Create it, `listen()`, and `close()` to stop.
 *
 * ```ts
 * const imi = new Intermediary({ externalPort: 6715, clientPort: 9000 });
 * const ports = await imi.listen();
 * ```
 */
export class Intermediary extends EventEmitter<IntermediaryEvents> implements IntermediaryApi {
  /** The lifecycle hooks; plugins tap them. Frozen: the set of hooks never changes. */
  readonly hooks: IntermediaryHooks;
  /** The options with defaults filled in. */
  readonly options: Readonly<ResolvedOptions>;
  /** The logger (silent unless one was given). */
  readonly logger: Logger;
  /** Live sessions and their state. */
  readonly registry = new SessionRegistry();

  private readonly reporter: Reporter;
  private readonly ledger: InputLedger;
  private readonly users: UserSide;
  private readonly apps: AppSide;
  private readonly serverStatus: ServerStatus;
  private transports: Transport[] = [];
  private appServer: Server | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private admin: AdminServer | undefined;
  /** The admin listener made by {@link prepareAdmin}, until {@link listen} takes it. */
  private preparedAdmin: AdminServer | undefined;
  /** Resume tokens of WebSocket sessions, shared by every WebSocket listener. */
  private readonly wsResume: WsResumeSettings;
  /**
   * Set while an upgrade hands this intermediary over: new connections wait.
   *
   * @internal
   * @hidden
   */
  handoverGate: HandoverGate | undefined;
  /**
   * Runs an upgrade for `POST /upgrade` (set by `imi-server`; an intermediary
   * embedded in another program cannot start its successor).
   *
   * @internal
   */
  upgradeHandler: (() => Promise<object>) | undefined;

  /**
   * @param options - every option has a default; see {@link IntermediaryOptions}
   * @throws ImiError `IMI_CONFIG` for impossible option values
   */
  constructor(options: IntermediaryOptions = {}) {
    super();
    this.options = Object.freeze(resolveOptions(options));
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.hooks = createHooks();
    const reporter = new Reporter(this.logger, this, this.options);
    this.reporter = reporter;
    const resolved = this.options;
    const counters = reporter.counters;
    // The one line that picks the ledger's back end.
    this.ledger = new MemoryLedger(resolved, {
      queueOverflow: (sessionId: string, limit: QueueLimit, count: number) => {
        counters.dropped.queueFull += count;
        reporter.reportLimit(limit, resolved[limit], 'input queued while no app is connected overflowed; the oldest line was dropped', sessionId);
        this.users.queueOverflowed(sessionId);
      },
      unackedOverflow: (sessionId: string, limit: UnackedLimit) => {
        counters.dropped.unackedOverflow++;
        reporter.reportLimit(limit, resolved[limit], 'the app is not acking; the oldest unacked input will not be redelivered', sessionId);
      },
      userGone: (_sessionId: string, count: number) => {
        counters.dropped.userGone += count;
      },
    });
    const parts = { options: resolved, logger: this.logger, hooks: this.hooks, events: this, reporter, ledger: this.ledger, registry: this.registry };
    this.users = new UserSide(parts);
    // MSSP's UPTIME is this process's: an app restart does not reset it.
    this.serverStatus = new ServerStatus(resolved.msspName, () => this.users.connections.size);
    this.apps = new AppSide({ ...parts, users: this.users, serverStatus: this.serverStatus });
    this.users.app = this.apps;
    this.wsResume = {
      tokens: new ResumeTokens(),
      windowMs: resolved.wsResumeWindowMs,
      bufferBytes: resolved.wsResumeBufferBytes,
      busy: () => this.handoverGate !== undefined,
      admitResume: (address) => (!resolved.limitLoopback && isLoopback(address)) || this.users.admission.admitRate(address, Date.now()),
      report: (error) => {
        if (error instanceof LimitError) this.reporter.countLimit(error);
        this.reporter.report(error);
      },
    };
    const builtIns = [];
    if (resolved.banner !== undefined) builtIns.push(new WelcomeBannerPlugin(resolved.banner));
    if (resolved.appDownNotice !== false) builtIns.push(new AppDownNoticePlugin(resolved.appDownNotice));
    if (resolved.idleTimeoutMs !== undefined) builtIns.push(new IdleTimeoutPlugin(resolved.idleTimeoutMs));
    for (const plugin of [...builtIns, ...(options.plugins ?? [])]) plugin.apply(this);
  }

  /** Whether an app is connected and has been resynced. */
  get appConnected(): boolean {
    return this.apps.readyApp !== 0;
  }

  /** The connected app, if any. */
  get currentApp(): AppInfo | undefined {
    return this.apps.current;
  }

  /** The live sessions (let in by the `connect` hook). */
  sessions(): IterableIterator<Session> {
    return this.users.live();
  }

  /** A live session by id. */
  session(id: string): Session | undefined {
    return this.users.get(id);
  }

  /** The queue depths of a live session (for the admin API). */
  sessionQueues(id: string): SessionQueues | undefined {
    if (this.users.get(id) === undefined) return undefined;
    const totals = this.ledger.sessionTotals(id) ?? { queuedLines: 0, queuedBytes: 0, unacked: 0 };
    return { queuedLines: totals.queuedLines, queuedBytes: totals.queuedBytes, unacked: totals.unacked };
  }

  /** The metrics the admin listener serves (after `listen()`, when `adminPort` is set). */
  get metrics(): IntermediaryMetrics | undefined {
    return this.admin?.metrics;
  }

  /**
   * Makes the admin listener's server and metrics now (when `adminPort` is
   * set), for {@link listen} to use: an upgrade's successor does it while the
   * old process still serves, because making prom-client's metrics takes tens
   * of ms that every user would otherwise wait for in the freeze.
   *
   * @internal
   */
  prepareAdmin(): void {
    if (this.admin === undefined) this.preparedAdmin ??= this.makeAdmin();
  }

  private makeAdmin(): AdminServer | undefined {
    const { adminPort, adminHost } = this.options;
    if (adminPort === undefined) return undefined;
    const upgrade = (): Promise<object> | undefined => this.upgradeHandler?.();
    return new AdminServer(this, { port: adminPort, host: adminHost, token: this.options.adminToken ?? this.options.token, upgrade });
  }

  /**
   * Binds every port: the users' (`externalPort` and every listener of
   * `listeners`), the app's, and the admin one when asked. Resolves with the
   * real ports once all listen.
   *
   * @param inherited - listening sockets inherited from the process this one
   *   succeeds (an upgrade): listen on them rather than bind the ports
   * @throws the listen error (e.g. `EADDRINUSE`, an unreadable TLS certificate); nothing stays bound then
   */
  async listen(inherited?: InheritedListeners): Promise<ListeningPorts> {
    if (this.closing) throw new ImiError('IMI_CLOSED', 'this intermediary was closed');
    const context = {
      host: this.options.host,
      onListenerError: (error: Error) => this.logger.error({ err: error }, 'user listener error'),
      report: (error: ImiError) => this.report(error),
      proxy: { trustedAddresses: this.options.proxyTrustedAddresses, headerTimeoutMs: this.options.proxyHeaderTimeoutMs, report: (error: ImiError) => this.reporter.report(error) },
      mssp: () => this.serverStatus.table(),
      wsResume: this.wsResume,
    };
    const appServer = net.createServer({ noDelay: true }, (socket) => (this.handoverGate ? this.handoverGate.appArrived(socket) : this.apps.accept(socket)));
    appServer.on('error', (error) => this.logger.error({ err: error }, 'app listener error'));
    const { adminPort, adminHost } = this.options;
    const adminToken = this.options.adminToken ?? this.options.token;
    const admin = this.preparedAdmin ?? this.makeAdmin();
    this.preparedAdmin = undefined;
    const transports: Transport[] = [];
    const listeners: TransportAddress[] = [];
    try {
      const specs = [{ kind: 'tcp' as const, port: this.options.externalPort, proxyProtocol: this.options.proxyProtocol }, ...this.options.listeners];
      for (const spec of specs) {
        const transport = isTransport(spec) ? spec : await createTransport(spec, context);
        const index = transports.push(transport) - 1;
        const accept = (channel: UserChannel): void => (this.handoverGate ? this.handoverGate.userArrived(channel, index) : this.users.accept(channel));
        listeners.push(await transport.listen(accept, this.options.backlog, inherited?.users[index]));
      }
      await listenOn(appServer, this.options.clientPort, this.options.clientHost, this.options.backlog, inherited?.app);
      await admin?.listen(inherited?.admin);
    } catch (error) {
      for (const transport of transports) void transport.close();
      appServer.close();
      void admin?.close();
      admin?.metrics.detach();
      throw error;
    }
    this.transports = transports;
    this.appServer = appServer;
    this.admin = admin;
    const ports: ListeningPorts = {
      externalPort: listeners[0]!.port,
      clientPort: (appServer.address() as AddressInfo).port,
      listeners,
    };
    if (admin !== undefined) {
      ports.adminPort = admin.port!;
      // resolveOptions refuses a non-loopback adminHost without a token.
      if (adminToken === undefined) this.logger.warn({ adminPort: ports.adminPort, adminHost }, 'the admin API has no token: anyone on this host can use it (set adminToken)');
    }
    const sweepMs = Math.max(50, Math.min(1000, this.options.depWaitTimeoutMs / 2));
    this.sweepTimer = setInterval(() => {
      this.apps.expireHeldMessages();
      this.users.admission.sweep(Date.now());
    }, sweepMs);
    this.sweepTimer.unref();
    this.logger.info({ ...ports, listeners: listeners.slice(1), host: this.options.host, clientHost: this.options.clientHost, ...(admin ? { adminHost } : {}) }, 'listening');
    this.emit('listening', ports);
    return ports;
  }

  /**
   * An app connection in this process, without the app port: the same
   * protocol (`hello`, token, acks) over a `MemorySocket` pair of `@imi/core`
   * instead of loopback TCP. A cluster holder's bridge links this way.
   *
   * @returns the app's end (a `MemorySocket`, which has every part of `net.Socket` an app link uses): it emits `connect`, then speaks the protocol
   */
  connectApp(): Socket {
    const [appEnd, intermediaryEnd] = memorySocketPair();
    const socket = intermediaryEnd as unknown as Socket;
    if (this.handoverGate) this.handoverGate.appArrived(socket);
    else this.apps.accept(socket);
    return appEnd as unknown as Socket;
  }

  /** Sends text to every live user (admin broadcast; the app uses the `broadcast` message). */
  broadcast(text: string, except?: ReadonlySet<string>): number {
    return this.users.broadcast(text, except);
  }

  /** A snapshot of the counters. */
  stats(): IntermediaryStats {
    const counters = this.reporter.counters;
    let outputWrites = counters.closedOutput.writes;
    let outputBytes = counters.closedOutput.bytes;
    const sessionsByTransport: Record<string, number> = {};
    let sessions = 0;
    for (const connection of this.users.live()) {
      outputWrites += connection.record.counters.writesOut;
      outputBytes += connection.record.counters.bytesOut;
      sessionsByTransport[connection.transport] = (sessionsByTransport[connection.transport] ?? 0) + 1;
      sessions++;
    }
    const ledger = this.ledger.totals();
    const app = this.apps.current;
    return {
      sessions,
      seats: this.users.admission.connections,
      sessionsByTransport,
      appConnected: app !== undefined,
      appName: app?.name,
      appConnects: counters.appConnects,
      appDisconnects: counters.appDisconnects,
      appReplacements: counters.appReplacements,
      sessionsOpened: counters.sessionsOpened,
      inputLines: counters.inputLines,
      inputBytes: counters.inputBytes,
      outputWrites,
      outputBytes,
      queuedLines: ledger.queuedLines,
      queuedBytes: ledger.queuedBytes,
      unacked: ledger.unacked,
      redelivered: counters.redelivered,
      heldMessages: this.apps.heldMessages,
      dropped: { ...counters.dropped },
      refused: { ...counters.refused },
      errors: { ...counters.errors },
      limits: { ...counters.limits },
      lastResyncMs: counters.lastResyncMs,
      lastResyncAnnounced: counters.lastResyncAnnounced,
    };
  }

  /**
   * A live session as plain data — everything but its socket — for a
   * successor process (see {@link SessionSnapshot}). JSON-safe: it survives
   * `JSON.stringify` / `JSON.parse` unchanged.
   *
   * @returns undefined for an id that is not a live session
   */
  snapshotSession(id: string): SessionSnapshot | undefined {
    const connection = this.users.get(id);
    return connection === undefined ? undefined : takeSnapshot(connection, this.ledger);
  }

  /** Every live session's snapshot, in the order they were let in. */
  snapshotSessions(): SessionSnapshot[] {
    const snapshots: SessionSnapshot[] = [];
    for (const connection of this.users.live()) snapshots.push(takeSnapshot(connection, this.ledger));
    return snapshots;
  }

  /**
   * Brings a session taken with {@link snapshotSession} (here or in another
   * process) back to life over `socket`: same id, state, telnet negotiation
   * (the client is not asked again; MCCP2 starts a new compressed stream),
   * unfinished line, and pending input — queued lines are queued again,
   * unacked ones are redelivered to the next app in their old `seq` order.
   * The `connect` hook does not run; `sessionOpen` is emitted. A synced app
   * is told of the user (`resumed: true`) at once.
   *
   * @param snapshot - a {@link SessionSnapshot}, typically from `JSON.parse`; it is validated
   * @param socket - the user's connection (TCP, or TLS for `tls` / `telnet+tls`;
   *   for `ws`, the socket under the WebSocket, its handshake done). Omitted
   *   for a resumable WebSocket session: it is parked until its client
   *   resumes it with its token (within `wsResumeWindowMs`).
   * @returns the restored session
   * @throws ImiError `IMI_BAD_SNAPSHOT` for an unknown version, a malformed
   *   snapshot, an id that is live already, or no socket for a session that
   *   needs one; reported (logged, counted) too. `IMI_CLOSED` after `close()`.
   */
  restoreSession(snapshot: unknown, socket?: Socket): Session {
    return this.restore(() => validateSessionSnapshot(snapshot), socket, false);
  }

  /**
   * {@link restoreSession} for a snapshot already validated (the upgrade's
   * successor checks each one as it arrives), which becomes the session's:
   * the caller must not use it afterwards (its `state` is not copied).
   *
   * @internal
   */
  restoreValidSession(snapshot: SessionSnapshot, socket?: Socket): Session {
    return this.restore(() => snapshot, socket, true);
  }

  private restore(validated: () => SessionSnapshot, socket: Socket | undefined, owned: boolean): Session {
    if (this.closing) throw new ImiError('IMI_CLOSED', 'this intermediary was closed');
    try {
      return restoreValidSnapshot(validated(), socket, {
        users: this.users,
        registry: this.registry,
        ledger: this.ledger,
        announceRestored: (connection) => this.apps.announceRestored(connection),
        maxLineBytes: this.options.maxLineBytes,
        maxOutputBufferBytes: this.options.maxOutputBufferBytes,
        limitLoopback: this.options.limitLoopback,
        mssp: () => this.serverStatus.table(),
        wsResume: this.wsResume,
      }, owned);
    } catch (error) {
      if (error instanceof ImiError) this.reporter.report(error);
      throw error;
    }
  }

  /**
   * Stops gracefully: stops accepting, runs the `shutdown` hook, tells the
   * app (`shutdown`) and the users (`shutdownNotice`), flushes and closes
   * every socket (destroying what has not closed after `closeTimeoutMs`).
   *
   * @param reason - sent to the app in `shutdown.data.reason`
   */
  close(reason = 'close'): Promise<void> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<void> {
    this.users.closing = true;
    this.apps.closing = true;
    this.logger.info({ reason }, 'shutting down');
    // One made by prepareAdmin() that listen() never took (a successor that exits before its commit).
    this.preparedAdmin?.metrics.detach();
    this.preparedAdmin = undefined;
    const serversClosed = Promise.all([...this.transports.map((transport) => transport.close()), closeServer(this.appServer), this.admin?.close()]);
    try {
      await this.hooks.shutdown.promise(reason);
    } catch (error) {
      this.reporter.reportPluginError('shutdown', error);
    }
    const socketsClosed = this.apps.endAll(reason);
    // Every user socket, not only admitted users: one still waiting for the
    // connect hook (or refused and closing) would keep the user port open.
    const { openConnections } = this.users;
    for (const connection of [...openConnections]) {
      socketsClosed.push(connection.closed);
      connection.close(this.options.shutdownNotice === false ? undefined : this.options.shutdownNotice, 'shutdown');
      connection.resume();
    }
    let forceTimer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      forceTimer = setTimeout(() => {
        for (const link of this.apps.allLinks) link.destroy();
        for (const connection of openConnections) connection.destroy('shutdown');
        resolve();
      }, this.options.closeTimeoutMs);
    });
    await Promise.race([Promise.all(socketsClosed), forced]);
    clearTimeout(forceTimer);
    // Destroyed sockets report 'close' a tick later: let every user be
    // forgotten (and the disconnect hook run) before 'close' is emitted.
    await Promise.all(socketsClosed);
    await serversClosed;
    this.apps.stopHeartbeat();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.reporter.flush();
    this.emit('close');
  }

  /**
   * The internals an upgrade hands over (old process) or restores (successor).
   *
   * @internal
   * @hidden
   */
  handoverParts(): HandoverParts {
    return { users: this.users, apps: this.apps, ledger: this.ledger, reporter: this.reporter, transports: this.transports, appServer: this.appServer, admin: this.admin };
  }

  /**
   * Counts, logs (rate-limited per code) and emits an error. Never throws.
   *
   * @internal
   */
  report(error: ImiError, level: 'warn' | 'info' | 'debug' = 'warn'): void {
    this.reporter.report(error, level);
  }
}
