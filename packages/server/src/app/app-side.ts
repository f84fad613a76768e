/**
 * The app side: accepts app connections, authenticates them (`hello`,
 * token), applies the policy for a second app (`refuse` or `replace`),
 * resyncs a new app (departed users, every live user, `synced`, then the
 * kept input), watches its heartbeat, and notices when it is gone. What the
 * app sends is handled in `app-messages.ts`.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImiError, type AppMessage, type ImiErrorCode, type JsonObject, type SessionRegistry } from '@imi/core';
import type { InputEntry, InputLedger } from '../delivery/ledger.js';
import type { IntermediaryHooks } from '../hooks.js';
import type { ResolvedOptions } from '../options.js';
import type { EventSink, Reporter } from '../ops/reporter.js';
import type { AppPort } from '../users/app-port.js';
import type { Connection } from '../users/connection.js';
import type { ServerStatus } from '../users/telnet/mssp.js';
import { AppLink } from './app-link.js';
import { AppMessages, type AppHandshake } from './app-messages.js';
import { MESSAGE_OVERHEAD_BYTES, connectFrame, disconnectMessage, eventFrame, frame, inputFrame, inputMessage } from './frames.js';
import type { UserDirectory } from './user-directory.js';

/** Most departed users remembered for an app that reconnects (see docs/guarantees.md). */
const MAX_DEPARTED_REMEMBERED = 10_000;

interface Departed {
  id: string;
  reason: string;
}

/** What the app side is given by the intermediary. */
export interface AppSideParts {
  options: Readonly<ResolvedOptions>;
  logger: Logger;
  hooks: IntermediaryHooks;
  events: EventSink;
  reporter: Reporter;
  ledger: InputLedger;
  users: UserDirectory;
  registry: SessionRegistry;
  /** Where the app's `mssp` variables are kept. */
  serverStatus?: ServerStatus;
}

/** Every app connection, the current app, and what a next app must be told. */
export class AppSide implements AppPort, AppHandshake {
  /** Set once `close()` began: no app is accepted, a lost app is not mourned. */
  closing = false;
  /** Every app socket not closed yet. */
  readonly allLinks = new Set<AppLink>();
  private app: AppLink | undefined;
  private readonly handshaking = new Set<AppLink>();
  private connectionCounter = 0;
  private departed: Departed[] = [];
  private lastAppInstance: string | undefined;
  private lastAppConnectionId = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly tokenDigest: Buffer | undefined;
  private readonly parts: AppSideParts;
  private readonly messages: AppMessages;

  /** @param parts - what the intermediary shares with the app side */
  constructor(parts: AppSideParts) {
    this.parts = parts;
    this.tokenDigest = parts.options.token === undefined ? undefined : digest(parts.options.token);
    this.messages = new AppMessages(parts, this);
  }

  /** The app that is connected and synced, if any. */
  get current(): AppLink | undefined {
    const app = this.app;
    return app !== undefined && app.phase === 'active' ? app : undefined;
  }

  get readyApp(): number {
    const app = this.app;
    return app !== undefined && app.phase === 'active' ? app.connectionId : 0;
  }

  get readyAppAcks(): boolean {
    return this.current?.acks === true;
  }

  /** App messages waiting for `dep_txns`. */
  get heldMessages(): number {
    return this.app?.deps.held ?? 0;
  }

  /** Whether this link is the current app (synced or not). */
  isCurrent(link: AppLink): boolean {
    return this.app === link;
  }

  /** Whether an app needs the token in `hello`. */
  get needsToken(): boolean {
    return this.tokenDigest !== undefined;
  }

  // ------------------------------------------------------ what users cause

  announce(connection: Connection): void {
    const app = this.current;
    if (app !== undefined) this.announceTo(app, connection, false);
  }

