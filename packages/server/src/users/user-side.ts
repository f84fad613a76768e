/**
 * The users side: lets users in (admission, the `connect` hook, telnet
 * negotiation), runs their input pipeline (input rate, line cut, `input`
 * hook, then to the app or the ledger), writes their output (the `output`
 * hook), and forgets them when they leave.
 *
 * @module
 */
import type { Logger } from 'pino';
import { ImiError, LimitError, txnIdSource, type JsonObject, type JsonValue, type SessionRegistry } from '@imi/core';
import type { UserDirectory } from '../app/user-directory.js';
import type { InputLedger } from '../delivery/ledger.js';
import type { IntermediaryHooks } from '../hooks.js';
import type { ResolvedOptions } from '../options.js';
import type { EventSink, Reporter } from '../ops/reporter.js';
import { Admission, TokenBucket, isLoopback, type AdmissionRefusal } from './admission.js';
import type { AppPort } from './app-port.js';
import { Connection, type ConnectionOwner, type DelayedLine } from './connection.js';
import { HalfClosedUsers } from './half-close.js';
import type { UserChannel } from './transport.js';

/** The txn id of each input line: a counter after a random per-process prefix (`randomUUID()` per line cost more than the rest of taking it). */
const nextTxnId = txnIdSource();

/**
 * The state of every user the app has stored nothing for: shared, and
 * frozen so that nothing writes to it (`applyUpdates` makes a new object
 * on the first update). An empty object each cost 56 B per idle user.
 */
const NO_STATE = Object.freeze({}) as JsonObject;

/** What the users side is given by the intermediary. */
export interface UserSideParts {
  options: Readonly<ResolvedOptions>;
  logger: Logger;
  hooks: IntermediaryHooks;
  events: EventSink;
  reporter: Reporter;
  ledger: InputLedger;
  registry: SessionRegistry;
}

/** Every user connection, from accept to close. */
export class UserSide implements ConnectionOwner, UserDirectory {
  /** Set once `close()` began: new users are turned away. */
  closing = false;
  /** Admitted users (let in by the `connect` hook), by id. */
  readonly connections = new Map<string, Connection>();
  /** Every user socket not closed yet: admitted, waiting for the `connect` hook, or refused and closing. */
  readonly openConnections = new Set<Connection>();
  /** The per-address connection limits. */
  readonly admission: Admission;
  private readonly parts: UserSideParts;
  private readonly halfClosed: HalfClosedUsers;
  /** Set by the composition root once the app side exists. */
  app!: AppPort;

  /** @param parts - what the intermediary shares with the users side */
  constructor(parts: UserSideParts) {
    this.parts = parts;
    this.admission = new Admission({
      maxConnections: parts.options.maxConnections,
      maxConnectionsPerIp: parts.options.maxConnectionsPerIp,
      connectRatePerIp: parts.options.connectRatePerIp,
    });
    this.halfClosed = new HalfClosedUsers(parts.options.halfCloseGraceMs, parts.ledger, () => this.app.readyAppAcks);
  }

  get closeTimeoutMs(): number {
    return this.parts.options.closeTimeoutMs;
  }

  live(): IterableIterator<Connection> {
    return this.connections.values();
  }

  get(id: string): Connection | undefined {
    return this.connections.get(id);
  }

  broadcast(text: string, except?: ReadonlySet<string>): number {
    let count = 0;
    for (const connection of this.connections.values()) {
      if (except?.has(connection.id)) continue;
      connection.write(text);
      count++;
    }
    return count;
  }

  // ------------------------------------------------------------ arrival

