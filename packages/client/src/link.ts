/**
 * The connection to the intermediary: opening it (with `connectTimeoutMs`),
 * `hello`, framing in, routing each message to the part that handles it,
 * noticing it is gone (`linkTimeoutMs`, socket close), and reconnecting on
 * the reconnect policy's schedule.
 *
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import { FrameDecoder, HANDOVER_SHUTDOWN_REASON, ImiError, MAX_KNOWN_IN_HELLO, PROTOCOL_VERSION, ProtocolError, validateLegacyIntermediaryMessage, type ErrorMessage, type IntermediaryMessage } from '@imi/core';
import { AckTracker } from './ack-tracker.js';
import type { Dispatcher } from './dispatch.js';
import type { Outbox } from './outbox.js';
import type { Resync } from './resync.js';
import { describeError, type ClientState } from './state.js';
import type { Batch, Link } from './types.js';

/** Opens links, one at a time, and reopens them when they break. */
export class Linker {
  private generation = 0;
  private attempt = 0;
  /**
   * The last link ended with a `handover` shutdown, which only an imi
   * intermediary sends: the next one waits for `synced` without the legacy
   * wait. It may sit in the successor's accept queue for a while first, and
   * that silence must not end its resync with nobody in it.
   */
  private imiExpected = false;
  /**
   * The `maxFrameBytes` the intermediary gave in its last `synced`: the longest `hello` it takes. Only an
   * intermediary that says it understands `hello.known` (and so never needs the legacy wait) is sent one.
   */
  private peerMaxFrameBytes: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;

  /**
   * @param state - what the parts share
   * @param instanceId - this process's id, sent in `hello`
   * @param outbox - the outgoing side
   * @param dispatcher - handles user events
   * @param resync - handles `synced`
   * @param terminate - ends the client for good (a fatal error, or no more reconnecting)
   */
  constructor(
    private readonly state: ClientState,
    private readonly instanceId: string,
    private readonly outbox: Outbox,
    private readonly dispatcher: Dispatcher,
    private readonly resync: Resync,
    private readonly terminate: (reason: ImiError) => void,
  ) {}

  /** A resync completed: the next outage starts the reconnect schedule over. */
  resetAttempts(): void {
    this.attempt = 0;
    this.imiExpected = false;
  }

  /** Cancels a scheduled reconnection (closing). */
  cancelReconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /** Cluster mode: links go to the worker's gateway, in process ({@link setConnector}), instead of the options' host and port. */
  private connector: { connect: () => Socket; where: string } | undefined;

  /**
   * Links are made by `connect` from now on (cluster mode: an in-process
   * connection to the worker's gateway).
   *
   * @param connect - makes a connected socket (it emits `connect`)
   * @param where - how errors name the other end
   */
  setConnector(connect: () => Socket, where: string): void {
    this.connector = { connect, where };
  }

  /** The other end, as errors name it. */
  private get where(): string {
    return this.connector?.where ?? `${this.state.options.host}:${this.state.options.port}`;
  }

