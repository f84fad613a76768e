/**
 * The intermediary: holds users' connections on the external port, talks to
 * one app at a time on the app port, and keeps users connected — and their
 * input safe — while the app crashes, restarts or is replaced.
 *
 * @module
 */
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import pino, { type Logger } from 'pino';
import {
  ERROR_CODES,
  ImiError,
  LimitError,
  SessionRegistry,
  encodeFrame,
  type AppMessage,
  type ImiErrorCode,
  type JsonObject,
  type JsonValue,
  type ProtocolError,
} from '@imi/core';
import { AdminServer } from './admin.js';
import type { IntermediaryMetrics } from './metrics.js';
import { AppLink } from './app-link.js';
import { Admission, TokenBucket, type AdmissionRefusal } from './admission.js';
import { Connection, type ConnectionOwner, type DelayedLine, type PendingInput } from './connection.js';
import { createHooks, type AppInfo, type IntermediaryHooks, type Session } from './hooks.js';
import { resolveOptions, type IntermediaryOptions, type ResolvedOptions } from './options.js';
import { AppDownNoticePlugin, IdleTimeoutPlugin, WelcomeBannerPlugin } from './plugins.js';
import { Fifo } from './queue.js';
import { closeServer, listenOn } from './socket-transport.js';
import { createTransport, isTransport, type Transport, type TransportAddress, type UserChannel } from './transport.js';

/** The ports the intermediary listens on (the real ones when 0 was asked). */
export interface ListeningPorts {
  /** Where users connect. */
  externalPort: number;
  /** Where the app connects. */
  clientPort: number;
  /** The admin HTTP listener's port, when `adminPort` is set. */
  adminPort?: number;
  /**
   * Every user listener, in order: the plain TCP one on `externalPort`
   * first, then those of {@link IntermediaryOptions.listeners}.
   */
  listeners: TransportAddress[];
}

/** The queues of one live session (the admin API's `GET /sessions`). */
export interface SessionQueues {
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet. */
  unacked: number;
}

/** Why input was dropped, as counted in {@link IntermediaryStats.dropped}. */
export type DropReason = 'queueFull' | 'appDownDrop' | 'userGone' | 'unackedOverflow' | 'rateLimited';

/** A snapshot of the intermediary's numbers (the admin API and metrics read the same). */
export interface IntermediaryStats {
  /** Live user sessions. */
  sessions: number;
  /** Live user sessions by transport (`tcp`, `telnet`, …). */
  sessionsByTransport: Record<string, number>;
  /** Whether an app is connected and synced. */
  appConnected: boolean;
  /** The connected app's name, if it gave one. */
  appName: string | undefined;
  /** App connections accepted since start. */
  appConnects: number;
  /** App connections lost since start (crash, close, heartbeat, replaced). */
  appDisconnects: number;
  /** Apps replaced under `appPolicy: "replace"`. */
  appReplacements: number;
  /** Users connected since start. */
  sessionsOpened: number;
  /** Lines received from users. */
  inputLines: number;
  /** Bytes of lines received from users (end of line excluded). */
  inputBytes: number;
  /** Texts written to users. */
  outputWrites: number;
  /** Bytes written to users. */
  outputBytes: number;
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet (including those kept for redelivery). */
  unacked: number;
  /** Inputs delivered again to a new app since start. */
  redelivered: number;
  /** App messages waiting for `dep_txns`. */
  heldMessages: number;
  /** Dropped inputs by reason. */
  dropped: Record<DropReason, number>;
  /** Users refused by a connection limit, by limit. */
  refused: Record<AdmissionRefusal, number>;
  /** Reported errors by code. */
  errors: Record<ImiErrorCode, number>;
  /** Limit hits by option name. */
  limits: Record<string, number>;
  /** How long the last resync took, in ms (connect of the app to `synced` written). */
  lastResyncMs: number | undefined;
}

/** Events for code that only observes (logging, metrics). Hooks are for code that changes things. */
export interface IntermediaryEvents {
  /** Both ports are listening. */
  listening: (ports: ListeningPorts) => void;
  /** A user was let in (after the `connect` hook). */
  sessionOpen: (session: Session) => void;
  /** A user's connection ended. */
  sessionClose: (session: Session, reason: string) => void;
  /** A user's line (after the `input` hook), before it is delivered or queued. */
  input: (session: Session, line: string) => void;
  /** The app's `output` for a user was written (after the `output` hook). Used for the round-trip latency metric. */
  appOutput: (session: Session, text: string) => void;
  /** An app was accepted. */
  appConnect: (app: AppInfo) => void;
  /** An app was resynced: `count` users announced, in `durationMs`. */
  synced: (app: AppInfo, count: number, durationMs: number) => void;
  /** The app's connection ended. */
  appDisconnect: (app: AppInfo, reason: string) => void;
  /** Something was reported (bad frame, limit, plugin error, …); it has been logged and counted. */
  error: (error: ImiError) => void;
  /** `close()` finished. */
  close: () => void;
}

/** Most departed users remembered for an app that reconnects (see docs/guarantees.md). */
const MAX_DEPARTED_REMEMBERED = 10_000;
/** Params whose own handling reports an unknown `data.id`, so their `updates` must not report it again. */
const REPORTS_ITS_OWN_UNKNOWN_ID: ReadonlySet<string> = new Set(['output', 'disconnect', 'state', 'telnet', 'gmcp']);
/** Log lines per code per second before the rest are only counted. */
const LOG_LINES_PER_CODE_PER_SECOND = 20;

interface Departed {
  id: string;
  reason: string;
}

/**
 * The intermediary. Create it, `listen()`, and `close()` to stop.
 *
 * ```ts
 * const imi = new Intermediary({ externalPort: 6715, clientPort: 9000 });
 * const ports = await imi.listen();
 * ```
 */
export class Intermediary extends EventEmitter<IntermediaryEvents> {
  /** The lifecycle hooks; plugins tap them. Frozen: the set of hooks never changes. */
  readonly hooks: IntermediaryHooks;
  /** The options with defaults filled in. */
  readonly options: Readonly<ResolvedOptions>;
  /** The logger (silent unless one was given). */
  readonly logger: Logger;
  /** Live sessions and their state. */
  readonly registry = new SessionRegistry();