  deliver(entry: InputEntry): void {
    const app = this.app!;
    const redelivered = entry.sentBefore;
    const seq = this.parts.ledger.sent(entry, app.acks);
    if (redelivered) this.parts.reporter.counters.redelivered++;
    if (app.takesMessages) app.sendMessage(inputMessage(entry.sessionId, entry.value, entry.txnId, seq, redelivered), MESSAGE_OVERHEAD_BYTES + entry.value.length);
    else app.send(inputFrame(entry.sessionId, entry.value, entry.txnId, seq, redelivered));
  }

  notify(param: 'telnet' | 'gmcp', data: object): void {
    this.current?.send(frame({ param, data }));
  }

  userLeft(connection: Connection, reason: string): void {
    const app = this.current;
    if (app !== undefined) {
      const seq = app.acks ? this.parts.ledger.nextSeq() : 0;
      if (app.takesMessages) app.sendMessage(disconnectMessage(connection.id, reason, seq), MESSAGE_OVERHEAD_BYTES);
      else app.send(eventFrame('disconnect', { id: connection.id, reason }, seq));
    } else if (connection.announcedTo !== 0 && connection.announcedTo === this.lastAppConnectionId) {
      this.departed.push({ id: connection.id, reason });
      if (this.departed.length > MAX_DEPARTED_REMEMBERED) this.departed.shift();
    }
  }

  /** Announces a restored user to the ready app (`resumed: true`), then hands it what is kept. */
  announceRestored(connection: Connection): void {
    const app = this.current;
    if (app === undefined) return;
    this.announceTo(app, connection, true);
    this.parts.ledger.drain((entry) => this.deliver(entry));
  }

  private announceTo(app: AppLink, connection: Connection, resumed: boolean): void {
    connection.announcedTo = app.connectionId;
    const telnet = connection.telnet;
    let telnetJson: string | undefined;
    if (telnet !== undefined) {
      telnetJson = JSON.stringify(telnet);
      connection.telnetSent = telnetJson;
    }
    // The frame is built from a template (see connectFrame): a resync writes one per live user.
    app.send(connectFrame(connection, resumed, connection.record.state, telnetJson, app.acks ? this.parts.ledger.nextSeq() : 0));
  }

  // ------------------------------------------------------------ lifecycle