  /** Opens a new link and makes it the client's. */
  open(): void {
    const state = this.state;
    const options = state.options;
    const connector = this.connector;
    const generation = ++this.generation;
    state.status = 'connecting';
    // Sockets (and so every callback they make) start outside any batch.
    const socket = state.batchStore.exit(() => (connector === undefined ? netConnect({ host: options.host, port: options.port }) : connector.connect()));
    const link: Link = {
      generation,
      socket,
      decoder: new FrameDecoder<IntermediaryMessage>(
        { validate: validateLegacyIntermediaryMessage, maxFrameBytes: options.maxFrameBytes },
        {
          onMessage: (message) => this.onMessage(link, message),
          onError: (error) => {
            if (state.link === link) state.report(error);
          },
        },
      ),
      tracker: new AckTracker<Batch>(),
      state: 'connecting',
      announced: new Set(),
      announcedNew: new Set(),
      knownSent: undefined,
      announcedUp: false,
      writeQueue: [],
      sentReplies: [],
      sentRepliesBytes: 0,
      flushScheduled: false,
      waitingDrain: false,
      paused: false,
      fatal: undefined,
      downReason: undefined,
      lastSocketError: undefined,
      shutdownReason: undefined,
      connectTimer: undefined,
      idleTimer: undefined,
      holdTimer: undefined,
      syncTimer: undefined,
    };
    state.link = link;
    link.connectTimer = setTimeout(() => {
      link.downReason = new ImiError('IMI_LINK_DOWN', `no connection to ${this.where} within connectTimeoutMs (${options.connectTimeoutMs} ms)`);
      socket.destroy();
    }, options.connectTimeoutMs).unref();
    socket.setNoDelay(true);
    socket.once('connect', () => {
      clearTimeout(link.connectTimer);
      if (state.link !== link) return;
      socket.setKeepAlive(true, 10_000);
      link.state = 'resyncing';
      state.status = 'resyncing';
      const hello: { protocol: number; acks: boolean; name: string; instance: string; token?: string; known?: string[] } = {
        protocol: PROTOCOL_VERSION,
        acks: options.acks,
        name: options.name,
        instance: this.instanceId,
      };
      if (options.token !== undefined) hello.token = options.token;
      // Users this process knows need not be announced again (a short outage, an upgrade): a resync of 10,000 known
      // users was mostly the app parsing 10,000 connect frames. Past MAX_KNOWN_IN_HELLO the full resync is cheaper than the list.
      const known = this.knownFor(state.sessions);
      if (known !== undefined) {
        hello.known = known;
        link.knownSent = new Set(known);
      }
      this.outbox.writeDirect(link, { param: 'hello', data: hello });
      // An intermediary that takes `known` always says `synced`: a slow one must not have its resync ended by the wait.
      if (!this.imiExpected && known === undefined) this.resync.armLegacyWait(link);
      if (options.linkTimeoutMs > 0) {
        link.idleTimer = setTimeout(() => {
          link.downReason = new ImiError('IMI_LINK_DOWN', `nothing received from the intermediary for linkTimeoutMs (${options.linkTimeoutMs} ms)`);
          socket.destroy();
        }, options.linkTimeoutMs).unref();
      }
      if (this.dispatcher.saturated) this.dispatcher.checkPause();
    });
    socket.on('data', (chunk: Buffer) => {
      if (state.link !== link) return;
      link.idleTimer?.refresh();
      link.decoder.write(chunk);
    });
    // In process (cluster mode's gateway, a MemorySocket of @imi/core) messages come as the objects
    // themselves, in order with any bytes: no JSON in between, but checked as a frame's would be.
    socket.on('message', (value: object) => {
      if (state.link !== link) return;
      link.idleTimer?.refresh();
      const message = validateLegacyIntermediaryMessage(value);
      if (message instanceof ProtocolError) state.report(message);
      else this.onMessage(link, message);
    });
    socket.on('drain', () => this.outbox.onDrain(link));
    socket.on('error', (error) => {
      link.lastSocketError = error;
    });
    socket.on('close', () => this.onClosed(link));
  }

  private onClosed(link: Link): void {
    const state = this.state;
    clearLinkTimers(link);
    if (state.link !== link) return;
    state.link = undefined;
    this.outbox.keepForNextLink(link);

    if (state.status === 'closed' || state.status === 'closing') return;
    const reason = link.fatal ?? link.downReason ?? this.describeLoss(link);
    if (link.announcedUp) state.emitSafely('linkDown', [reason]);
    if (link.fatal !== undefined) {
      this.terminate(link.fatal);
      return;
    }
    // A successor took over the intermediary and already holds its listener: no reason to wait.
    this.scheduleReconnect(reason, link.shutdownReason === HANDOVER_SHUTDOWN_REASON);
  }

