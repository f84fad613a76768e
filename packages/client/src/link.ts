/**
 * The connection to the intermediary: opening it (with `connectTimeoutMs`),
 * `hello`, framing in, routing each message to the part that handles it,
 * noticing it is gone (`linkTimeoutMs`, socket close), and reconnecting on
 * the reconnect policy's schedule.
 *
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import { FrameDecoder, HANDOVER_SHUTDOWN_REASON, ImiError, MAX_KNOWN_ID_LENGTH, MAX_KNOWN_IN_HELLO, PROTOCOL_VERSION, ProtocolError, validateLegacyIntermediaryMessage, type ErrorMessage, type IntermediaryMessage } from '@imi/core';
import { AckTracker } from './ack-tracker.js';
import type { Dispatcher } from './dispatch.js';
import type { Outbox } from './outbox.js';
import type { Resync } from './resync.js';
import { describeError, type ClientState } from './state.js';
import type { Batch, Link } from './types.js';

/** Bytes of a hello frame besides its `data` (`{"param":"hello","data":`, `}` and the newline: 27), with room for fields the envelope may gain. */
const HELLO_ENVELOPE_BYTES = 128;
/** A hello naming users waits this many times `legacySyncWaitMs` for `synced` (10 s by default) before the link is given up. */
const KNOWN_SYNC_WAIT_FACTOR = 10;

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
  /**
   * An intermediary refused a `hello` naming users (`IMI_BAD_FRAME`, `IMI_BAD_MESSAGE`): this client names none
   * again. Whatever the cause, the next hello with a list would likely be refused too, once per outage.
   */
  private knownRefused = false;
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
      retryAtOnce: false,
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
      eventAcks: false,
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
      const known = this.knownFor(state.sessions, hello);
      if (known !== undefined) {
        hello.known = known;
        link.knownSent = new Set(known);
      }
      this.outbox.writeDirect(link, { param: 'hello', data: hello });
      if (known === undefined) {
        if (!this.imiExpected) this.resync.armLegacyWait(link);
      } else if (options.legacySyncWaitMs > 0 && !this.imiExpected) {
        // An intermediary that takes `known` always says `synced`, and a slow one must not have its resync ended as a
        // legacy one's (the users named were not announced again). But one that no longer takes it (replaced by an
        // older one on the same port) never answers: past a longer wait, the next link names nobody.
        const waitMs = KNOWN_SYNC_WAIT_FACTOR * options.legacySyncWaitMs;
        link.syncTimer = setTimeout(() => this.giveUpKnown(link, `no synced, and no message for ${waitMs} ms, after a hello naming ${known.length} users`), waitMs).unref();
      }
      // Not in process (cluster mode): that link cannot hang half-open, and dropping it while handlers run would
      // give back and take again every partition of the worker for nothing.
      if (options.linkTimeoutMs > 0 && this.connector === undefined) {
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
    this.scheduleReconnect(reason, link.shutdownReason === HANDOVER_SHUTDOWN_REASON, link.retryAtOnce);
  }

  private describeLoss(link: Link): ImiError {
    const where = this.where;
    if (link.shutdownReason !== undefined) return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} shut down (${link.shutdownReason})`);
    if (link.lastSocketError !== undefined) {
      return new ImiError('IMI_LINK_DOWN', `link to the intermediary at ${where} failed: ${link.lastSocketError.message}`, { cause: link.lastSocketError });
    }
    return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} closed the connection`);
  }

  /**
   * @param handover - the link ended for a handover: the first attempt goes at once (the policy still decides whether there is one)
   * @param atOnce - the link ended for a reason the next one does not repeat (its hello named users): no delay, and
   *   no attempt of the policy used up (a policy that gives up after N attempts must not count this one); the policy
   *   is still asked, and can still give up
   */
  private scheduleReconnect(cause: ImiError, handover = false, atOnce = false): void {
    const state = this.state;
    const policy = state.options.reconnect;
    if (policy === undefined) {
      this.terminate(new ImiError('IMI_LINK_DOWN', `${cause.message}; reconnect is off`, { cause }));
      return;
    }
    const attempt = atOnce ? this.attempt + 1 : ++this.attempt;
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
    if (atOnce) delay = 0;
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

  /**
   * The ids to name in `hello.known`: only to an intermediary that takes them, only ids it accepts
   * (`MAX_KNOWN_ID_LENGTH`), and only while the whole hello fits in its `maxFrameBytes`.
   */
  private knownFor(sessions: ReadonlyMap<string, unknown>, hello: object): string[] | undefined {
    const limit = this.peerMaxFrameBytes;
    if (limit === undefined || this.knownRefused || sessions.size === 0 || sessions.size > MAX_KNOWN_IN_HELLO) return undefined;
    // The frame's exact length, short of stringifying it twice: the envelope (param, txn_id, newline) is under
    // HELLO_ENVELOPE_BYTES, `,"known":[]` is 11 bytes, and each id its JSON and a comma.
    let bytes = Buffer.byteLength(JSON.stringify(hello)) + HELLO_ENVELOPE_BYTES + 11;
    for (const id of sessions.keys()) {
      if (id.length > MAX_KNOWN_ID_LENGTH) return undefined;
      bytes += Buffer.byteLength(JSON.stringify(id)) + 1;
    }
    return bytes <= limit ? [...sessions.keys()] : undefined;
  }

  /** A hello naming users was not understood (no `synced` in time, or a legacy `connect`): reconnect at once, naming nobody. */
  private giveUpKnown(link: Link, why: string): void {
    clearTimeout(link.syncTimer);
    link.syncTimer = undefined;
    if (this.state.link !== link || link.state !== 'resyncing') return;
    this.peerMaxFrameBytes = undefined;
    link.downReason = new ImiError('IMI_LINK_DOWN', `${why} (an intermediary that does not take hello.known?): the next link names none`);
    link.retryAtOnce = true;
    link.socket.destroy();
  }

  private onMessage(link: Link, message: IntermediaryMessage): void {
    if (this.state.link !== link || this.state.status === 'closed') return;
    if (link.knownSent !== undefined && link.state === 'resyncing' && message.param === 'connect' && message.data.connectedAt === undefined) {
      // Only an intermediary that predates imi (the original Perl one) announces users without connectedAt; it
      // ignored the list and announces everyone, and would go on doing so without ever saying `synced`.
      this.giveUpKnown(link, 'a connect without connectedAt answered a hello naming users');
      return;
    }
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
        link.eventAcks = message.data.eventAcks === true;
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
    if (link.knownSent !== undefined && link.state === 'resyncing' && (code === 'IMI_BAD_FRAME' || code === 'IMI_BAD_MESSAGE')) {
      // The hello with `known` was refused (an intermediary restarted with a smaller maxFrameBytes takes it as an
      // oversized frame): the next link, at once, sends none and gets the full resync; so does every later one.
      this.knownRefused = true;
      this.state.report(error);
      link.downReason = error;
      link.retryAtOnce = true;
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