  /** A new app socket on the app port. */
  accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const { options, reporter, logger } = this.parts;
    const link = new AppLink(
      ++this.connectionCounter,
      socket,
      {
        maxFrameBytes: options.maxFrameBytes,
        maxBufferBytes: options.maxAppBufferBytes,
        processedTxnMemory: options.processedTxnMemory,
        maxHeldMessages: options.maxHeldMessages,
        maxErrorFramesPerSecond: options.maxErrorFramesPerSecond,
        errorFrameBurst: options.errorFrameBurst,
        errorSummaryIntervalMs: options.errorSummaryIntervalMs,
      },
      {
        onMessage: (l, message) => this.messages.handle(l, message),
        onProtocolError: (l, error) => this.messages.reject(l, error),
        onClose: (l, hadError) => this.closed(l, hadError),
        onOverflow: (l) => {
          reporter.reportLimit('maxAppBufferBytes', options.maxAppBufferBytes, 'the app is not reading; treated as hung and dropped');
          l.destroy();
        },
      },
    );
    this.allLinks.add(link);
    this.handshaking.add(link);
    logger.info({ app: link.connectionId, remote: link.remote }, 'app connecting');
    if (this.tokenDigest !== undefined) {
      link.handshakeTimer = setTimeout(() => {
        if (link.phase !== 'handshake') return;
        this.refuse(link, 'IMI_AUTH', `no valid hello within helloTimeoutMs (${options.helloTimeoutMs} ms)`);
      }, options.helloTimeoutMs);
    } else {
      link.handshakeTimer = setTimeout(() => {
        if (link.phase === 'handshake') this.activate(link);
      }, options.legacyHelloWaitMs);
    }
    // Runs after the link's own listener, so a frame completed by this chunk has already been handled.
    let begun = false;
    const watchFirstFrame = (): void => {
      if (link.phase !== 'handshake') {
        socket.off('data', watchFirstFrame);
        return;
      }
      // A first frame already past maxFrameBytes is refused now, not at its last byte, which may come after the
      // timers above: a hello that grew too long must not be taken for a legacy app's frame (or a missing hello).
      if (link.midOversizedFrame) {
        socket.off('data', watchFirstFrame);
        this.refuse(link, 'IMI_BAD_FRAME', `hello refused: a first frame larger than maxFrameBytes (${options.maxFrameBytes} bytes)`);
        return;
      }
      // Without a token, a hello that comes in many segments (a long `known` list, a slow link) must not be taken for
      // a legacy app that sent nothing: once a first frame has begun, it decides, within helloTimeoutMs.
      if (begun || this.tokenDigest !== undefined || !link.midFrame) return;
      begun = true;
      if (link.handshakeTimer) clearTimeout(link.handshakeTimer);
      link.handshakeTimer = setTimeout(() => {
        if (link.phase === 'handshake') this.activate(link);
      }, options.helloTimeoutMs);
    };
    socket.on('data', watchFirstFrame);
  }

  /** Turns an app away with an `error` frame. */
  refuse(link: AppLink, code: ImiErrorCode, message: string): void {
    this.parts.reporter.report(new ImiError(code, message));
    this.handshaking.delete(link);
    link.end(frame({ param: 'error', data: { code, message } }));
    link.retire();
  }

  /** The app's `hello`: checks the token, then activates it. */
  hello(link: AppLink, message: Extract<AppMessage, { param: 'hello' }>): void {
    const data = message.data;
    if (this.tokenDigest !== undefined) {
      const given = typeof data.token === 'string' ? digest(data.token) : undefined;
      if (given === undefined || !timingSafeEqual(given, this.tokenDigest)) {
        this.refuse(link, 'IMI_AUTH', data.token === undefined ? 'a token is required in hello' : 'wrong token');
        return;
      }
    }
    link.name = data.name;
    link.acks = data.acks === true;
    const instance = (data as { instance?: unknown }).instance;
    link.instance = typeof instance === 'string' ? instance : undefined;
    if (data.known !== undefined) link.known = new Set(data.known);
    this.activate(link);
  }

  /** Makes an app the current one (policy permitting), resyncs it, and hands over from the previous one. */
  activate(link: AppLink): void {
    const { options, reporter, logger, hooks, events, ledger, users } = this.parts;
    const counters = reporter.counters;
    if (link.handshakeTimer) clearTimeout(link.handshakeTimer);
    link.handshakeTimer = undefined;
    this.handshaking.delete(link);
    const previous = this.app;
    if (previous !== undefined && previous.phase === 'active' && previous !== link) {
      if (options.appPolicy === 'refuse') {
        reporter.report(new ImiError('IMI_APP_BUSY', 'another app is connected (appPolicy "refuse")'));
        link.end(frame({ param: 'error', data: { code: 'IMI_APP_BUSY', message: 'another app is connected; start the intermediary with appPolicy "replace" to hand over' } }));
        link.retire();
        return;
      }
    }
    const started = performance.now();
    link.phase = 'active';
    this.app = link;
    counters.appConnects++;
    logger.info({ app: link.connectionId, name: link.name, acks: link.acks }, 'app connected');
    try {
      hooks.clientConnect.call(link);
    } catch (error) {
      reporter.reportPluginError('clientConnect', error);
    }
    events.emit('appConnect', link);

    // `known` is taken only from the process that was told about those users: another one (or a replaced app's
    // link, which may have been dead for a while) could not have heard what was written to it.
    const known = link.instance !== undefined && link.instance === this.lastAppInstance ? link.known : undefined;
    link.known = undefined;
    if (previous !== undefined && previous !== link && previous.phase === 'active') this.forgetTelnetSent(previous);
    if (known === undefined) {
      // Users who left while no app was connected: only an app that had been
      // told about them (the same process reconnecting) needs to hear it.
      const sameApp = link.instance === undefined || link.instance === this.lastAppInstance;
      if (sameApp) {
        for (const gone of this.departed) link.send(eventFrame('disconnect', gone, link.acks ? ledger.nextSeq() : 0));
      }
    } else {
      // The app said whom it knows: those not here any more are told so (with the reason, when it is remembered).
      const reasons = new Map(this.departed.map((gone) => [gone.id, gone.reason]));
      for (const id of known) {
        if (users.get(id) === undefined) link.send(eventFrame('disconnect', { id, reason: reasons.get(id) ?? 'gone' }, link.acks ? ledger.nextSeq() : 0));
      }
    }
    this.departed = [];

    let count = 0;
    let announced = 0;
    const lastApp = this.lastAppConnectionId;
    for (const connection of users.live()) {
      count++;
      // A listed user this process was never told about (they came while no app was connected) is announced anyway:
      // the list is the app's word, and it cannot hold a user it never heard of.
      if (known === undefined || !known.has(connection.id) || connection.announcedTo === 0 || connection.announcedTo !== lastApp) {
        this.announceTo(link, connection, true);
        announced++;
        continue;
      }
      // Known to the app: not announced again (its state there includes what it stored); only a telnet change since
      // it was last told. telnetSent is forgotten when an app link is lost (what was written to it last may not have
      // arrived) and an upgrade hands it over; after a crash nobody knows it, so the app hears the info again.
      connection.announcedTo = link.connectionId;
      const telnet = connection.telnet;
      if (telnet === undefined) continue;
      const json = JSON.stringify(telnet);
      if (json === connection.telnetSent) continue;
      connection.telnetSent = json;
      link.send(frame({ param: 'telnet', data: { id: connection.id, telnet } }));
    }
    const maxFrameBytes = options.maxFrameBytes;
    link.send(frame({ param: 'synced', data: known === undefined ? { count, maxFrameBytes } : { count, maxFrameBytes, known: true } }));
    const durationMs = performance.now() - started;
    counters.lastResyncMs = durationMs;
    counters.lastResyncAnnounced = announced;
    logger.info({ app: link.connectionId, count, announced, durationMs }, 'app resynced');
    events.emit('synced', link, count, durationMs);

    if (previous !== undefined && previous !== link && previous.phase === 'active') {
      // Handover: the old app stops here; whatever it did not ack goes to the new one.
      // Write the new app's resync first: end() below writes to the old app at
      // once, and it must not hear it is replaced before its successor is synced.
      link.flush();
      counters.appReplacements++;
      previous.retire();
      previous.end(frame({ param: 'error', data: { code: 'IMI_REPLACED', message: 'a newer app connected (appPolicy "replace")' } }));
      reporter.report(new ImiError('IMI_REPLACED', `app ${previous.connectionId} replaced by app ${link.connectionId}`), 'info');
      this.gone(previous, 'replaced');
    }

    this.lastAppInstance = link.instance;
    this.lastAppConnectionId = link.connectionId;
    for (const connection of users.live()) connection.toldQueueFull = false;
    ledger.drain((entry) => this.deliver(entry));
    this.startHeartbeat();
  }

  /** The app's `ack` (or a message's `ack` field). */
  acknowledge(seq: number): void {
    this.parts.ledger.ack(seq);
    this.parts.users.inputAcked();
  }

  /** Every message still waiting for `dep_txns` past `depWaitTimeoutMs` is processed now. */
  expireHeldMessages(): void {
    if (this.app !== undefined) this.messages.expire(this.app);
  }

  /** Ends every app connection for `close()`; the current app hears `shutdown` first. */
  endAll(reason: string): Promise<void>[] {
    const closed: Promise<void>[] = [];
    for (const link of this.allLinks) {
      closed.push(link.closed);
      if (link === this.app && link.phase === 'active') link.end(frame({ param: 'shutdown', data: { reason } }));
      else link.end();
    }
    return closed;
  }

  /** Stops the heartbeat timer (for `close()`). */
  stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** An app is gone: what it did not ack waits for the next one. */
  private gone(link: AppLink, reason: string): void {
    const { reporter, logger, hooks, events, ledger } = this.parts;
    reporter.counters.appDisconnects++;
    logger.warn({ app: link.connectionId, name: link.name, reason }, 'app disconnected');
    if (link.acks) ledger.appLost();
    this.forgetTelnetSent(link);
    // Messages still waiting for dep_txns were the app's intent: do them now.
    this.messages.processHeld(link);
    try {
      hooks.clientDisconnect.call(link, reason);
    } catch (error) {
      reporter.reportPluginError('clientDisconnect', error);
    }
    events.emit('appDisconnect', link, reason);
  }

  /**
   * The telnet info written to an app link that is gone may not have arrived (a half-open link takes writes for a
   * while): its users' next `hello.known` resync sends their info again rather than trust it.
   */
  private forgetTelnetSent(link: AppLink): void {
    for (const connection of this.parts.users.live()) if (connection.announcedTo === link.connectionId) connection.telnetSent = undefined;
  }

  private closed(link: AppLink, hadError: boolean): void {
    this.allLinks.delete(link);
    this.handshaking.delete(link);
    if (this.app !== link) return;
    this.app = undefined;
    this.stopHeartbeat();
    if (!this.closing) this.gone(link, hadError ? 'error' : 'closed');
  }

  /**
   * What a handover's successor takes of this side: the last app (so the
   * same app reconnecting is told who left meanwhile) and the users it must
   * still hear left.
   */
  handoverState(): { lastAppInstance: string | undefined; lastAppConnectionId: number; departed: Departed[] } {
    return { lastAppInstance: this.lastAppInstance, lastAppConnectionId: this.lastAppConnectionId, departed: [...this.departed] };
  }

  /** A handover's successor, before any app connects: takes {@link handoverState} of the old process. */
  adoptHandoverState(state: { lastAppInstance: string | undefined; lastAppConnectionId: number; departed: readonly Departed[] }): void {
    this.lastAppInstance = state.lastAppInstance;
    this.lastAppConnectionId = state.lastAppConnectionId;
    // Ids go on from the old process's: the next app is told apart from the last one.
    this.connectionCounter = Math.max(this.connectionCounter, state.lastAppConnectionId);
    this.departed = [...state.departed];
  }

  /** A handover's commit: the users the app must still hear left, as the old process had them last. */
  setDeparted(departed: readonly Departed[]): void {
    this.departed = [...departed];
  }

  /** (Re)starts the heartbeat to the current app (after an app is synced, or a handover that did not happen). */
  startHeartbeat(): void {
    this.stopHeartbeat();
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.parts.options;
    if (heartbeatIntervalMs === 0) return;
    this.heartbeatTimer = setInterval(() => {
      const app = this.app;
      if (app === undefined || app.phase !== 'active') return;
      const silentMs = Date.now() - app.lastHeardAt;
      if (silentMs > heartbeatTimeoutMs) {
        this.parts.logger.warn({ app: app.connectionId, silentMs }, 'app missed its heartbeat; dropping it');
        this.app = undefined;
        this.stopHeartbeat();
        app.retire();
        app.destroy();
        this.gone(app, 'timeout');
        return;
      }
      app.send(frame({ param: 'ping', data: { ts: Date.now() } }));
    }, heartbeatIntervalMs);
    this.heartbeatTimer.unref();
  }
}

function digest(token: string): Buffer {
  // Hash first so timingSafeEqual compares equal lengths and leaks no length.
  return createHash('sha256').update(token).digest();
}