  /** A new user channel from a transport. */
  accept(channel: UserChannel): void {
    if (this.closing) {
      channel.destroy();
      return;
    }
    const { options, registry, hooks, reporter } = this.parts;
    const address = channel.remote.address;
    if (address === '') {
      // Reset before it was accepted (a health check, a reconnect storm): the
      // kernel no longer knows the peer. Nobody is there to let in or refuse,
      // and no address may be guessed for the limits or the app.
      this.parts.logger.debug({ transport: channel.transport }, 'a connection was gone before it was accepted: dropped');
      channel.destroy();
      return;
    }
    const limited = options.limitLoopback || !isLoopback(address);
    const refusal = this.admission.admit(address, Date.now(), limited);
    if (refusal !== undefined) {
      this.refuse(channel, refusal);
      return;
    }
    const record = registry.add({ transport: channel.transport, remote: channel.remote, state: NO_STATE });
    const connection = this.track(new Connection(channel, record, this, options.maxLineBytes, options.maxOutputBufferBytes), limited);
    reporter.counters.sessionsOpened++;
    const negotiation = connection.negotiation;
    if (!hooks.connect.isUsed() && negotiation === undefined) {
      this.admit(connection);
      return;
    }
    connection.pause();
    // A telnet user is announced once their client said who it is (bounded wait),
    // so the app and the connect taps see their window size and terminal type.
    const decided =
      negotiation === undefined
        ? hooks.connect.promise(connection)
        : negotiation.then(() => (connection.closing || !hooks.connect.isUsed() ? undefined : hooks.connect.promise(connection)));
    decided.then(
      (refusal) => {
        if (connection.closing) return;
        if (refusal) {
          this.parts.logger.info({ session: connection.id }, 'user refused by a connect tap');
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
        reporter.reportPluginError('connect', error, connection.id);
        if (connection.closing) return;
        this.admit(connection);
        connection.resume();
      },
    );
  }

  /**
   * Counts a new connection as open (and as admitted: it holds its place in
   * the admission counts until it closes), with its input rate bucket.
   *
   * @param limited - whether the per-address limits and the input rate apply
   */
  track(connection: Connection, limited: boolean): Connection {
    connection.admitted = true;
    if (limited) connection.inputBucket = new TokenBucket(this.parts.options.inputRatePerSession, this.parts.options.inputBurstPerSession, Date.now());
    this.openConnections.add(connection);
    this.parts.ledger.openSession(connection.id);
    connection.userChannel.watchPeer?.(this.parts.options.keepAliveMs, this.parts.options.telnetProbeMs);
    return connection;
  }

  private refuse(channel: UserChannel, refusal: AdmissionRefusal): void {
    const { options, reporter } = this.parts;
    const limit = options[refusal];
    const why = refusal === 'maxConnections' ? 'the server is full' : refusal === 'maxConnectionsPerIp' ? 'too many connections from your address' : 'connecting too fast';
    reporter.counters.refused[refusal]++;
    reporter.reportLimit(refusal, limit, `user from ${channel.remote.address || '?'} refused: ${why}`);
    // The channel is never attached: nothing is read from it, its errors are
    // ignored, and no telnet negotiation starts.
    if (options.refusedNotice === false) {
      channel.destroy();
      return;
    }
    channel.write(options.refusedNotice.replace('{reason}', why));
    channel.end();
    // A refused peer gets no more of our time than a short flush.
    setTimeout(() => channel.destroy(), 2_000).unref();
  }

  /** Lets a user in: they are a live session from now on, and the app hears of them. */
  admit(connection: Connection): void {
    this.adopt(connection);
    this.app.announce(connection);
  }

  /** Makes a connection a live session (`sessionOpen`), without telling the app. */
  adopt(connection: Connection): void {
    connection.accepted = true;
    this.connections.set(connection.id, connection);
    this.parts.logger.debug({ session: connection.id, remote: connection.remote }, 'user connected');
    this.parts.events.emit('sessionOpen', connection);
  }

  // ---------------------------------------------- what connections report

  /** A telnet user's negotiated options changed: the app hears it once per tick, if it knows the user. */
  onTelnetChanged(connection: Connection): void {
    if (!connection.accepted || connection.telnetNotifyScheduled) return;
    connection.telnetNotifyScheduled = true;
    setImmediate(() => {
      connection.telnetNotifyScheduled = false;
      const telnet = connection.telnet;
      const readyApp = this.app.readyApp;
      if (connection.closing || telnet === undefined || readyApp === 0 || connection.announcedTo !== readyApp) return;
      const json = JSON.stringify(telnet);
      if (json === connection.telnetSent) return;
      connection.telnetSent = json;
      this.app.notify('telnet', { id: connection.id, telnet });
    });
  }

  /** The user's client broke its protocol and the channel recovered: counted and logged once per code. */
  onFault(connection: Connection, error: ImiError): void {
    const { reporter } = this.parts;
    if (error instanceof LimitError) reporter.reportLimit(error.limit, error.value, error.message, connection.id);
    else reporter.report(new ImiError(error.code, error.message, { sessionId: connection.id }));
  }

  /**
   * A GMCP message from a telnet user: relayed to the app as `gmcp`. Not
   * queued while no app is connected (what a restarted app needs, Core.Hello
   * and Core.Supports, is in `connect.data.telnet`); counted against the
   * user's input rate.
   */
  onGmcp(connection: Connection, packageName: string, json: string, protocol?: 'msdp'): void {
    const { logger, reporter, options } = this.parts;
    if (!connection.accepted || this.app.readyApp === 0) {
      logger.debug({ session: connection.id, package: packageName }, 'GMCP message while no app is connected: dropped');
      return;
    }
    const bucket = connection.inputBucket;
    if (bucket !== undefined && !bucket.take(Date.now())) {
      reporter.counters.dropped.rateLimited++;
      reporter.reportLimit('inputRatePerSession', options.inputRatePerSession, 'a user sent GMCP faster than the input rate; a message was dropped', connection.id);
      return;
    }
    const data: { id: string; package: string; value?: JsonValue; protocol?: 'msdp' } = { id: connection.id, package: packageName };
    if (protocol !== undefined) data.protocol = protocol;
    if (json !== '') {
      try {
        data.value = JSON.parse(json) as JsonValue;
      } catch {
        logger.debug({ session: connection.id, package: packageName }, 'GMCP message with a payload that is not JSON: dropped');
        return;
      }
    }
    this.app.notify('gmcp', data);
  }

  onSlowReader(connection: Connection): void {
    this.parts.reporter.reportLimit('maxOutputBufferBytes', this.parts.options.maxOutputBufferBytes, 'a user is not reading their output; disconnected', connection.id);
    connection.destroy('slow');
  }

  transformOutput(connection: Connection, text: string): string {
    const hooks = this.parts.hooks;
    if (!hooks.output.isUsed()) return text;
    try {
      const result = hooks.output.call(text, connection);
      return typeof result === 'string' ? result : text;
    } catch (error) {
      this.parts.reporter.reportPluginError('output', error, connection.id);
      return text;
    }
  }

  // ----------------------------------------------------- the input pipeline

  onLine(connection: Connection, line: string, truncated: boolean, bytes: number): void {
    const bucket = connection.inputBucket;
    if (bucket !== undefined && (connection.delayedCount > 0 || !bucket.take(Date.now()))) {
      this.delayLine(connection, { line, truncated, bytes });
      return;
    }
    this.processLine(connection, line, truncated, bytes);
  }

  /** Holds a line back (input rate), pausing the user's reading so TCP slows them down. */
  delayLine(connection: Connection, delayed: DelayedLine): void {
    const { options, reporter } = this.parts;
    if (connection.delayedCount >= options.maxDelayedLinesPerSession) {
      reporter.counters.dropped.rateLimited++;
      reporter.reportLimit('inputRatePerSession', options.inputRatePerSession, 'a user typed faster than the input rate; a line was dropped', connection.id);
      if (!connection.toldRateLimit) {
        connection.toldRateLimit = true;
        if (options.rateLimitNotice !== false) connection.write(options.rateLimitNotice);
      }
      return;
    }
    connection.delayedLines.push(delayed);
    if (connection.delayedLines.length === 1) {
      connection.pause();
      this.scheduleDelayed(connection);
    }
  }

  /** Lets a user's lines held by the input rate out when the rate allows (also after a handover that did not happen). */
  scheduleDelayed(connection: Connection): void {
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
      if (connection.inputEnded) this.halfClosed.check(connection);
    }
  }