  private readonly connections = new Map<string, Connection>();
  /** Every user socket not closed yet: admitted, waiting for the `connect` hook, or refused and closing. */
  private readonly openConnections = new Set<Connection>();
  private transports: Transport[] = [];
  private appServer: Server | undefined;
  private app: AppLink | undefined;
  private readonly handshaking = new Set<AppLink>();
  private readonly allAppLinks = new Set<AppLink>();
  private appConnectionCounter = 0;
  private seq = 0;
  /** Inputs sent to an acking app, in seq order, until acked. */
  private unacked = new Fifo<PendingInput>();
  private unackedLive = 0;
  /** Unacked inputs of a lost app, waiting for the next one. */
  private toRedeliver = new Fifo<PendingInput>();
  private queuedBytesTotal = 0;
  private queuedLinesTotal = 0;
  private departed: Departed[] = [];
  private lastAppInstance: string | undefined;
  private lastAppConnectionId = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private depTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private admin: AdminServer | undefined;
  private readonly tokenDigest: Buffer | undefined;
  private readonly counters = {
    appConnects: 0,
    appDisconnects: 0,
    appReplacements: 0,
    sessionsOpened: 0,
    inputLines: 0,
    inputBytes: 0,
    redelivered: 0,
    lastResyncMs: undefined as number | undefined,
    dropped: { queueFull: 0, appDownDrop: 0, userGone: 0, unackedOverflow: 0, rateLimited: 0 } as Record<DropReason, number>,
    refused: { maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 0 } as Record<AdmissionRefusal, number>,
    errors: Object.fromEntries(ERROR_CODES.map((code) => [code, 0])) as Record<ImiErrorCode, number>,
    limits: {} as Record<string, number>,
  };
  private closedSessionsOutput = { writes: 0, bytes: 0 };
  private readonly logBudget = new Map<ImiErrorCode, { second: number; count: number; suppressed: number }>();
  private readonly connectionOwner: ConnectionOwner;
  private readonly admission: Admission;

  /**
   * @param options - every option has a default; see {@link IntermediaryOptions}
   * @throws ImiError `IMI_CONFIG` for impossible option values
   */
  constructor(options: IntermediaryOptions = {}) {
    super();
    this.options = Object.freeze(resolveOptions(options));
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.hooks = createHooks();
    this.tokenDigest = this.options.token === undefined ? undefined : digest(this.options.token);
    this.admission = new Admission({
      maxConnections: this.options.maxConnections,
      maxConnectionsPerIp: this.options.maxConnectionsPerIp,
      connectRatePerIp: this.options.connectRatePerIp,
    });
    this.connectionOwner = {
      onLine: (connection, line, truncated, bytes) => this.handleLine(connection, line, truncated, bytes),
      onConnectionClosed: (connection) => this.handleConnectionClosed(connection),
      transformOutput: (connection, text) => this.transformOutput(connection, text),
      onSlowReader: (connection) => {
        this.reportLimit('maxOutputBufferBytes', this.options.maxOutputBufferBytes, 'a user is not reading their output; disconnected', connection.id);
        connection.destroy('slow');
      },
      onTelnetChanged: (connection) => this.telnetChanged(connection),
      onGmcp: (connection, packageName, json) => this.handleGmcp(connection, packageName, json),
      onFault: (connection, error) => {
        if (error instanceof LimitError) this.reportLimit(error.limit, error.value, error.message, connection.id);
        else this.report(new ImiError(error.code, error.message, { sessionId: connection.id }));
      },
    };
    const builtIns = [];
    if (this.options.banner !== undefined) builtIns.push(new WelcomeBannerPlugin(this.options.banner));
    if (this.options.appDownNotice !== false) builtIns.push(new AppDownNoticePlugin(this.options.appDownNotice));
    if (this.options.idleTimeoutMs !== undefined) builtIns.push(new IdleTimeoutPlugin(this.options.idleTimeoutMs));
    for (const plugin of [...builtIns, ...(options.plugins ?? [])]) plugin.apply(this);
  }

  /** Whether an app is connected and has been resynced. */
  get appConnected(): boolean {
    return this.app !== undefined && this.app.phase === 'active';
  }

  /** The connected app, if any. */
  get currentApp(): AppInfo | undefined {
    return this.appConnected ? this.app : undefined;
  }

  /** The live sessions (let in by the `connect` hook). */
  sessions(): IterableIterator<Session> {
    return this.connections.values();
  }

  /** A live session by id. */
  session(id: string): Session | undefined {
    return this.connections.get(id);
  }

  /** The queue depths of a live session (for the admin API). */
  sessionQueues(id: string): SessionQueues | undefined {
    const connection = this.connections.get(id);
    if (connection === undefined) return undefined;
    return { queuedLines: connection.queued.length, queuedBytes: connection.queuedBytes, unacked: connection.unacked.length };
  }

  /** The metrics the admin listener serves (after `listen()`, when `adminPort` is set). */
  get metrics(): IntermediaryMetrics | undefined {
    return this.admin?.metrics;
  }

