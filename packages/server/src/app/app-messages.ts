/**
 * The handlers of what the app sends: the handshake frames go to the app
 * side, the rest (`output`, `disconnect`, `broadcast`, `state`, `ack`,
 * `telnet`, `gmcp`, `updates`) is applied here, after the `clientInput`
 * hook and after its `dep_txns` were processed.
 *
 * @module
 */
import { ImiError, LimitError, type AppMessage, type ImiErrorCode, type JsonObject, type ProtocolError, type SessionRegistry } from '@imi/core';
import type { IntermediaryHooks } from '../hooks.js';
import type { ResolvedOptions } from '../options.js';
import type { EventSink, Reporter } from '../ops/reporter.js';
import type { AppLink } from './app-link.js';
import type { ServerStatus } from '../users/telnet/mssp.js';
import type { UserDirectory } from './user-directory.js';

/** Params whose own handling reports an unknown `data.id`, so their `updates` must not report it again. */
const REPORTS_ITS_OWN_UNKNOWN_ID: ReadonlySet<string> = new Set(['output', 'disconnect', 'state', 'telnet', 'gmcp']);

/** What the handlers need of the app side (the handshake, and acks). */
export interface AppHandshake {
  /** Whether an app must give the token in `hello`. */
  readonly needsToken: boolean;
  /** Whether this link is the current app. */
  isCurrent(link: AppLink): boolean;
  /** The app's `hello`. */
  hello(link: AppLink, message: Extract<AppMessage, { param: 'hello' }>): void;
  /** Activates an app that never says hello (legacy). */
  activate(link: AppLink): void;
  /** Turns an app away. */
  refuse(link: AppLink, code: ImiErrorCode, message: string): void;
  /** The app acknowledged up to `seq`. */
  acknowledge(seq: number): void;
}

/** What the handlers are given by the intermediary. */
export interface AppMessagesParts {
  options: Readonly<ResolvedOptions>;
  logger: { debug(object: object, message: string): void };
  hooks: IntermediaryHooks;
  events: EventSink;
  reporter: Reporter;
  users: UserDirectory;
  registry: SessionRegistry;
  /** Where the app's `mssp` variables are kept (across app restarts). */
  serverStatus?: ServerStatus;
}

/** Applies the app's messages. */
export class AppMessages {
  private readonly parts: AppMessagesParts;
  private readonly handshake: AppHandshake;

  /**
   * @param parts - what the intermediary shares
   * @param handshake - the app side
   */
  constructor(parts: AppMessagesParts, handshake: AppHandshake) {
    this.parts = parts;
    this.handshake = handshake;
  }

  /** A frame or message the app sent was rejected. */
  reject(link: AppLink, error: ProtocolError): void {
    if (link.phase === 'handshake') {
      // A bad hello is refused with what was wrong with it (the app can tell a list it must not send again from a
      // wrong token); without a token it would otherwise be served as a legacy app (no acks, no `known`) while it
      // waits for the answer to its hello. A first frame too long to read is taken for a hello that grew past
      // maxFrameBytes: a legacy app's first frame is a short one. refuse() reports it.
      if (error.param === 'hello' || error.oversized) {
        this.handshake.refuse(link, error.code, `hello refused: ${error.message}`);
        return;
      }
      this.parts.reporter.report(error);
      if (this.handshake.needsToken) {
        this.handshake.refuse(link, 'IMI_AUTH', 'the first frame must be a valid hello');
        return;
      }
      // Any other first frame, good or bad, is a legacy app's: it is served from now on, and told what was wrong.
      this.handshake.activate(link);
      if (!this.handshake.isCurrent(link)) return;
      link.sendError(error.code, error.message, error.txnId);
      return;
    }
    this.parts.reporter.report(error);
    link.sendError(error.code, error.message, error.txnId);
  }

  /** A valid message from the app. */
  handle(link: AppLink, message: AppMessage): void {
    const { options, hooks, reporter } = this.parts;
    if (link.phase === 'handshake') {
      if (message.param === 'hello') {
        this.handshake.hello(link, message);
        return;
      }
      if (this.handshake.needsToken) {
        this.handshake.refuse(link, 'IMI_AUTH', `the first frame must be hello, got ${message.param}`);
        return;
      }
      // A legacy app that never says hello: it is active from its first frame.
      this.handshake.activate(link);
      if (!this.handshake.isCurrent(link)) return;
    }
    if (link.phase !== 'active') return;
    let current: AppMessage | false = message;
    if (hooks.clientInput.isUsed()) {
      try {
        current = hooks.clientInput.call(message, link);
      } catch (error) {
        reporter.reportPluginError('clientInput', error);
        current = message;
      }
      if (current === false) return;
      if (typeof current !== 'object' || current === null) current = message;
    }
    const deps = current.dep_txns;
    if (deps !== undefined && deps !== null && deps.length > 0) {
      if (deps.length > options.maxDepTxns) {
        reporter.reportLimit('maxDepTxns', options.maxDepTxns, `a message listed ${deps.length} dep_txns; processed without waiting`);
        this.sendError(link, 'IMI_LIMIT', `dep_txns lists ${deps.length} ids, over maxDepTxns (${options.maxDepTxns}); processed without waiting`, current.txn_id);
      } else {
        const missing = link.deps.missing(deps);
        if (missing.length > 0) {
          if (link.deps.hold(current, missing, Date.now())) return;
          reporter.reportLimit('maxHeldMessages', options.maxHeldMessages, 'too many messages wait for dep_txns; processed without waiting');
          this.sendError(link, 'IMI_LIMIT', `over maxHeldMessages (${options.maxHeldMessages}) waiting for dep_txns; processed without waiting`, current.txn_id);
        }
      }
    }
    this.process(link, current, false);
  }