  private processLine(connection: Connection, line: string, truncated: boolean, bytes: number): void {
    const { options, reporter, hooks, events, ledger } = this.parts;
    const counters = reporter.counters;
    connection.lastInputAt = Date.now();
    connection.record.counters.linesIn++;
    counters.inputLines++;
    counters.inputBytes += bytes;
    if (truncated) {
      reporter.reportLimit('maxLineBytes', options.maxLineBytes, `a line of ${bytes} bytes was cut to maxLineBytes`, connection.id);
      if (options.lineTooLongNotice !== false) {
        connection.write(options.lineTooLongNotice.replace('{limit}', String(options.maxLineBytes)));
      }
    }
    let value: string | false = line;
    if (hooks.input.isUsed()) {
      try {
        value = hooks.input.call(line, connection);
      } catch (error) {
        reporter.reportPluginError('input', error, connection.id);
        value = line;
      }
      if (value === false || connection.closing) return;
      if (typeof value !== 'string') value = line;
    }
    events.emit('input', connection, value);
    const entry = ledger.input(connection.id, value, nextTxnId(), Buffer.byteLength(value));
    if (this.app.readyApp !== 0) {
      connection.awaitingReply = true;
      this.app.deliver(entry);
      return;
    }
    if (hooks.noClient.isUsed()) {
      try {
        hooks.noClient.call(connection, value);
      } catch (error) {
        reporter.reportPluginError('noClient', error, connection.id);
      }
    }
    if (options.whileAppDown === 'drop') {
      counters.dropped.appDownDrop++;
      return;
    }
    connection.awaitingReply = true;
    ledger.queue(entry);
  }