  /**
   * Binds every port: the users' (`externalPort` and every listener of
   * `listeners`), the app's, and the admin one when asked. Resolves with the
   * real ports once all listen.
   *
   * @throws the listen error (e.g. `EADDRINUSE`, an unreadable TLS certificate); nothing stays bound then
   */
  async listen(): Promise<ListeningPorts> {
    if (this.closing) throw new ImiError('IMI_CLOSED', 'this intermediary was closed');
    const context = {
      host: this.options.host,
      onListenerError: (error: Error) => this.logger.error({ err: error }, 'user listener error'),
    };
    const appServer = net.createServer({ noDelay: true }, (socket) => this.acceptApp(socket));
    appServer.on('error', (error) => this.logger.error({ err: error }, 'app listener error'));
    const { adminPort, adminHost } = this.options;
    const adminToken = this.options.adminToken ?? this.options.token;
    const admin = adminPort === undefined ? undefined : new AdminServer(this, { port: adminPort, host: adminHost, token: adminToken });
    const transports: Transport[] = [];
    const listeners: TransportAddress[] = [];
    const accept = (channel: UserChannel): void => this.acceptUser(channel);
    try {
      const specs = [{ kind: 'tcp' as const, port: this.options.externalPort }, ...this.options.listeners];
      for (const spec of specs) {
        const transport = isTransport(spec) ? spec : await createTransport(spec, context);
        transports.push(transport);
        listeners.push(await transport.listen(accept, this.options.backlog));
      }
      await listenOn(appServer, this.options.clientPort, this.options.clientHost, this.options.backlog);
      await admin?.listen();
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
    this.depTimer = setInterval(() => {
      this.expireHeldMessages();
      this.admission.sweep(Date.now());
    }, sweepMs);
    this.depTimer.unref();
    this.logger.info({ ...ports, listeners: listeners.slice(1), host: this.options.host, clientHost: this.options.clientHost, ...(admin ? { adminHost } : {}) }, 'listening');
    this.emit('listening', ports);
    return ports;
  }

  /** Sends text to every live user (admin broadcast; the app uses the `broadcast` message). */
  broadcast(text: string, except?: ReadonlySet<string>): number {
    let count = 0;
    for (const connection of this.connections.values()) {
      if (except?.has(connection.id)) continue;
      connection.write(text);
      count++;
    }
    return count;
  }

  /** A snapshot of the counters. */
  stats(): IntermediaryStats {
    let outputWrites = this.closedSessionsOutput.writes;
    let outputBytes = this.closedSessionsOutput.bytes;
    const sessionsByTransport: Record<string, number> = {};
    for (const connection of this.connections.values()) {
      outputWrites += connection.record.counters.writesOut;
      outputBytes += connection.record.counters.bytesOut;
      sessionsByTransport[connection.transport] = (sessionsByTransport[connection.transport] ?? 0) + 1;
    }
    return {
      sessions: this.connections.size,
      sessionsByTransport,
      appConnected: this.appConnected,
      appName: this.appConnected ? this.app?.name : undefined,
      appConnects: this.counters.appConnects,
      appDisconnects: this.counters.appDisconnects,
      appReplacements: this.counters.appReplacements,
      sessionsOpened: this.counters.sessionsOpened,
      inputLines: this.counters.inputLines,
      inputBytes: this.counters.inputBytes,
      outputWrites,
      outputBytes,
      queuedLines: this.queuedLinesTotal,
      queuedBytes: this.queuedBytesTotal,
      unacked: this.unackedLive,
      redelivered: this.counters.redelivered,
      heldMessages: this.app?.deps.held ?? 0,
      dropped: { ...this.counters.dropped },
      refused: { ...this.counters.refused },
      errors: { ...this.counters.errors },
      limits: { ...this.counters.limits },
      lastResyncMs: this.counters.lastResyncMs,
    };
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
    this.logger.info({ reason }, 'shutting down');
    const serversClosed = Promise.all([...this.transports.map((transport) => transport.close()), closeServer(this.appServer), this.admin?.close()]);
    try {
      await this.hooks.shutdown.promise(reason);
    } catch (error) {
      this.reportPluginError('shutdown', error);
    }
    const socketsClosed: Promise<void>[] = [];
    for (const link of this.allAppLinks) {
      socketsClosed.push(link.closed);
      if (link === this.app && link.phase === 'active') link.end(this.frame({ param: 'shutdown', data: { reason } }));
      else link.end();
    }
    // Every user socket, not only admitted users: one still waiting for the
    // connect hook (or refused and closing) would keep the user port open.
    for (const connection of [...this.openConnections]) {
      socketsClosed.push(connection.closed);
      connection.close(this.options.shutdownNotice === false ? undefined : this.options.shutdownNotice, 'shutdown');
      connection.resume();
    }
    let forceTimer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      forceTimer = setTimeout(() => {
        for (const link of this.allAppLinks) link.destroy();
        for (const connection of this.openConnections) connection.destroy('shutdown');
        resolve();
      }, this.options.closeTimeoutMs);
    });
    await Promise.race([Promise.all(socketsClosed), forced]);
    clearTimeout(forceTimer);
    // Destroyed sockets report 'close' a tick later: let every user be
    // forgotten (and the disconnect hook run) before 'close' is emitted.
    await Promise.all(socketsClosed);
    await serversClosed;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.depTimer) clearInterval(this.depTimer);
    this.emit('close');
  }

  // ---------------------------------------------------------------- users

  private acceptUser(channel: UserChannel): void {
    if (this.closing) {
      channel.destroy();
      return;
    }
    const address = channel.remote.address;
    const limited = this.options.limitLoopback || !isLoopback(address);
    const refusal = this.admission.admit(address, Date.now(), limited);
    if (refusal !== undefined) {
      this.refuseUser(channel, refusal);
      return;
    }
    const record = this.registry.add({ transport: channel.transport, remote: channel.remote });
    const connection = new Connection(channel, record, this.connectionOwner, this.options.maxLineBytes, this.options.maxOutputBufferBytes);
    connection.admitted = true;
    if (limited) connection.inputBucket = new TokenBucket(this.options.inputRatePerSession, this.options.inputBurstPerSession, Date.now());
    this.openConnections.add(connection);
    this.counters.sessionsOpened++;
    const negotiation = connection.negotiation;
    if (!this.hooks.connect.isUsed() && negotiation === undefined) {
      this.admit(connection);
      return;
    }
    connection.pause();
    // A telnet user is announced once their client said who it is (bounded wait),
    // so the app and the connect taps see their window size and terminal type.
    const decided =
      negotiation === undefined
        ? this.hooks.connect.promise(connection)
        : negotiation.then(() => (connection.closing || !this.hooks.connect.isUsed() ? undefined : this.hooks.connect.promise(connection)));
    decided.then(
      (refusal) => {
        if (connection.closing) return;
        if (refusal) {
          this.logger.info({ session: connection.id }, 'user refused by a connect tap');
          connection.close(refusal.message, 'refused');
          // Read again so the user's FIN is seen: a paused socket would stay
          // half-open until the safety timer, and hold up close().
          connection.resume();
          return;
        }
        this.admit(connection);
        connection.resume();
      },
      (error: unknown) => {
        // A broken plugin must not lock people out: report it and let the user in.
        this.reportPluginError('connect', error, connection.id);
        if (connection.closing) return;
        this.admit(connection);
        connection.resume();
      },
    );
  }

  private refuseUser(channel: UserChannel, refusal: AdmissionRefusal): void {
    const limit = this.options[refusal];
    const why = refusal === 'maxConnections' ? 'the server is full' : refusal === 'maxConnectionsPerIp' ? 'too many connections from your address' : 'connecting too fast';
    this.counters.refused[refusal]++;
    this.reportLimit(refusal, limit, `user from ${channel.remote.address || '?'} refused: ${why}`);
    // The channel is never attached: nothing is read from it, its errors are
    // ignored, and no telnet negotiation starts.
    if (this.options.refusedNotice === false) {
      channel.destroy();
      return;
    }
    channel.write(this.options.refusedNotice.replace('{reason}', why));
    channel.end();
    // A refused peer gets no more of our time than a short flush.
    setTimeout(() => channel.destroy(), 2_000).unref();
  }

  private admit(connection: Connection): void {
    connection.accepted = true;
    this.connections.set(connection.id, connection);
    this.logger.debug({ session: connection.id, remote: connection.remote }, 'user connected');
    this.emit('sessionOpen', connection);
    const app = this.app;
    if (app !== undefined && app.phase === 'active') {
      this.announce(app, connection, false);
    }
  }

  private announce(app: AppLink, connection: Connection, resumed: boolean): void {
    connection.announcedTo = app.connectionId;
    const data: { id: string; transport: string; remote: object; connectedAt: number; resumed: boolean; state: JsonObject; telnet?: object } = {
      id: connection.id,
      transport: connection.transport,
      remote: connection.remote,
      connectedAt: connection.connectedAt,
      resumed,
      state: connection.record.state,
    };
    const telnet = connection.telnet;
    if (telnet !== undefined) {
      data.telnet = telnet;
      connection.telnetSent = JSON.stringify(telnet);
    }
    app.send(this.eventFrame(app, 'connect', data));
  }

  /** A telnet user's negotiated options changed: the app hears it once per tick, if it knows the user. */
  private telnetChanged(connection: Connection): void {
    if (!connection.accepted || connection.telnetNotifyScheduled) return;
    connection.telnetNotifyScheduled = true;
    setImmediate(() => {
      connection.telnetNotifyScheduled = false;
      const app = this.app;
      const telnet = connection.telnet;
      if (connection.closing || telnet === undefined || app === undefined || app.phase !== 'active' || connection.announcedTo !== app.connectionId) return;
      const json = JSON.stringify(telnet);
      if (json === connection.telnetSent) return;
      connection.telnetSent = json;
      app.send(this.frame({ param: 'telnet', data: { id: connection.id, telnet } }));
    });
  }

  /**
   * A GMCP message from a telnet user: relayed to the app as `gmcp`. Not
   * queued while no app is connected (what a restarted app needs, Core.Hello
   * and Core.Supports, is in `connect.data.telnet`); counted against the
   * user's input rate.
   */
  private handleGmcp(connection: Connection, packageName: string, json: string): void {
    const app = this.app;
    if (!connection.accepted || app === undefined || app.phase !== 'active') {
      this.logger.debug({ session: connection.id, package: packageName }, 'GMCP message while no app is connected: dropped');
      return;
    }
    const bucket = connection.inputBucket;
    if (bucket !== undefined && !bucket.take(Date.now())) {
      this.counters.dropped.rateLimited++;
      this.reportLimit('inputRatePerSession', this.options.inputRatePerSession, 'a user sent GMCP faster than the input rate; a message was dropped', connection.id);
      return;
    }
    const data: { id: string; package: string; value?: JsonValue } = { id: connection.id, package: packageName };
    if (json !== '') {
      try {
        data.value = JSON.parse(json) as JsonValue;
      } catch {
        this.logger.debug({ session: connection.id, package: packageName }, 'GMCP message with a payload that is not JSON: dropped');
        return;
      }
    }
    app.send(this.frame({ param: 'gmcp', data }));
  }

  private handleLine(connection: Connection, line: string, truncated: boolean, bytes: number): void {
    const bucket = connection.inputBucket;
    if (bucket !== undefined && (connection.delayedLines.length > 0 || !bucket.take(Date.now()))) {
      this.delayLine(connection, { line, truncated, bytes });
      return;
    }
    this.processLine(connection, line, truncated, bytes);
  }

  /** Holds a line back (input rate), pausing the user's reading so TCP slows them down. */
  private delayLine(connection: Connection, delayed: DelayedLine): void {
    if (connection.delayedLines.length >= this.options.maxDelayedLinesPerSession) {
      this.counters.dropped.rateLimited++;
      this.reportLimit('inputRatePerSession', this.options.inputRatePerSession, 'a user typed faster than the input rate; a line was dropped', connection.id);
      if (!connection.toldRateLimit) {
        connection.toldRateLimit = true;
        if (this.options.rateLimitNotice !== false) connection.write(this.options.rateLimitNotice);
      }
      return;
    }
    connection.delayedLines.push(delayed);
    if (connection.delayedLines.length === 1) {
      connection.pause();
      this.scheduleDelayed(connection);
    }
  }

  private scheduleDelayed(connection: Connection): void {
    const waitMs = connection.inputBucket?.waitMs(Date.now()) ?? 0;
    connection.delayTimer = setTimeout(() => this.releaseDelayed(connection), Math.max(1, waitMs));
  }

  private releaseDelayed(connection: Connection): void {
    connection.delayTimer = undefined;
    if (connection.closing) return;
    const bucket = connection.inputBucket!;
    while (connection.delayedLines.length > 0 && bucket.take(Date.now())) {
      const next = connection.delayedLines.shift()!;
      this.processLine(connection, next.line, next.truncated, next.bytes);
      if (connection.closing) return;
    }
    if (connection.delayedLines.length > 0) {
      this.scheduleDelayed(connection);
    } else {
      connection.toldRateLimit = false;
      if (connection.accepted) connection.resume();
    }
  }

  private processLine(connection: Connection, line: string, truncated: boolean, bytes: number): void {
    connection.lastInputAt = Date.now();
    connection.record.counters.linesIn++;
    this.counters.inputLines++;
    this.counters.inputBytes += bytes;
    if (truncated) {
      this.reportLimit('maxLineBytes', this.options.maxLineBytes, `a line of ${bytes} bytes was cut to maxLineBytes`, connection.id);
      if (this.options.lineTooLongNotice !== false) {
        connection.write(this.options.lineTooLongNotice.replace('{limit}', String(this.options.maxLineBytes)));
      }
    }
    let value: string | false = line;
    if (this.hooks.input.isUsed()) {
      try {
        value = this.hooks.input.call(line, connection);
      } catch (error) {
        this.reportPluginError('input', error, connection.id);
        value = line;
      }
      if (value === false || connection.closing) return;
      if (typeof value !== 'string') value = line;
    }
    this.emit('input', connection, value);
    const app = this.app;
    const pending: PendingInput = {
      connection,
      value,
      txnId: randomUUID(),
      bytes: Buffer.byteLength(value),
      seq: 0,
      sentBefore: false,
      dropped: false,
    };
    if (app !== undefined && app.phase === 'active') {
      this.deliverInput(app, pending);
      return;
    }
    if (this.hooks.noClient.isUsed()) {
      try {
        this.hooks.noClient.call(connection, value);
      } catch (error) {
        this.reportPluginError('noClient', error, connection.id);
      }
    }
    if (this.options.whileAppDown === 'drop') {
      this.counters.dropped.appDownDrop++;
      return;
    }
    this.enqueue(pending);
  }

  private enqueue(pending: PendingInput): void {
    const connection = pending.connection;
    const options = this.options;
    connection.queued.push(pending);
    connection.queuedBytes += pending.bytes;
    this.queuedBytesTotal += pending.bytes;
    this.queuedLinesTotal++;
    let droppedAny = false;
    while (
      connection.queued.length > 0 &&
      (connection.queued.length > options.maxQueuedLinesPerSession ||
        connection.queuedBytes > options.maxQueuedBytesPerSession ||
        this.queuedBytesTotal > options.maxQueuedBytesTotal)
    ) {
      const which =
        connection.queued.length > options.maxQueuedLinesPerSession
          ? 'maxQueuedLinesPerSession'
          : connection.queuedBytes > options.maxQueuedBytesPerSession
            ? 'maxQueuedBytesPerSession'
            : 'maxQueuedBytesTotal';
      const oldest = connection.queued.shift()!;
      connection.queuedBytes -= oldest.bytes;
      this.queuedBytesTotal -= oldest.bytes;
      this.queuedLinesTotal--;
      this.counters.dropped.queueFull++;
      if (!droppedAny) {
        droppedAny = true;
        this.reportLimit(which, options[which], 'input queued while no app is connected overflowed; the oldest line was dropped', connection.id);
      }
    }
    if (droppedAny && !connection.toldQueueFull) {
      connection.toldQueueFull = true;
      if (options.queueFullNotice !== false) connection.write(options.queueFullNotice);
    }
  }

  private deliverInput(app: AppLink, pending: PendingInput): void {
    // Built as a string template: byte for byte what encodeFrame() gives for
    // {param, data: {id, value}, txn_id, seq?, redelivered?}, without the
    // object (session ids and txn ids are UUIDs: no escaping needed).
    let frame = `{"param":"input","data":{"id":"${pending.connection.id}","value":${JSON.stringify(pending.value)}},"txn_id":"${pending.txnId}"`;
    if (app.acks) {
      pending.seq = ++this.seq;
      frame += `,"seq":${pending.seq}`;
      this.trackUnacked(pending);
    }
    if (pending.sentBefore) {
      frame += ',"redelivered":true';
      this.counters.redelivered++;
    }
    pending.sentBefore = true;
    app.send(frame + '}\n');
  }

  private trackUnacked(pending: PendingInput): void {
    const connection = pending.connection;
    this.unacked.push(pending);
    this.unackedLive++;
    connection.unacked.push(pending);
    connection.unackedBytes += pending.bytes;
    // Bounded like the queue: an app that never acks cannot grow memory.
    while (
      connection.unacked.length > this.options.maxQueuedLinesPerSession ||
      connection.unackedBytes > this.options.maxQueuedBytesPerSession
    ) {
      const limit = connection.unacked.length > this.options.maxQueuedLinesPerSession ? 'maxQueuedLinesPerSession' : 'maxQueuedBytesPerSession';
      const oldest = connection.unacked.shift()!;
      connection.unackedBytes -= oldest.bytes;
      this.dropUnacked(oldest, 'unackedOverflow', limit);
    }
    // The bound is on live inputs: entries dropped above (or for users who
    // left) still sit in the global queue until they reach its head.
    while (this.unackedLive > this.options.maxUnackedTotal) {
      const oldest = this.unacked.shift()!;
      if (!oldest.dropped) {
        const owner = oldest.connection;
        if (owner.unacked.peek() === oldest) {
          owner.unacked.shift();
          owner.unackedBytes -= oldest.bytes;
        }
        this.dropUnacked(oldest, 'unackedOverflow', 'maxUnackedTotal');
      }
    }
    // Those dead entries must not pile up behind a live head while the app
    // never acks: sweep them once they outnumber the bound (amortised O(1)).
    if (this.unacked.length > 2 * this.options.maxUnackedTotal) {
      const live = new Fifo<PendingInput>();
      for (const entry of this.unacked) if (!entry.dropped) live.push(entry);
      this.unacked = live;
    }
  }

  /** @param limit - for `unackedOverflow`: the bound that was hit, as counted in `stats().limits` */
  private dropUnacked(pending: PendingInput, reason: DropReason, limit?: 'maxQueuedLinesPerSession' | 'maxQueuedBytesPerSession' | 'maxUnackedTotal'): void {
    if (pending.dropped) return;
    pending.dropped = true;
    this.unackedLive--;
    this.counters.dropped[reason]++;
    if (limit !== undefined) {
      this.reportLimit(limit, this.options[limit], 'the app is not acking; the oldest unacked input will not be redelivered', pending.connection.id);
    }
  }

  private acknowledge(seq: number): void {
    for (;;) {
      const oldest = this.unacked.peek();
      if (oldest === undefined || oldest.seq > seq) return;
      this.unacked.shift();
      if (oldest.dropped) continue;
      oldest.dropped = true;
      this.unackedLive--;
      const owner = oldest.connection;
      if (owner.unacked.peek() === oldest) {
        owner.unacked.shift();
        owner.unackedBytes -= oldest.bytes;
      }
    }
  }

  private transformOutput(connection: Connection, text: string): string {
    if (!this.hooks.output.isUsed()) return text;
    try {
      const result = this.hooks.output.call(text, connection);
      return typeof result === 'string' ? result : text;
    } catch (error) {
      this.reportPluginError('output', error, connection.id);
      return text;
    }
  }

  private handleConnectionClosed(connection: Connection): void {
    if (connection.admitted) {
      connection.admitted = false;
      this.admission.release(connection.remote.address, connection.inputBucket !== undefined);
    }
    if (connection.delayTimer !== undefined) clearTimeout(connection.delayTimer);
    connection.delayedLines.clear();
    this.openConnections.delete(connection);
    if (!this.registry.has(connection.id)) return;
    const reason = connection.closeReason;
    this.registry.remove(connection.id, reason);
    const counters = connection.record.counters;
    this.closedSessionsOutput.writes += counters.writesOut;
    this.closedSessionsOutput.bytes += counters.bytesOut;
    // Their queued and unacked input goes with them: no app will hear of this user again.
    for (const pending of connection.queued) {
      this.queuedBytesTotal -= pending.bytes;
      this.queuedLinesTotal--;
      this.counters.dropped.userGone++;
    }
    connection.queued.clear();
    connection.queuedBytes = 0;
    const appHasThem = this.app !== undefined && this.app.phase === 'active';
    for (const pending of connection.unacked) {
      // With an app up, it has them; otherwise they were kept for a next app that will never hear of this user.
      if (appHasThem) {
        if (!pending.dropped) {
          pending.dropped = true;
          this.unackedLive--;
        }
      } else {
        this.dropUnacked(pending, 'userGone');
      }
    }
    connection.unacked.clear();
    connection.unackedBytes = 0;
    if (!connection.accepted) {
      connection.markClosed();
      return;
    }
    this.connections.delete(connection.id);
    this.logger.debug({ session: connection.id, reason }, 'user disconnected');
    try {
      this.hooks.disconnect.call(connection, reason);
    } catch (error) {
      this.reportPluginError('disconnect', error, connection.id);
    }
    this.emit('sessionClose', connection, reason);
    const app = this.app;
    if (app !== undefined && app.phase === 'active') {
      app.send(this.eventFrame(app, 'disconnect', { id: connection.id, reason }));
    } else if (connection.announcedTo !== 0 && connection.announcedTo === this.lastAppConnectionId) {
      this.departed.push({ id: connection.id, reason });
      if (this.departed.length > MAX_DEPARTED_REMEMBERED) this.departed.shift();
    }
    connection.markClosed();
  }

  // ----------------------------------------------------------------- apps

  private acceptApp(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const link = new AppLink(
      ++this.appConnectionCounter,
      socket,
      {
        maxFrameBytes: this.options.maxFrameBytes,
        maxBufferBytes: this.options.maxAppBufferBytes,
        processedTxnMemory: this.options.processedTxnMemory,
        maxHeldMessages: this.options.maxHeldMessages,
      },
      {
        onMessage: (l, message) => this.handleAppMessage(l, message),
        onProtocolError: (l, error) => this.rejectAppMessage(l, error),
        onClose: (l, hadError) => this.handleAppClosed(l, hadError),
        onOverflow: (l) => {
          this.reportLimit('maxAppBufferBytes', this.options.maxAppBufferBytes, 'the app is not reading; treated as hung and dropped');
          l.destroy();
        },
      },
    );
    this.allAppLinks.add(link);
    this.handshaking.add(link);
    this.logger.info({ app: link.connectionId, remote: link.remote }, 'app connecting');
    if (this.tokenDigest !== undefined) {
      link.handshakeTimer = setTimeout(() => {
        if (link.phase !== 'handshake') return;
        this.refuseApp(link, 'IMI_AUTH', `no valid hello within helloTimeoutMs (${this.options.helloTimeoutMs} ms)`);
      }, this.options.helloTimeoutMs);
    } else {
      link.handshakeTimer = setTimeout(() => {
        if (link.phase === 'handshake') this.activateApp(link);
      }, this.options.legacyHelloWaitMs);
    }
  }

  private refuseApp(link: AppLink, code: ImiErrorCode, message: string): void {
    this.report(new ImiError(code, message));
    this.handshaking.delete(link);
    link.end(this.frame({ param: 'error', data: { code, message } }));
    link.retire();
  }

  private handleHello(link: AppLink, message: Extract<AppMessage, { param: 'hello' }>): void {
    const data = message.data;
    if (this.tokenDigest !== undefined) {
      const given = typeof data.token === 'string' ? digest(data.token) : undefined;
      if (given === undefined || !timingSafeEqual(given, this.tokenDigest)) {
        this.refuseApp(link, 'IMI_AUTH', data.token === undefined ? 'a token is required in hello' : 'wrong token');
        return;
      }
    }
    link.name = data.name;
    link.acks = data.acks === true;
    const instance = (data as { instance?: unknown }).instance;
    link.instance = typeof instance === 'string' ? instance : undefined;
    this.activateApp(link);
  }

  private activateApp(link: AppLink): void {
    if (link.handshakeTimer) clearTimeout(link.handshakeTimer);
    link.handshakeTimer = undefined;
    this.handshaking.delete(link);
    const previous = this.app;
    if (previous !== undefined && previous.phase === 'active' && previous !== link) {
      if (this.options.appPolicy === 'refuse') {
        this.report(new ImiError('IMI_APP_BUSY', 'another app is connected (appPolicy "refuse")'));
        link.end(this.frame({ param: 'error', data: { code: 'IMI_APP_BUSY', message: 'another app is connected; start the intermediary with appPolicy "replace" to hand over' } }));
        link.retire();
        return;
      }
    }
    const started = performance.now();
    link.phase = 'active';
    this.app = link;
    this.counters.appConnects++;
    this.logger.info({ app: link.connectionId, name: link.name, acks: link.acks }, 'app connected');
    try {
      this.hooks.clientConnect.call(link);
    } catch (error) {
      this.reportPluginError('clientConnect', error);
    }
    this.emit('appConnect', link);

    // Users who left while no app was connected: only an app that had been
    // told about them (the same process reconnecting) needs to hear it.
    const sameApp = link.instance === undefined || link.instance === this.lastAppInstance;
    if (sameApp) {
      for (const gone of this.departed) link.send(this.eventFrame(link, 'disconnect', gone));
    }
    this.departed = [];

    let count = 0;
    for (const connection of this.connections.values()) {
      this.announce(link, connection, true);
      count++;
    }
    link.send(this.frame({ param: 'synced', data: { count } }));
    const durationMs = performance.now() - started;
    this.counters.lastResyncMs = durationMs;
    this.logger.info({ app: link.connectionId, count, durationMs }, 'app resynced');
    this.emit('synced', link, count, durationMs);

    if (previous !== undefined && previous !== link && previous.phase === 'active') {
      // Handover: the old app stops here; whatever it did not ack goes to the new one.
      // Write the new app's resync first: end() below writes to the old app at
      // once, and it must not hear it is replaced before its successor is synced.
      link.flush();
      this.counters.appReplacements++;
      previous.retire();
      previous.end(this.frame({ param: 'error', data: { code: 'IMI_REPLACED', message: 'a newer app connected (appPolicy "replace")' } }));
      this.report(new ImiError('IMI_REPLACED', `app ${previous.connectionId} replaced by app ${link.connectionId}`), 'info');
      this.appGone(previous, 'replaced');
    }

    this.lastAppInstance = link.instance;
    this.lastAppConnectionId = link.connectionId;
    this.flushRedeliveries(link);
    this.flushQueues(link);
    this.startHeartbeat();
  }

  private flushRedeliveries(link: AppLink): void {
    const list = this.toRedeliver;
    this.toRedeliver = new Fifo();
    for (const pending of list) {
      if (pending.dropped) continue;
      const owner = pending.connection;
      // Per-user order follows seq order, so it is the head of its user's list.
      if (owner.unacked.peek() === pending) {
        owner.unacked.shift();
        owner.unackedBytes -= pending.bytes;
      }
      this.unackedLive--;
      this.deliverInput(link, pending);
    }
  }

  private flushQueues(link: AppLink): void {
    for (const connection of this.connections.values()) {
      connection.toldQueueFull = false;
      if (connection.queued.length === 0) continue;
      const queued = [...connection.queued];
      connection.queued.clear();
      this.queuedBytesTotal -= connection.queuedBytes;
      this.queuedLinesTotal -= queued.length;
      connection.queuedBytes = 0;
      for (const pending of queued) this.deliverInput(link, pending);
    }
  }

  /** Moves the unacked inputs of a lost app aside for the next one. */
  private appGone(link: AppLink, reason: string): void {
    this.counters.appDisconnects++;
    this.logger.warn({ app: link.connectionId, name: link.name, reason }, 'app disconnected');
    if (link.acks) {
      // Everything it did not ack waits, in seq order, for the next app. The
      // entries stay in their users' lists so a user who leaves meanwhile
      // takes them along.
      for (const pending of this.unacked) {
        if (!pending.dropped) this.toRedeliver.push(pending);
      }
      this.unacked = new Fifo();
    }
    // Messages still waiting for dep_txns were the app's intent: do them now.
    for (const message of link.deps.drain()) this.processAppMessage(link, message, true);
    try {
      this.hooks.clientDisconnect.call(link, reason);
    } catch (error) {
      this.reportPluginError('clientDisconnect', error);
    }
    this.emit('appDisconnect', link, reason);
  }

  private handleAppClosed(link: AppLink, hadError: boolean): void {
    this.allAppLinks.delete(link);
    this.handshaking.delete(link);
    if (this.app !== link) return;
    this.app = undefined;
    this.stopHeartbeat();
    if (!this.closing) this.appGone(link, hadError ? 'error' : 'closed');
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const interval = this.options.heartbeatIntervalMs;
    if (interval === 0) return;
    this.heartbeatTimer = setInterval(() => {
      const app = this.app;
      if (app === undefined || app.phase !== 'active') return;
      const silentMs = Date.now() - app.lastHeardAt;
      if (silentMs > this.options.heartbeatTimeoutMs) {
        this.logger.warn({ app: app.connectionId, silentMs }, 'app missed its heartbeat; dropping it');
        this.app = undefined;
        this.stopHeartbeat();
        app.retire();
        app.destroy();
        this.appGone(app, 'timeout');
        return;
      }
      app.send(this.frame({ param: 'ping', data: { ts: Date.now() } }));
    }, interval);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private rejectAppMessage(link: AppLink, error: ProtocolError): void {
    this.report(error);
    if (link.phase === 'handshake' && this.tokenDigest !== undefined) {
      this.refuseApp(link, 'IMI_AUTH', 'the first frame must be a valid hello');
      return;
    }
    const data: { code: ImiErrorCode; message: string; txn_id?: string } = { code: error.code, message: error.message };
    if (error.txnId !== undefined) data.txn_id = error.txnId;
    link.send(this.frame({ param: 'error', data }));
  }

  private handleAppMessage(link: AppLink, message: AppMessage): void {
    if (link.phase === 'handshake') {
      if (message.param === 'hello') {
        this.handleHello(link, message);
        return;
      }
      if (this.tokenDigest !== undefined) {
        this.refuseApp(link, 'IMI_AUTH', `the first frame must be hello, got ${message.param}`);
        return;
      }
      // A legacy app that never says hello: it is active from its first frame.
      this.activateApp(link);
      if (this.app !== link) return;
    }
    if (link.phase !== 'active') return;
    let current: AppMessage | false = message;
    if (this.hooks.clientInput.isUsed()) {
      try {
        current = this.hooks.clientInput.call(message, link);
      } catch (error) {
        this.reportPluginError('clientInput', error);
        current = message;
      }
      if (current === false) return;
      if (typeof current !== 'object' || current === null) current = message;
    }
    const deps = current.dep_txns;
    if (deps !== undefined && deps !== null && deps.length > 0) {
      if (deps.length > this.options.maxDepTxns) {
        this.reportLimit('maxDepTxns', this.options.maxDepTxns, `a message listed ${deps.length} dep_txns; processed without waiting`);
        this.sendError(link, 'IMI_LIMIT', `dep_txns lists ${deps.length} ids, over maxDepTxns (${this.options.maxDepTxns}); processed without waiting`, current.txn_id);
      } else {
        const missing = link.deps.missing(deps);
        if (missing.length > 0) {
          if (link.deps.hold(current, missing, Date.now())) return;
          this.reportLimit('maxHeldMessages', this.options.maxHeldMessages, 'too many messages wait for dep_txns; processed without waiting');
          this.sendError(link, 'IMI_LIMIT', `over maxHeldMessages (${this.options.maxHeldMessages}) waiting for dep_txns; processed without waiting`, current.txn_id);
        }
      }
    }
    this.processAppMessage(link, current, false);
  }

  private processAppMessage(link: AppLink, message: AppMessage, linkGone: boolean): void {
    const data = message.data as Record<string, unknown> | undefined;
    const id = data !== undefined && typeof data['id'] === 'string' ? data['id'] : undefined;
    if (message.updates !== undefined && message.updates !== null) {
      if (id === undefined) {
        const error = new ImiError('IMI_BAD_MESSAGE', `${message.param}: updates need a data.id`, message.txn_id === undefined ? {} : { txnId: message.txn_id });
        this.report(error);
        this.sendError(link, 'IMI_BAD_MESSAGE', error.message, message.txn_id);
      } else if (this.connections.has(id)) {
        this.applyUpdates(link, id, message.updates, message.txn_id);
      } else if (!REPORTS_ITS_OWN_UNKNOWN_ID.has(message.param)) {
        // output, disconnect and state report the unknown id below: one message, one error.
        this.unknownId(link, id, message.txn_id);
      }
    }
    switch (message.param) {
      case 'output': {
        const connection = this.connections.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else {
          connection.write(message.data.value, message.data.prompt === true);
          this.emit('appOutput', connection, message.data.value);
        }
        break;
      }
      case 'disconnect': {
        if (message.data.id === undefined) break; // the Perl client's {"success":1}
        const connection = this.connections.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else connection.close(typeof message.data.value === 'string' ? message.data.value : undefined, 'kicked');
        break;
      }
      case 'broadcast': {
        const except = message.data.except;
        this.broadcast(message.data.value, except && except.length > 0 ? new Set(except) : undefined);
        break;
      }
      case 'state': {
        if (!this.connections.has(message.data.id)) this.unknownId(link, message.data.id, message.txn_id);
        break;
      }
      case 'ack':
        if (link.acks && !linkGone) this.acknowledge(message.data.seq);
        break;
      case 'telnet': {
        const connection = this.connections.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else if (typeof message.data.echo === 'boolean' && !connection.setEcho(message.data.echo)) {
          this.logger.debug({ session: connection.id, transport: connection.transport }, 'telnet echo asked for a user who is not on telnet: ignored');
        }
        break;
      }
      case 'gmcp': {
        const connection = this.connections.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else if (!connection.sendGmcp(message.data.package, message.data.value === undefined ? undefined : JSON.stringify(message.data.value))) {
          this.logger.debug({ session: connection.id, package: message.data.package }, 'GMCP for a user without GMCP: dropped');
        }
        break;
      }
      case 'hello':
      case 'pong':
      case 'null':
        break;
    }
    if (typeof message.ack === 'number' && link.acks && !linkGone) this.acknowledge(message.ack);
    if (typeof message.txn_id === 'string') {
      for (const released of link.deps.markProcessed(message.txn_id)) this.processAppMessage(link, released, linkGone);
    }
  }

  private applyUpdates(link: AppLink, id: string, updates: JsonObject, txnId: string | undefined): void {
    const result = this.registry.applyUpdates(id, updates);
    if (result === undefined) {
      this.unknownId(link, id, txnId);
    } else if (result instanceof LimitError) {
      this.countLimit(result);
      this.report(result);
      this.sendError(link, 'IMI_LIMIT', result.message, txnId);
    }
  }

  private unknownId(link: AppLink, id: string, txnId: string | undefined): void {
    const error = new ImiError('IMI_UNKNOWN_ID', `no connected user ${JSON.stringify(id.slice(0, 64))}; message dropped`, txnId === undefined ? {} : { txnId });
    this.report(error, 'debug');
    this.sendError(link, 'IMI_UNKNOWN_ID', error.message, txnId);
  }

  private sendError(link: AppLink, code: ImiErrorCode, message: string, txnId: string | undefined): void {
    if (!link.writable) return;
    const data: { code: ImiErrorCode; message: string; txn_id?: string } = { code, message };
    if (txnId !== undefined) data.txn_id = txnId;
    link.send(this.frame({ param: 'error', data }));
  }

  private expireHeldMessages(): void {
    const link = this.app;
    if (link === undefined) return;
    const expired = link.deps.expire(Date.now(), this.options.depWaitTimeoutMs);
    for (const message of expired) {
      const error = new ImiError('IMI_DEP_TIMEOUT', `waited over depWaitTimeoutMs (${this.options.depWaitTimeoutMs} ms) for dep_txns; processed anyway`, message.txn_id === undefined ? {} : { txnId: message.txn_id });
      this.report(error);
      this.sendError(link, 'IMI_DEP_TIMEOUT', error.message, message.txn_id);
      this.processAppMessage(link, message, false);
    }
  }

  // --------------------------------------------------------------- frames

  private frame(message: { param: string; data: object }): string {
    return encodeFrame({ ...message, txn_id: randomUUID() });
  }

  private eventFrame(app: AppLink, param: 'connect' | 'disconnect', data: object): string {
    const message: { param: string; data: object; txn_id: string; seq?: number } = { param, data, txn_id: randomUUID() };
    if (app.acks) message.seq = ++this.seq;
    return encodeFrame(message);
  }

  // ------------------------------------------------------------ reporting

  private reportPluginError(hook: string, error: unknown, sessionId?: string): void {
    const message = error instanceof Error ? error.message : String(error);
    this.report(new ImiError('IMI_PLUGIN', `a tap of the "${hook}" hook threw: ${message}`, sessionId === undefined ? { cause: error } : { cause: error, sessionId }));
  }

  private countLimit(error: LimitError): void {
    this.counters.limits[error.limit] = (this.counters.limits[error.limit] ?? 0) + 1;
  }

  private reportLimit(limit: string, value: number, message: string, sessionId?: string): void {
    const error = new LimitError(limit, value, `${limit} (${value}): ${message}`, sessionId === undefined ? {} : { sessionId });
    this.countLimit(error);
    this.report(error);
  }

  /**
   * Counts, logs (rate-limited per code) and emits an error. Never throws.
   *
   * @internal
   */
  report(error: ImiError, level: 'warn' | 'info' | 'debug' = 'warn'): void {
    this.counters.errors[error.code] = (this.counters.errors[error.code] ?? 0) + 1;
    const second = Math.floor(Date.now() / 1000);
    let budget = this.logBudget.get(error.code);
    if (budget === undefined || budget.second !== second) {
      if (budget !== undefined && budget.suppressed > 0) {
        this.logger.warn({ code: error.code, suppressed: budget.suppressed }, 'further reports of this code were only counted');
      }
      budget = { second, count: 0, suppressed: 0 };
      this.logBudget.set(error.code, budget);
    }
    if (budget.count < LOG_LINES_PER_CODE_PER_SECOND) {
      budget.count++;
      this.logger[level]({ code: error.code, session: error.sessionId, txn: error.txnId, err: error.cause }, error.message);
    } else {
      budget.suppressed++;
    }
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', error);
      } catch (listenerError) {
        this.logger.error({ err: listenerError }, 'an error listener threw');
      }
    }
  }
}

/** Whether an address is this host (IPv4 127/8, IPv6 ::1, or IPv4-mapped loopback). */
function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

function digest(token: string): Buffer {
  // Hash first so timingSafeEqual compares equal lengths and leaks no length.
  return createHash('sha256').update(token).digest();
}