  private describeLoss(link: Link): ImiError {
    const where = this.where;
    if (link.shutdownReason !== undefined) return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} shut down (${link.shutdownReason})`);
    if (link.lastSocketError !== undefined) {
      return new ImiError('IMI_LINK_DOWN', `link to the intermediary at ${where} failed: ${link.lastSocketError.message}`, { cause: link.lastSocketError });
    }
    return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} closed the connection`);
  }

  /** @param handover - the link ended for a handover: the first attempt goes at once (the policy still decides whether there is one) */
  private scheduleReconnect(cause: ImiError, handover = false): void {
    const state = this.state;
    const policy = state.options.reconnect;
    if (policy === undefined) {
      this.terminate(new ImiError('IMI_LINK_DOWN', `${cause.message}; reconnect is off`, { cause }));
      return;
    }
    const attempt = ++this.attempt;
    let delay: number | undefined;
    try {
      delay = policy(attempt);
    } catch (error) {
      state.report(new ImiError('IMI_CONFIG', `the reconnect policy threw: ${describeError(error)}`, { cause: error }));
      delay = undefined;
    }
    if (delay === undefined || typeof delay !== 'number' || !(delay >= 0) || !Number.isFinite(delay)) {
      this.terminate(new ImiError('IMI_LINK_DOWN', `gave up reconnecting after ${attempt - 1} attempts: ${cause.message}`, { cause }));
      return;
    }
    if (handover) {
      this.imiExpected = true;
      if (attempt === 1) delay = 0;
    }
    state.status = 'waiting';
    state.emitSafely('reconnecting', [attempt, delay, cause]);
    if (state.status !== 'waiting') return; // a listener closed the client
    this.reconnectTimer = state.batchStore.exit(() =>
      setTimeout(() => {
        this.reconnectTimer = undefined;
        if (state.status === 'waiting') this.open();
      }, delay),
    );
  }

  /** The ids to name in `hello.known`, if the intermediary takes them and they fit in its frames with room to spare. */
  private knownFor(sessions: ReadonlyMap<string, unknown>): string[] | undefined {
    const limit = this.peerMaxFrameBytes;
    if (limit === undefined || sessions.size === 0 || sessions.size > MAX_KNOWN_IN_HELLO) return undefined;
    // Each id costs its length and `"",` in the JSON; the rest of the hello is under 1 KiB.
    let bytes = 1024;
    for (const id of sessions.keys()) bytes += Buffer.byteLength(id) + 3;
    return bytes <= limit ? [...sessions.keys()] : undefined;
  }

  private onMessage(link: Link, message: IntermediaryMessage): void {
    if (this.state.link !== link || this.state.status === 'closed') return;
    if (link.syncTimer !== undefined) this.resync.noteResyncMessage(link, message.param === 'connect' && message.data.connectedAt !== undefined);
    switch (message.param) {
      case 'ping':
        this.outbox.writeDirect(link, { param: 'pong', data: { ts: message.data.ts } });
        break;
      case 'connect':
      case 'input':
      case 'disconnect':
        this.dispatcher.onUserEvent(link, message);
        break;
      case 'synced':
        this.peerMaxFrameBytes = message.data.maxFrameBytes;
        this.resync.finish(link, message.data.count, message.data.known === true);
        break;
      case 'error':
        this.onErrorFrame(link, message);
        break;
      case 'shutdown':
        link.shutdownReason = message.data.reason;
        break;
      case 'telnet':
      case 'gmcp':
        this.dispatcher.onTelnetEvent(message);
        break;
    }
  }

  private onErrorFrame(link: Link, message: ErrorMessage): void {
    const { code, message: text } = message.data;
    const txnId = message.data.txn_id;
    const error = new ImiError(code, `the intermediary reports ${code}: ${text}`, txnId === undefined ? {} : { txnId });
    if (link.knownSent !== undefined && link.state === 'resyncing' && (code === 'IMI_BAD_FRAME' || code === 'IMI_BAD_MESSAGE' || code === 'IMI_AUTH')) {
      // The hello with `known` was refused (an intermediary restarted with a smaller maxFrameBytes takes it as an
      // oversized frame): the next link sends none, and gets the full resync.
      this.peerMaxFrameBytes = undefined;
      this.state.report(error);
      link.downReason = error;
      link.socket.destroy();
      return;
    }
    const fatal = code === 'IMI_AUTH' || code === 'IMI_REPLACED' || (code === 'IMI_APP_BUSY' && this.state.options.onAppBusy === 'reject');
    if (fatal) {
      link.fatal = error;
      link.socket.destroy();
    } else if (code === 'IMI_APP_BUSY') {
      link.downReason = error;
      link.socket.destroy();
    } else {
      this.state.report(error);
    }
  }
}

/** Stops every timer of a link. */
export function clearLinkTimers(link: Link): void {
  clearTimeout(link.connectTimer);
  clearTimeout(link.idleTimer);
  clearTimeout(link.holdTimer);
  clearTimeout(link.syncTimer);
}