  /** The link is gone: the messages it left waiting for `dep_txns` were its intent, so they are done now. */
  processHeld(link: AppLink): void {
    for (const message of link.deps.drain()) this.process(link, message, true);
  }

  /** Processes the messages that waited too long for their `dep_txns`, with `IMI_DEP_TIMEOUT`. */
  expire(link: AppLink): void {
    const { options, reporter } = this.parts;
    const expired = link.deps.expire(Date.now(), options.depWaitTimeoutMs);
    for (const message of expired) {
      const error = new ImiError('IMI_DEP_TIMEOUT', `waited over depWaitTimeoutMs (${options.depWaitTimeoutMs} ms) for dep_txns; processed anyway`, message.txn_id === undefined ? {} : { txnId: message.txn_id });
      reporter.report(error);
      this.sendError(link, 'IMI_DEP_TIMEOUT', error.message, message.txn_id);
      this.process(link, message, false);
    }
  }

  private process(link: AppLink, message: AppMessage, linkGone: boolean): void {
    const { users, logger, events, reporter } = this.parts;
    const data = message.data as Record<string, unknown> | undefined;
    const id = data !== undefined && typeof data['id'] === 'string' ? data['id'] : undefined;
    if (message.updates !== undefined && message.updates !== null) {
      if (id === undefined) {
        const error = new ImiError('IMI_BAD_MESSAGE', `${message.param}: updates need a data.id`, message.txn_id === undefined ? {} : { txnId: message.txn_id });
        reporter.report(error);
        this.sendError(link, 'IMI_BAD_MESSAGE', error.message, message.txn_id);
      } else if (users.get(id) !== undefined) {
        this.applyUpdates(link, id, message.updates, message.txn_id);
      } else if (!REPORTS_ITS_OWN_UNKNOWN_ID.has(message.param)) {
        // output, disconnect and state report the unknown id below: one message, one error.
        this.unknownId(link, id, message.txn_id);
      }
    }
    switch (message.param) {
      case 'output': {
        const connection = users.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else {
          connection.write(message.data.value, message.data.prompt === true);
          events.emit('appOutput', connection, message.data.value);
          users.replied(connection);
        }
        break;
      }
      case 'disconnect': {
        if (message.data.id === undefined) break; // the Perl client's {"success":1}
        const connection = users.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else connection.close(typeof message.data.value === 'string' ? message.data.value : undefined, 'kicked');
        break;
      }
      case 'broadcast': {
        const except = message.data.except;
        users.broadcast(message.data.value, except && except.length > 0 ? new Set(except) : undefined);
        break;
      }
      case 'state': {
        if (users.get(message.data.id) === undefined) this.unknownId(link, message.data.id, message.txn_id);
        break;
      }
      case 'ack':
        if (link.acks && !linkGone) this.handshake.acknowledge(message.data.seq);
        break;
      case 'telnet': {
        const connection = users.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else if (typeof message.data.echo === 'boolean' && !connection.setEcho(message.data.echo)) {
          logger.debug({ session: connection.id, transport: connection.transport }, 'telnet echo asked for a user who is not on telnet: ignored');
        }
        break;
      }
      case 'gmcp': {
        const connection = users.get(message.data.id);
        if (connection === undefined) this.unknownId(link, message.data.id, message.txn_id);
        else if (!connection.sendGmcp(message.data.package, message.data.value === undefined ? undefined : JSON.stringify(message.data.value), message.data.protocol)) {
          logger.debug({ session: connection.id, package: message.data.package }, 'GMCP for a user without GMCP (or MSDP): dropped');
        }
        break;
      }
      case 'mssp':
        this.parts.serverStatus?.set(message.data.variables);
        break;
      case 'hello':
      case 'pong':
      case 'null':
        break;
    }
    if (typeof message.ack === 'number' && link.acks && !linkGone) this.handshake.acknowledge(message.ack);
    if (typeof message.txn_id === 'string') {
      for (const released of link.deps.markProcessed(message.txn_id)) this.process(link, released, linkGone);
    }
  }

  private applyUpdates(link: AppLink, id: string, updates: JsonObject, txnId: string | undefined): void {
    const { registry, reporter } = this.parts;
    const result = registry.applyUpdates(id, updates);
    if (result === undefined) {
      this.unknownId(link, id, txnId);
    } else if (result instanceof LimitError) {
      reporter.countLimit(result);
      reporter.report(result);
      this.sendError(link, 'IMI_LIMIT', result.message, txnId);
    }
  }

  private unknownId(link: AppLink, id: string, txnId: string | undefined): void {
    const error = new ImiError('IMI_UNKNOWN_ID', `no connected user ${JSON.stringify(id.slice(0, 64))}; message dropped`, txnId === undefined ? {} : { txnId });
    this.parts.reporter.report(error, 'debug');
    this.sendError(link, 'IMI_UNKNOWN_ID', error.message, txnId);
  }

  private sendError(link: AppLink, code: ImiErrorCode, message: string, txnId: string | undefined): void {
    link.sendError(code, message, txnId);
  }
}