  /** The ledger dropped queued lines of this user: they are told once per outage. */
  queueOverflowed(sessionId: string): void {
    const connection = this.connections.get(sessionId);
    if (connection === undefined || connection.toldQueueFull) return;
    connection.toldQueueFull = true;
    const notice = this.parts.options.queueFullNotice;
    if (notice !== false) connection.write(notice);
  }

  /** The app sent this user output: the answer a half-closed user waits for. */
  replied(connection: Connection): void {
    connection.awaitingReply = false;
    if (connection.inputEnded) this.halfClosed.check(connection);
  }

  /** The app acked: half-closed users whose every line is acked have their answer. */
  inputAcked(): void {
    if (this.halfClosed.size > 0) this.halfClosed.acked();
  }

  // ------------------------------------------------------------ departure

  /** A half-closed user: they wait, writable, for the app's answer (see `half-close.ts`). */
  onInputEnded(connection: Connection): void {
    if (!connection.accepted) connection.close(undefined, 'closed');
    else this.halfClosed.begin(connection);
  }

  /** Close was asked for (kicked, refused, timed out, shut down): the app hears of it now, not when the socket is gone. */
  onConnectionClosing(connection: Connection): void {
    this.forget(connection);
  }

  onConnectionClosed(connection: Connection): void {
    if (connection.admitted) {
      connection.admitted = false;
      this.admission.release(connection.remote.address, connection.inputBucket !== undefined);
    }
    if (connection.delayTimer !== undefined) clearTimeout(connection.delayTimer);
    if (connection.delayedCount > 0) connection.delayedLines.clear();
    this.openConnections.delete(connection);
    this.forget(connection);
    connection.markClosed();
  }

  /** Ends the session (once): out of the registry, stats and resyncs; its input dropped; the app told. */
  private forget(connection: Connection): void {
    const { registry, reporter, ledger, logger, hooks, events } = this.parts;
    this.halfClosed.forget(connection);
    if (!registry.has(connection.id)) return;
    const reason = connection.closeReason;
    registry.remove(connection.id, reason);
    const counters = connection.record.counters;
    reporter.counters.closedOutput.writes += counters.writesOut;
    reporter.counters.closedOutput.bytes += counters.bytesOut;
    // Their queued and unacked input goes with them: no app will hear of this user again.
    ledger.closeSession(connection.id);
    if (!connection.accepted) return;
    this.connections.delete(connection.id);
    logger.debug({ session: connection.id, reason }, 'user disconnected');
    try {
      hooks.disconnect.call(connection, reason);
    } catch (error) {
      reporter.reportPluginError('disconnect', error, connection.id);
    }
    events.emit('sessionClose', connection, reason);
    this.app.userLeft(connection, reason);
  }
}
