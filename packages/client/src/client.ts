/**
 * The application side of imi: one connection to the intermediary, kept up
 * across intermediary restarts, turned into typed events and tapable hooks.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import {
  FrameDecoder,
  ImiError,
  LimitError,
  PROTOCOL_VERSION,
  encodeFrame,
  isJsonObject,
  validateIntermediaryMessage,
  type ConnectMessage,
  type ErrorMessage,
  type GmcpMessage,
  type InputMessage,
  type IntermediaryMessage,
  type JsonObject,
  type JsonValue,
  type TelnetInfoMessage,
  type UserDisconnectMessage,
} from '@imi/core';
import { AckTracker, type AckRelease } from './ack-tracker.js';
import { HandlerError } from './errors.js';
import { invokeListeners, type ClientEvents } from './events.js';
import { callHook, isolateTaps, type ClientHooks } from './hooks.js';
import { REDELIVERY_MEMORY, REPLAY_MEMORY_BYTES, resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Session, mergeState, sessionSlots } from './session.js';

/** Options of {@link Client.send} and the other sending methods. */
export interface SendOptions {
  /**
   * Txn ids (returned by earlier sends) that the intermediary must have
   * processed before this message: sent as `dep_txns`. The intermediary
   * holds the message (bounded in count and age) until then.
   */
  after?: string | Iterable<string>;
  /** State updates for the message's user, stored together with it (see {@link Session.setState}). */
  updates?: JsonObject;
}

/** Options of {@link Client.broadcast}. */
export interface BroadcastOptions {
  /** Txn ids that must be processed first (`dep_txns`). */
  after?: string | Iterable<string>;
  /** Session ids that do not get the text. */
  except?: string | Iterable<string>;
}

/**
 * Where the client is:
 * - `idle`: constructed, `connect()` not called yet;
 * - `connecting`: opening a TCP connection to the intermediary;
 * - `resyncing`: connected, hearing of the live users;
 * - `up`: resynced, messages flow;
 * - `waiting`: the link is down, the next attempt is scheduled;
 * - `closing`: `close()` lets running handlers finish;
 * - `closed`: done for good.
 */
export type ClientStatus = 'idle' | 'connecting' | 'resyncing' | 'up' | 'waiting' | 'closing' | 'closed';

/**
 * A frame on its way out. `app` frames are what the app sends (counted in
 * `maxOutgoingBytes`, kept across a link outage); `ack` frames are lone
 * acks and `direct` ones are `hello`/`pong`: both belong to one link only.
 */
interface OutRecord {
  readonly kind: 'app' | 'ack' | 'direct';
  /** Encoded, `\n`-terminated, without `ack`. */
  readonly frame: string;
  readonly bytes: number;
  /** The user the frame is for (`output`, `disconnect`, `state`), so frames for users gone meanwhile can be dropped. */
  readonly userId: string | undefined;
  /** Has `dep_txns`: the intermediary may hold it, so it never carries an ack. */
  readonly hasDeps: boolean;
  /** The cumulative ack to add when writing, set only for the link it was computed on. */
  ack: number | undefined;
  /** Handed to a socket (so possibly lost if that link broke). */
  written: boolean;
}

/** What an event's handlers sent while it was being handled: written together with its ack. */
interface Batch {
  readonly generation: number;
  readonly records: OutRecord[];
  closed: boolean;
  /** The `txn_id` of the input it answers, if it answers one. */
  readonly inputTxn: string | undefined;
}

/** Replies written on a link, kept in case that link breaks before the intermediary read them. */
interface SentReply {
  readonly inputTxn: string;
  readonly records: OutRecord[];
  readonly bytes: number;
}

/** One TCP connection to the intermediary. */
interface Link {
  readonly generation: number;
  readonly socket: Socket;
  readonly decoder: FrameDecoder<IntermediaryMessage>;
  readonly tracker: AckTracker<Batch>;
  state: 'connecting' | 'resyncing' | 'up';
  /** Users announced by this link's resync (cleared once it is done). */
  announced: Set<string>;
  /** Of those, the ones this process did not know: `synced` waits for their `connect` handlers. */
  announcedNew: Set<string>;
  /** Set once `linkUp` was emitted, so `linkDown` pairs with it. */
  announcedUp: boolean;
  writeQueue: OutRecord[];
  /** Replies released on this link, newest last, bounded by {@link REPLAY_MEMORY_BYTES} and {@link REDELIVERY_MEMORY}. */
  sentReplies: SentReply[];
  sentRepliesBytes: number;
  flushScheduled: boolean;
  waitingDrain: boolean;
  paused: boolean;
  /** An `error` frame that ends this client (auth, replaced, busy): no reconnect. */
  fatal: ImiError | undefined;
  /** Why the link is going down, when known before the socket closes. */
  downReason: ImiError | undefined;
  lastSocketError: Error | undefined;
  shutdownReason: string | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  holdTimer: NodeJS.Timeout | undefined;
}

interface UserQueue {
  tail: Promise<void>;
  size: number;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: ImiError) => void;
  settled: boolean;
}

/** A GMCP package name the intermediary accepts (as its validator checks it). */
const GMCP_PACKAGE = /^[^\s\x00-\x1f\x7f]{1,128}$/;

/** Room kept in each frame for the `,"ack":N` added when it is written. */
const ACK_ROOM = 32;

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: ImiError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const result: Deferred = {
    promise,
    resolve: () => {
      if (result.settled) return;
      result.settled = true;
      resolve();
    },
    reject: (error) => {
      if (result.settled) return;
      result.settled = true;
      reject(error);
    },
    settled: false,
  };
  return result;
}

function withAck(frame: string, ack: number): string {
  // Every frame is a JSON object followed by "\n": put the field before the closing brace.
  return `${frame.slice(0, -2)},"ack":${ack}}\n`;
}

function toIdList(value: string | Iterable<string> | undefined, option: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : [...value];
  for (const item of list) {
    if (typeof item !== 'string') throw new ImiError('IMI_BAD_MESSAGE', `${option} must list strings (txn or session ids)`);
  }
  return list;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * An imi application: connects to the intermediary, keeps a mirror of the
 * connected users in {@link sessions}, and turns their lines into events and
 * hooks. It reconnects with backoff when the intermediary goes away, resyncs
 * when it is back, and acknowledges each event only once its handlers are
 * done, in the same write as the replies they produced.
 *
 * @example
 * ```ts
 * const app = new Client({ port: 9000, token: process.env.IMI_TOKEN });
 * app.on('connect', (session) => session.send('Welcome!\r\n'));
 * app.hooks.buildResponse.tap('Shout', (reply, session, line) => line.toUpperCase() + '\r\n');
 * await app.connect();
 * ```
 */
export class Client extends EventEmitter<ClientEvents> {
  /**
   * The tapable hooks, one per moment of a user's life; see
   * {@link ClientHooks}. Frozen: tap them, do not replace them.
   */
  readonly hooks: ClientHooks;
  /** The options in force, defaults applied. */
  readonly options: ResolvedClientOptions;
  /**
   * This client's id, sent in `hello` (`instance`), so the intermediary can
   * tell this process reconnecting from a new one.
   */
  readonly instanceId: string = randomUUID();

  private status_: ClientStatus = 'idle';
  private readonly sessionMap = new Map<string, Session>();
  private readonly userQueues = new Map<string, UserQueue>();
  private readonly batchStore = new AsyncLocalStorage<Batch>();
  /**
   * Input txn ids handled by this process, newest last, so a redelivery
   * after a link outage is only acked: a ring of {@link REDELIVERY_MEMORY}
   * slots.
   */
  private readonly handledInputs: (string | undefined)[] = [];
  private handledNext = 0;
  /**
   * A Set of the ring's ids, built only when a redelivered input is looked
   * up (after a link outage) and dropped at the next input that is not a
   * redelivery: hashing every id into a Set cost more than the rest of
   * handling an input.
   */
  private handledIndex: Set<string> | undefined;
  /**
   * Replies written on a link that then broke, by the `txn_id` of the input
   * they answer: if the intermediary redelivers that input it never read
   * them (the ack travels on their last frame), so they are sent again
   * rather than lost, without running the handlers twice.
   */
  private readonly replayable = new Map<string, SentReply>();
  private replayableBytes = 0;
  /** Sessions a resync found gone, until their `disconnect` event has run. */
  private readonly leaving = new Map<string, Session>();
  private link: Link | undefined;
  private generation = 0;
  private pending: OutRecord[] = [];
  private outgoingBytes = 0;
  private inFlight = 0;
  private attempt = 0;
  private ticks = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectDeferred: Deferred | undefined;
  private closePromise: Promise<void> | undefined;

  /**
   * @param options - where the intermediary is and how to behave; every option has a default
   * @throws ImiError `IMI_CONFIG` when an option is impossible
   */
  constructor(options: ClientOptions = {}) {
    super();
    this.options = resolveClientOptions(options);
    const report = (error: HandlerError): void => this.report(error);
    this.hooks = Object.freeze({
      connect: new AsyncSeriesHook<[Session]>(['session'], 'connect'),
      input: new AsyncSeriesHook<[Session, string]>(['session', 'line'], 'input'),
      buildResponse: new AsyncSeriesWaterfallHook<[string | undefined, Session, string]>(['reply', 'session', 'line'], 'buildResponse'),
      disconnect: new AsyncSeriesHook<[Session, string]>(['session', 'reason'], 'disconnect'),
    });
    for (const [name, hook] of Object.entries(this.hooks) as [string, AsyncSeriesHook<never>][]) isolateTaps(hook, name, report);
  }

  /** The live users, by session id, as last told by the intermediary. */
  get sessions(): ReadonlyMap<string, Session> {
    return this.sessionMap;
  }

  /** Where the client is; see {@link ClientStatus}. */
  get status(): ClientStatus {
    return this.status_;
  }

  /** Bytes of frames accepted by `send()` and friends and not yet handed to the socket. */
  get bufferedBytes(): number {
    return this.outgoingBytes;
  }

  /**
   * Connects to the intermediary. Resolves once the first resync is done:
   * {@link sessions} lists every live user and their `connect` handlers
   * have run. If the intermediary is not there yet, keeps trying with the
   * reconnect policy. Calling it again returns the same promise.
   *
   * @returns a promise that resolves when resynced
   * @throws (rejects) ImiError `IMI_AUTH` (wrong or missing token), `IMI_APP_BUSY`
   *   (another app is connected, with `onAppBusy: "reject"`), `IMI_REPLACED`,
   *   `IMI_LINK_DOWN` (the reconnect policy gave up), or `IMI_CLOSED` (`close()` was called)
   */
  connect(): Promise<void> {
    if (this.connectDeferred !== undefined) return this.connectDeferred.promise;
    const ready = deferred();
    this.connectDeferred = ready;
    if (this.status_ === 'closing' || this.status_ === 'closed') {
      ready.reject(new ImiError('IMI_CLOSED', 'connect() after close()'));
      return ready.promise;
    }
    if (this.options.tickIntervalMs > 0) {
      this.batchStore.exit(() => {
        this.tickTimer = setInterval(() => this.emitSafely('tick', [++this.ticks]), this.options.tickIntervalMs);
      });
    }
    this.openLink();
    return ready.promise;
  }

  /**
   * Closes the client: stops reading, lets handlers already running finish
   * (up to `closeTimeoutMs`) and writes what they sent, then closes the
   * connection. Messages still kept for a link that is down are dropped.
   * Users stay connected to the intermediary, which tells them the app is
   * restarting. Safe to call more than once.
   *
   * @returns a promise that resolves once the connection is closed
   */
  close(): Promise<void> {
    if (this.closePromise !== undefined) return this.closePromise;
    this.closePromise = this.closeGracefully();
    return this.closePromise;
  }

  /**
   * Sends text to one user, verbatim (add your own `\r\n`).
   *
   * Inside an event's handlers (listeners or taps, including what they
   * await) the message joins that event's batch, written in one write with
   * the event's ack once the handlers are done. Elsewhere it goes out with
   * everything else sent in the same event-loop turn.
   *
   * @param id - the session id
   * @param text - what to write
   * @param options - `after` (ordering via `dep_txns`) and state `updates`
   * @returns the message's txn id, for another message's `after`
   * @throws ImiError `IMI_LINK_DOWN` when the link is down and `maxPendingOutgoing` or
   *   `maxOutgoingBytes` is reached; `LimitError` (`IMI_LIMIT`) when the link is up but
   *   `maxOutgoingBytes` wait for a slow intermediary, or the frame is over `maxFrameBytes`;
   *   `IMI_CLOSED` after close; `IMI_BAD_MESSAGE` when an argument has the wrong type
   */
  send(id: string, text: string, options?: SendOptions): string {
    this.checkString(id, 'send: id');
    this.checkString(text, 'send: text');
    const txnId = randomUUID();
    const record = this.appRecord({ param: 'output', data: { id, value: text } }, txnId, id, options);
    this.submit([record]);
    this.applyLocalUpdates(id, options?.updates);
    return txnId;
  }

  /**
   * Sends to many users at once: one `output` frame each, all or none
   * accepted, all in one write.
   *
   * @param ids - the session ids
   * @param text - the same text for all of them
   * @param options - `after` (ordering via `dep_txns`), applied to every frame
   * @returns the txn ids, in the order of `ids`
   * @throws ImiError as {@link send}
   */
  multisend(ids: Iterable<string>, text: string, options?: Omit<SendOptions, 'updates'>): string[];
  /**
   * Sends a different text to each of many users: one `output` frame each,
   * all or none accepted, all in one write.
   *
   * @param messages - `[id, text]` pairs (an array, a `Map`) or an `{ id: text }` object
   * @param options - `after` (ordering via `dep_txns`), applied to every frame
   * @returns the txn ids, in the order of `messages`
   * @throws ImiError as {@link send}
   */
  multisend(messages: Iterable<readonly [string, string]> | Readonly<Record<string, string>>, options?: Omit<SendOptions, 'updates'>): string[];
  multisend(
    first: Iterable<string> | Iterable<readonly [string, string]> | Readonly<Record<string, string>>,
    second?: string | Omit<SendOptions, 'updates'>,
    third?: Omit<SendOptions, 'updates'>,
  ): string[] {
    let pairs: [string, string][];
    let options: Omit<SendOptions, 'updates'> | undefined;
    if (typeof second === 'string') {
      pairs = [...(first as Iterable<string>)].map((id) => [id, second]);
      options = third;
    } else {
      const source = first as Iterable<readonly [string, string]> | Readonly<Record<string, string>>;
      pairs =
        typeof (source as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function'
          ? [...(source as Iterable<readonly [string, string]>)].map((pair) => [pair[0], pair[1]])
          : Object.entries(source as Record<string, string>);
      options = second;
    }
    const txnIds: string[] = [];
    const records: OutRecord[] = [];
    for (const [id, text] of pairs) {
      this.checkString(id, 'multisend: id');
      this.checkString(text, 'multisend: text');
      const txnId = randomUUID();
      txnIds.push(txnId);
      records.push(this.appRecord({ param: 'output', data: { id, value: text } }, txnId, id, options));
    }
    if (records.length > 0) this.submit(records);
    return txnIds;
  }

  /**
   * Sends text to every connected user.
   *
   * @param text - what to write
   * @param options - `except` (session ids left out) and `after`
   * @returns the message's txn id
   * @throws ImiError as {@link send}
   */
  broadcast(text: string, options?: BroadcastOptions): string {
    this.checkString(text, 'broadcast: text');
    const txnId = randomUUID();
    const except = toIdList(options?.except, 'broadcast: except');
    const data: { value: string; except?: string[] } = { value: text };
    if (except !== undefined && except.length > 0) data.except = except;
    const after = options?.after === undefined ? undefined : { after: options.after };
    this.submit([this.appRecord({ param: 'broadcast', data }, txnId, undefined, after)]);
    return txnId;
  }

  /**
   * Stores `updates` in a user's state on the intermediary (a key set to
   * `null` is deleted); the session's local `state` is updated at once.
   *
   * @param id - the session id
   * @param updates - keys to set or delete
   * @param options - `after`
   * @returns the message's txn id
   * @throws ImiError as {@link send}
   */
  setState(id: string, updates: JsonObject, options?: Omit<SendOptions, 'updates'>): string {
    this.checkString(id, 'setState: id');
    if (!isJsonObject(updates)) throw new ImiError('IMI_BAD_MESSAGE', 'setState: updates must be an object', { sessionId: id });
    const txnId = randomUUID();
    this.submit([this.appRecord({ param: 'state', data: { id } }, txnId, id, { ...options, updates })]);
    this.applyLocalUpdates(id, updates);
    return txnId;
  }

  /**
   * Closes a user's connection after what was sent to them before is
   * written.
   *
   * @param id - the session id
   * @param farewell - a last text written before closing
   * @param options - `after` and state `updates`
   * @returns the message's txn id
   * @throws ImiError as {@link send}
   */
  disconnect(id: string, farewell?: string, options?: SendOptions): string {
    this.checkString(id, 'disconnect: id');
    if (farewell !== undefined) this.checkString(farewell, 'disconnect: farewell');
    const txnId = randomUUID();
    const data: { id: string; value?: string } = { id };
    if (farewell !== undefined) data.value = farewell;
    this.submit([this.appRecord({ param: 'disconnect', data }, txnId, id, options)]);
    this.applyLocalUpdates(id, options?.updates);
    return txnId;
  }

  /**
   * Telnet users: hides (`false`) or shows (`true`) what the user types, for
   * a password prompt (send the prompt, then `setEcho(id, false)`; after the
   * answer, `setEcho(id, true)`). The intermediary keeps the setting across
   * app restarts (`session.telnet.echo`). Does nothing for other transports.
   *
   * @param id - the session id
   * @param visible - whether the user's typing is shown
   * @param options - `after`
   * @returns the message's txn id
   * @throws ImiError as {@link send}
   */
  setEcho(id: string, visible: boolean, options?: Omit<SendOptions, 'updates'>): string {
    this.checkString(id, 'setEcho: id');
    if (typeof visible !== 'boolean') throw new ImiError('IMI_BAD_MESSAGE', 'setEcho: visible must be a boolean', { sessionId: id });
    const txnId = randomUUID();
    this.submit([this.appRecord({ param: 'telnet', data: { id, echo: visible } }, txnId, id, options)]);
    return txnId;
  }

  /**
   * Telnet users whose MUD client speaks GMCP (`session.telnet.gmcp`): sends
   * a GMCP message, in order with the text sent to them. Dropped by the
   * intermediary for users without GMCP.
   *
   * @param id - the session id
   * @param packageName - e.g. `"Char.Vitals"` (no spaces, at most 128 characters)
   * @param value - the payload, sent as JSON; none when undefined
   * @param options - `after`
   * @returns the message's txn id
   * @throws ImiError `IMI_BAD_MESSAGE` for a bad package name; otherwise as {@link send}
   */
  sendGmcp(id: string, packageName: string, value?: JsonValue, options?: Omit<SendOptions, 'updates'>): string {
    this.checkString(id, 'sendGmcp: id');
    this.checkString(packageName, 'sendGmcp: packageName');
    if (!GMCP_PACKAGE.test(packageName)) throw new ImiError('IMI_BAD_MESSAGE', `sendGmcp: ${JSON.stringify(packageName.slice(0, 64))} is not a GMCP package name (1-128 characters, no spaces)`, { sessionId: id });
    const txnId = randomUUID();
    const data: { id: string; package: string; value?: JsonValue } = { id, package: packageName };
    if (value !== undefined) data.value = value;
    this.submit([this.appRecord({ param: 'gmcp', data }, txnId, id, options)]);
    return txnId;
  }

  // ------------------------------------------------------------ outgoing

  private checkString(value: unknown, what: string): asserts value is string {
    if (typeof value !== 'string') throw new ImiError('IMI_BAD_MESSAGE', `${what} must be a string, got ${value === null ? 'null' : typeof value}`);
  }

  private appRecord(message: { param: string; data: object }, txnId: string, userId: string | undefined, options: SendOptions | undefined): OutRecord {
    const after = toIdList(options?.after, 'after');
    const hasDeps = after !== undefined && after.length > 0;
    let frame: string;
    if (message.param === 'output' && !hasDeps && options?.updates === undefined) {
      // The common case, written directly: the same bytes as encodeFrame() of
      // { param, data: { id, value }, txn_id } (send() and multisend() make that data).
      const data = message.data as { id: string; value: string };
      frame = `{"param":"output","data":{"id":${JSON.stringify(data.id)},"value":${JSON.stringify(data.value)}},"txn_id":${JSON.stringify(txnId)}}\n`;
    } else {
      const full: Record<string, unknown> = { param: message.param, data: message.data, txn_id: txnId };
      if (hasDeps) full['dep_txns'] = after;
      if (options?.updates !== undefined) {
        if (!isJsonObject(options.updates)) throw new ImiError('IMI_BAD_MESSAGE', 'updates must be an object');
        full['updates'] = options.updates;
      }
      frame = encodeFrame(full);
    }
    const bytes = Buffer.byteLength(frame);
    if (bytes + ACK_ROOM > this.options.maxFrameBytes) {
      throw new LimitError('maxFrameBytes', this.options.maxFrameBytes, `a ${message.param} frame of ${bytes} bytes is over maxFrameBytes (${this.options.maxFrameBytes})`, {
        txnId,
        ...(userId === undefined ? {} : { sessionId: userId }),
      });
    }
    return { kind: 'app', frame, bytes, userId, hasDeps, ack: undefined, written: false };
  }

  private applyLocalUpdates(id: string, updates: JsonObject | undefined): void {
    if (updates === undefined) return;
    const session = this.sessionMap.get(id);
    if (session !== undefined) {
      const slots = sessionSlots(session);
      slots.state = mergeState(slots.state, updates);
    }
  }

  /** Accepts frames from the app, or throws: the only place the outgoing bounds are enforced. */
  private submit(records: OutRecord[]): void {
    if (this.status_ === 'closed') throw new ImiError('IMI_CLOSED', 'the client is closed');
    let bytes = 0;
    for (const record of records) bytes += record.bytes;
    const linkUp = this.link?.state === 'up';
    if (this.outgoingBytes + bytes > this.options.maxOutgoingBytes) {
      const held = `${this.outgoingBytes} bytes already wait (maxOutgoingBytes ${this.options.maxOutgoingBytes})`;
      if (linkUp) throw new LimitError('maxOutgoingBytes', this.options.maxOutgoingBytes, `the intermediary is not reading fast enough: ${held}`);
      throw new ImiError('IMI_LINK_DOWN', `the link to the intermediary is down and ${held}; wait for linkUp`);
    }
    const batch = this.batchStore.getStore();
    if (batch !== undefined && !batch.closed) {
      batch.records.push(...records);
      this.outgoingBytes += bytes;
      return;
    }
    if (!linkUp && this.pending.length + records.length > this.options.maxPendingOutgoing) {
      throw new ImiError(
        'IMI_LINK_DOWN',
        `the link to the intermediary is down and ${this.pending.length} messages are already kept (maxPendingOutgoing ${this.options.maxPendingOutgoing}); wait for linkUp`,
      );
    }
    this.outgoingBytes += bytes;
    this.deliver(records);
  }

  /** Routes accepted frames: to the socket when the link is up, else kept for the resync. */
  private deliver(records: OutRecord[]): void {
    if (records.length === 0) return;
    if (this.status_ === 'closed') {
      this.forget(records);
      return;
    }
    const link = this.link;
    const up = link !== undefined && link.state === 'up';
    const queue = up ? link.writeQueue : this.pending;
    for (const record of records) {
      // Acks are cumulative: a lone ack right after another replaces it, so
      // acks cannot pile up while the socket waits for 'drain'.
      if (record.kind === 'ack' && queue.length > 0 && queue[queue.length - 1]!.kind === 'ack') queue[queue.length - 1] = record;
      else queue.push(record);
    }
    if (up) this.scheduleFlush(link);
  }

  private forget(records: Iterable<OutRecord>): void {
    for (const record of records) if (record.kind === 'app') this.outgoingBytes -= record.bytes;
  }

  private writeDirect(link: Link, message: object): void {
    const frame = encodeFrame(message);
    link.writeQueue.push({ kind: 'direct', frame, bytes: Buffer.byteLength(frame), userId: undefined, hasDeps: false, ack: undefined, written: false });
    this.scheduleFlush(link);
  }

  private scheduleFlush(link: Link): void {
    if (link.flushScheduled) return;
    link.flushScheduled = true;
    setImmediate(() => this.flush(link));
  }

  /** One socket write with everything queued this turn, unless the socket asked us to wait. */
  private flush(link: Link): void {
    link.flushScheduled = false;
    if (this.link !== link || link.waitingDrain || link.writeQueue.length === 0) return;
    const socket = link.socket;
    if (socket.destroyed || !socket.writable) return;
    let data = '';
    let appBytes = 0;
    for (const record of link.writeQueue) {
      data += record.ack === undefined ? record.frame : withAck(record.frame, record.ack);
      record.written = true;
      if (record.kind === 'app') appBytes += record.bytes;
    }
    link.writeQueue = [];
    this.outgoingBytes -= appBytes;
    if (!socket.write(data)) link.waitingDrain = true;
  }

  private onDrain(link: Link): void {
    if (this.link !== link || !link.waitingDrain) return;
    link.waitingDrain = false;
    this.flush(link);
    if (!link.waitingDrain) this.emitSafely('drain', []);
  }

  // ------------------------------------------------------------ the link

  private openLink(): void {
    const generation = ++this.generation;
    this.status_ = 'connecting';
    // Sockets (and so every callback they make) start outside any batch.
    const socket = this.batchStore.exit(() => netConnect({ host: this.options.host, port: this.options.port }));
    const link: Link = {
      generation,
      socket,
      decoder: new FrameDecoder<IntermediaryMessage>(
        { validate: validateIntermediaryMessage, maxFrameBytes: this.options.maxFrameBytes },
        {
          onMessage: (message) => this.onMessage(link, message),
          onError: (error) => {
            if (this.link === link) this.report(error);
          },
        },
      ),
      tracker: new AckTracker<Batch>(),
      state: 'connecting',
      announced: new Set(),
      announcedNew: new Set(),
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
    };
    this.link = link;
    link.connectTimer = setTimeout(() => {
      link.downReason = new ImiError('IMI_LINK_DOWN', `no connection to ${this.options.host}:${this.options.port} within connectTimeoutMs (${this.options.connectTimeoutMs} ms)`);
      socket.destroy();
    }, this.options.connectTimeoutMs).unref();
    socket.setNoDelay(true);
    socket.once('connect', () => {
      clearTimeout(link.connectTimer);
      if (this.link !== link) return;
      socket.setKeepAlive(true, 10_000);
      link.state = 'resyncing';
      this.status_ = 'resyncing';
      const hello: { protocol: number; acks: boolean; name: string; instance: string; token?: string } = {
        protocol: PROTOCOL_VERSION,
        acks: this.options.acks,
        name: this.options.name,
        instance: this.instanceId,
      };
      if (this.options.token !== undefined) hello.token = this.options.token;
      this.writeDirect(link, { param: 'hello', data: hello });
      if (this.options.linkTimeoutMs > 0) {
        link.idleTimer = setTimeout(() => {
          link.downReason = new ImiError('IMI_LINK_DOWN', `nothing received from the intermediary for linkTimeoutMs (${this.options.linkTimeoutMs} ms)`);
          socket.destroy();
        }, this.options.linkTimeoutMs).unref();
      }
      if (this.inFlight >= this.options.maxInFlightEvents) this.checkPause();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.link !== link) return;
      link.idleTimer?.refresh();
      link.decoder.write(chunk);
    });
    socket.on('drain', () => this.onDrain(link));
    socket.on('error', (error) => {
      link.lastSocketError = error;
    });
    socket.on('close', () => this.onLinkClosed(link));
  }

  private onLinkClosed(link: Link): void {
    clearTimeout(link.connectTimer);
    clearTimeout(link.idleTimer);
    clearTimeout(link.holdTimer);
    if (this.link !== link) return;
    this.link = undefined;

    // What was not written yet is kept for the next link, minus what only
    // meant something on this one: acks (seqs of this link), hello, pong.
    const kept: OutRecord[] = [];
    for (const record of [...link.writeQueue, ...this.pending]) {
      if (record.kind !== 'app') continue;
      record.ack = undefined;
      kept.push(record);
    }
    link.writeQueue = [];
    this.pending = kept;
    for (const reply of link.sentReplies) {
      if (reply.records.every((record) => record.written)) this.keepReplayable(reply);
    }
    link.sentReplies = [];
    link.sentRepliesBytes = 0;

    if (this.status_ === 'closed' || this.status_ === 'closing') return;
    const reason = link.fatal ?? link.downReason ?? this.describeLoss(link);
    if (link.announcedUp) this.emitSafely('linkDown', [reason]);
    if (link.fatal !== undefined) {
      this.terminate(link.fatal);
      return;
    }
    this.scheduleReconnect(reason);
  }

  private describeLoss(link: Link): ImiError {
    const where = `${this.options.host}:${this.options.port}`;
    if (link.shutdownReason !== undefined) return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} shut down (${link.shutdownReason})`);
    if (link.lastSocketError !== undefined) {
      return new ImiError('IMI_LINK_DOWN', `link to the intermediary at ${where} failed: ${link.lastSocketError.message}`, { cause: link.lastSocketError });
    }
    return new ImiError('IMI_LINK_DOWN', `the intermediary at ${where} closed the connection`);
  }

  private scheduleReconnect(cause: ImiError): void {
    const policy = this.options.reconnect;
    if (policy === undefined) {
      this.terminate(new ImiError('IMI_LINK_DOWN', `${cause.message}; reconnect is off`, { cause }));
      return;
    }
    const attempt = ++this.attempt;
    let delay: number | undefined;
    try {
      delay = policy(attempt);
    } catch (error) {
      this.report(new ImiError('IMI_CONFIG', `the reconnect policy threw: ${describeError(error)}`, { cause: error }));
      delay = undefined;
    }
    if (delay === undefined || typeof delay !== 'number' || !(delay >= 0) || !Number.isFinite(delay)) {
      this.terminate(new ImiError('IMI_LINK_DOWN', `gave up reconnecting after ${attempt - 1} attempts: ${cause.message}`, { cause }));
      return;
    }
    this.status_ = 'waiting';
    this.emitSafely('reconnecting', [attempt, delay, cause]);
    if (this.status_ !== 'waiting') return; // a listener closed the client
    this.reconnectTimer = this.batchStore.exit(() =>
      setTimeout(() => {
        this.reconnectTimer = undefined;
        if (this.status_ === 'waiting') this.openLink();
      }, delay),
    );
  }

  // ------------------------------------------------------------ incoming

  private onMessage(link: Link, message: IntermediaryMessage): void {
    if (this.link !== link || this.status_ === 'closed') return;
    switch (message.param) {
      case 'ping':
        this.writeDirect(link, { param: 'pong', data: { ts: message.data.ts } });
        break;
      case 'connect':
      case 'input':
      case 'disconnect':
        this.onUserEvent(link, message);
        break;
      case 'synced':
        this.onSynced(link, message.data.count);
        break;
      case 'error':
        this.onErrorFrame(link, message);
        break;
      case 'shutdown':
        link.shutdownReason = message.data.reason;
        break;
      case 'telnet':
      case 'gmcp':
        this.onTelnetEvent(message);
        break;
    }
  }

  /**
   * `telnet` and `gmcp` from the intermediary: not acked, handled in order
   * with the user's other events; what their listeners send goes out at once.
   */
  private onTelnetEvent(message: TelnetInfoMessage | GmcpMessage): void {
    const id = message.data.id;
    this.enqueueForUser(id, () =>
      this.batchStore.exit(() => {
        const session = this.sessionMap.get(id);
        if (session === undefined) return Promise.resolve();
        if (message.param === 'telnet') {
          sessionSlots(session).telnet = Object.freeze({ ...message.data.telnet });
          this.emitSafely('telnet', [session, session.telnet]);
        } else {
          this.emitSafely('gmcp', [session, message.data.package, message.data.value]);
        }
        return Promise.resolve();
      }),
    );
  }

  private onErrorFrame(link: Link, message: ErrorMessage): void {
    const { code, message: text } = message.data;
    const txnId = message.data.txn_id;
    const error = new ImiError(code, `the intermediary reports ${code}: ${text}`, txnId === undefined ? {} : { txnId });
    const fatal = code === 'IMI_AUTH' || code === 'IMI_REPLACED' || (code === 'IMI_APP_BUSY' && this.options.onAppBusy === 'reject');
    if (fatal) {
      link.fatal = error;
      link.socket.destroy();
    } else if (code === 'IMI_APP_BUSY') {
      link.downReason = error;
      link.socket.destroy();
    } else {
      this.report(error);
    }
  }

  private onUserEvent(link: Link, message: ConnectMessage | InputMessage | UserDisconnectMessage): void {
    const id = message.data.id;
    const ticket = link.tracker.receive(this.options.acks ? message.seq : undefined);
    if (message.param === 'connect' && link.state === 'resyncing') {
      link.announced.add(id);
      if (this.sessionMap.has(id)) {
        // This process already knows the user (a short outage): nothing to
        // run, and nothing to wait for behind handlers still running for them.
        this.release(link, link.tracker.complete(ticket, { generation: link.generation, records: [], closed: true, inputTxn: undefined }));
        return;
      }
      link.announcedNew.add(id);
    }
    const batch: Batch = { generation: link.generation, records: [], closed: false, inputTxn: message.param === 'input' ? message.txn_id : undefined };
    this.inFlight++;
    this.checkPause();

    let work: () => Promise<void>;
    if (message.param === 'connect') {
      const data = message.data;
      work = () => this.handleConnect(batch, data);
    } else if (message.param === 'input') {
      const txnId = message.txn_id;
      const value = message.data.value;
      // Input this process already took (before a short outage) comes back
      // unacked. Its handlers do not run twice: if their replies were
      // written to the broken link they are sent again with the new ack;
      // if they are still running, or their replies were still queued, the
      // replies go out once anyway and only the ack is needed.
      // Redeliveries come first on a link: past them the index is not needed.
      if (message.redelivered !== true) this.handledIndex = undefined;
      const replay = message.redelivered === true ? this.takeReplayable(txnId) : undefined;
      if (replay !== undefined) {
        work = () => {
          for (const record of replay.records) batch.records.push({ ...record, ack: undefined, written: false });
          this.outgoingBytes += replay.bytes;
          return Promise.resolve();
        };
      } else if (message.redelivered === true && this.wasHandled(txnId)) {
        work = () => Promise.resolve();
      } else {
        work = () => this.handleInput(batch, id, value, txnId);
      }
    } else {
      const reason = message.data.reason;
      work = () => this.handleDisconnect(id, reason);
    }

    this.enqueueForUser(id, async () => {
      try {
        await this.batchStore.run(batch, work);
      } catch (error) {
        this.report(new ImiError('IMI_PLUGIN', `handling ${message.param} failed: ${describeError(error)}`, { cause: error, sessionId: id }));
      } finally {
        batch.closed = true;
        this.inFlight--;
        this.checkResume();
        this.finishEvent(batch, ticket);
      }
    });
  }

  private enqueueForUser(id: string, task: () => Promise<void>): void {
    let queue = this.userQueues.get(id);
    if (queue === undefined) {
      queue = { tail: Promise.resolve(), size: 0 };
      this.userQueues.set(id, queue);
    }
    const own = queue;
    own.size++;
    const done = (): void => {
      if (--own.size === 0 && this.userQueues.get(id) === own) this.userQueues.delete(id);
    };
    own.tail = own.tail.then(task).then(done, (error: unknown) => {
      done();
      this.report(new ImiError('IMI_PLUGIN', `internal error for session ${id}: ${describeError(error)}`, { cause: error, sessionId: id }));
    });
  }

  /** Whether an event of an earlier link, not started before that link broke, should be skipped. */
  private isStale(batch: Batch): boolean {
    return this.link?.generation !== batch.generation;
  }

  private async handleConnect(batch: Batch, data: ConnectMessage['data']): Promise<void> {
    // The next link's resync announces the user again if they are still
    // there; adding them now could leave a user who left meanwhile.
    if (this.isStale(batch)) return;
    const known = this.sessionMap.get(data.id);
    if (known !== undefined) {
      // The same process after a short outage: it already knows the user,
      // and its local state already includes every update it made (some may
      // still be on their way), so it is kept.
      return;
    }
    const session = new Session(this, data);
    this.sessionMap.set(session.id, session);
    const listening = this.runListeners('connect', [session], session.id);
    if (listening !== undefined) await listening;
    if (this.hooks.connect.taps.length > 0) await callHook(this.hooks.connect, [session], false);
  }

  private async handleInput(batch: Batch, id: string, line: string, txnId: string): Promise<void> {
    // With acks, an input not started before its link broke is redelivered: handle it then.
    if (this.options.acks && this.isStale(batch)) return;
    const session = this.sessionMap.get(id);
    if (session === undefined) {
      if (!this.isStale(batch)) this.report(new ImiError('IMI_UNKNOWN_ID', `input for a session never announced: ${id}`, { sessionId: id, txnId }));
      return;
    }
    this.rememberInput(txnId);
    const listening = this.runListeners('input', [session, line], id);
    if (listening !== undefined) await listening;
    if (this.hooks.input.taps.length > 0) {
      const tapped = callHook(this.hooks.input, [session, line], false);
      if (tapped !== undefined) await tapped;
    }
    if (this.hooks.buildResponse.taps.length === 0) return;
    let reply: unknown = callHook(this.hooks.buildResponse, [undefined, session, line], true);
    if (isThenable(reply)) reply = await reply;
    if (reply === undefined || reply === '') return;
    if (typeof reply !== 'string') {
      this.report(new HandlerError('hook', 'buildResponse', undefined, new TypeError(`the reply must be a string or undefined, got ${typeof reply}`), id));
      return;
    }
    try {
      this.send(id, reply);
    } catch (error) {
      this.report(error instanceof ImiError ? error : new HandlerError('hook', 'buildResponse', undefined, error, id));
    }
  }

  private rememberInput(txnId: string): void {
    const index = this.handledIndex;
    if (index !== undefined) {
      if (index.has(txnId)) return;
      const oldest = this.handledInputs[this.handledNext];
      if (oldest !== undefined) index.delete(oldest);
      index.add(txnId);
    }
    this.handledInputs[this.handledNext] = txnId;
    this.handledNext = (this.handledNext + 1) % REDELIVERY_MEMORY;
  }

  /** Whether this process handled the input with this txn id (among the last {@link REDELIVERY_MEMORY}). */
  private wasHandled(txnId: string): boolean {
    if (this.handledIndex === undefined) {
      this.handledIndex = new Set();
      for (const id of this.handledInputs) if (id !== undefined) this.handledIndex.add(id);
    }
    return this.handledIndex.has(txnId);
  }

  private async handleDisconnect(id: string, reason: string): Promise<void> {
    // A departure is a fact whatever link told it: always handled.
    const session = this.sessionMap.get(id) ?? this.leaving.get(id);
    if (session === undefined) return;
    this.sessionMap.delete(id);
    this.leaving.delete(id);
    sessionSlots(session).connected = false;
    const listening = this.runListeners('disconnect', [session, reason], id);
    if (listening !== undefined) await listening;
    if (this.hooks.disconnect.taps.length > 0) await callHook(this.hooks.disconnect, [session, reason], false);
  }

  private finishEvent(batch: Batch, ticket: number): void {
    const link = this.link;
    if (link === undefined || link.generation !== batch.generation) {
      // Its link is gone: the ack would mean nothing to the next one (which
      // redelivers what was not acked); the replies still go out.
      this.deliver(batch.records);
      return;
    }
    this.release(link, link.tracker.complete(ticket, batch));
    if (link.tracker.size > 0) this.armHold(link);
  }

  /** Keeps the replies of an input as they go to the socket, bounded, in case the link breaks. */
  private rememberSent(link: Link, batch: Batch): void {
    if (batch.inputTxn === undefined || batch.records.length === 0 || !this.options.acks) return;
    let bytes = 0;
    for (const record of batch.records) bytes += record.bytes;
    if (bytes > REPLAY_MEMORY_BYTES) return;
    link.sentReplies.push({ inputTxn: batch.inputTxn, records: batch.records, bytes });
    link.sentRepliesBytes += bytes;
    while (link.sentRepliesBytes > REPLAY_MEMORY_BYTES || link.sentReplies.length > REDELIVERY_MEMORY) {
      link.sentRepliesBytes -= link.sentReplies.shift()!.bytes;
    }
  }

  private keepReplayable(reply: SentReply): void {
    this.replayable.delete(reply.inputTxn);
    this.replayable.set(reply.inputTxn, reply);
    this.replayableBytes += reply.bytes;
    for (const [txn, oldest] of this.replayable) {
      if (this.replayableBytes <= REPLAY_MEMORY_BYTES && this.replayable.size <= REDELIVERY_MEMORY) break;
      this.replayable.delete(txn);
      this.replayableBytes -= oldest.bytes;
    }
  }

  private takeReplayable(inputTxn: string): SentReply | undefined {
    const reply = this.replayable.get(inputTxn);
    if (reply !== undefined) {
      this.replayable.delete(inputTxn);
      this.replayableBytes -= reply.bytes;
    }
    return reply;
  }

  private release(link: Link, release: AckRelease<Batch>): void {
    const records: OutRecord[] = [];
    for (const batch of release.payloads) {
      for (const record of batch.records) records.push(record);
      this.rememberSent(link, batch);
    }
    if (release.ack !== undefined) {
      const last = records[records.length - 1];
      if (last !== undefined && last.kind === 'app' && !last.hasDeps) {
        last.ack = release.ack;
      } else {
        const frame = encodeFrame({ param: 'ack', data: { seq: release.ack } });
        records.push({ kind: 'ack', frame, bytes: Buffer.byteLength(frame), userId: undefined, hasDeps: false, ack: undefined, written: false });
      }
    }
    if (link === this.link) this.deliver(records);
  }

  /** Replies finished behind a slow earlier event wait at most `maxReplyHoldMs`, then go without their ack. */
  private armHold(link: Link): void {
    const holdMs = this.options.maxReplyHoldMs;
    if (holdMs === Number.POSITIVE_INFINITY || link.holdTimer !== undefined) return;
    const releaseHeld = (): void => {
      link.holdTimer = undefined;
      if (this.link !== link) return;
      for (const batch of link.tracker.takeHeld()) {
        this.rememberSent(link, batch);
        this.deliver(batch.records);
      }
    };
    if (holdMs === 0) releaseHeld();
    else link.holdTimer = setTimeout(releaseHeld, holdMs).unref();
  }

  private onSynced(link: Link, count: number): void {
    if (link.state !== 'resyncing') return;
    // Users this process knew but the resync did not list left while the
    // link was down (or the intermediary restarted). They leave `sessions`
    // now, so it matches the intermediary; their `disconnect` event runs
    // after what is queued for them (a departure the intermediary reported
    // with its real reason comes first, and then this one finds nothing).
    const goneIds = new Set<string>();
    for (const [id, session] of this.sessionMap) {
      if (link.announced.has(id)) continue;
      goneIds.add(id);
      this.sessionMap.delete(id);
      this.leaving.set(id, session);
      sessionSlots(session).connected = false;
    }
    const announcedNew = link.announcedNew;
    link.announced = new Set();
    link.announcedNew = new Set();
    for (const id of goneIds) this.enqueueForUser(id, () => this.batchStore.exit(() => this.handleDisconnect(id, 'gone')));

    const kept: OutRecord[] = [];
    const dropped: OutRecord[] = [];
    for (const record of this.pending) {
      if (record.userId !== undefined && goneIds.has(record.userId) && record.ack === undefined) dropped.push(record);
      else kept.push(record);
    }
    this.forget(dropped);
    this.pending = [];
    link.state = 'up';
    this.status_ = 'up';
    this.attempt = 0;
    this.deliver(kept);

    const waits: Promise<void>[] = [];
    for (const id of announcedNew) {
      const queue = this.userQueues.get(id);
      if (queue !== undefined) waits.push(queue.tail);
    }
    void Promise.all(waits).then(() =>
      this.batchStore.exit(() => {
        if (this.link !== link) return;
        link.announcedUp = true;
        this.emitSafely('synced', [count]);
        this.emitSafely('linkUp', []);
        this.connectDeferred?.resolve();
      }),
    );
  }

  private checkPause(): void {
    const link = this.link;
    if (link !== undefined && !link.paused && this.inFlight >= this.options.maxInFlightEvents) {
      link.paused = true;
      link.socket.pause();
    }
  }

  private checkResume(): void {
    const link = this.link;
    if (link !== undefined && link.paused && this.status_ !== 'closing' && this.inFlight <= this.options.maxInFlightEvents / 2) {
      link.paused = false;
      link.socket.resume();
    }
  }

  // ------------------------------------------------------------ handlers and reporting

  /** Calls an event's listeners; returns a promise only if some returned one (so an event nobody listens to costs no `await`). */
  private runListeners(event: 'connect' | 'input' | 'disconnect', args: unknown[], sessionId: string): Promise<unknown> | undefined {
    if (this.listenerCount(event) === 0) return undefined;
    const { results, errors } = invokeListeners(this, event, args);
    for (const error of errors) this.report(new HandlerError('event', event, undefined, error, sessionId));
    const waits: Promise<unknown>[] = [];
    for (const result of results) {
      if (isThenable(result)) {
        waits.push(Promise.resolve(result).then(undefined, (error: unknown) => this.report(new HandlerError('event', event, undefined, error, sessionId))));
      }
    }
    return waits.length > 0 ? Promise.all(waits) : undefined;
  }

  /** Emits an event whose listeners are not awaited, reporting their failures. */
  private emitSafely(event: Exclude<keyof ClientEvents, 'error'>, args: unknown[]): void {
    const { results, errors } = invokeListeners(this, event, args);
    for (const error of errors) this.report(new HandlerError('event', event, undefined, error, undefined));
    for (const result of results) {
      if (isThenable(result)) {
        Promise.resolve(result).then(undefined, (error: unknown) => this.report(new HandlerError('event', event, undefined, error, undefined)));
      }
    }
  }

  /** Reports through `error`; never throws, and never loses an error for want of a listener. */
  private report(error: ImiError): void {
    if (this.listenerCount('error') === 0) {
      console.error('[imi client]', error);
      return;
    }
    const { errors } = invokeListeners(this, 'error', [error]);
    for (const thrown of errors) console.error('[imi client] an "error" listener threw', thrown, 'while handling', error);
  }

  // ------------------------------------------------------------ shutting down

  private async closeGracefully(): Promise<void> {
    if (this.status_ === 'closed') return;
    this.status_ = 'closing';
    this.connectDeferred?.reject(new ImiError('IMI_CLOSED', 'close() was called before the client was resynced'));
    clearInterval(this.tickTimer);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const link = this.link;
    if (link !== undefined && link.state !== 'connecting') {
      link.paused = true;
      link.socket.pause();
      await this.settleHandlers(this.options.closeTimeoutMs);
      if (this.link === link) {
        for (const batch of link.tracker.takeHeld()) this.deliver(batch.records);
        this.flush(link);
        await new Promise<void>((resolve) => {
          if (link.socket.destroyed) {
            resolve();
            return;
          }
          link.socket.once('close', () => resolve());
          link.socket.end();
          // end() waits for the peer; do not let a stuck intermediary keep close() pending.
          setTimeout(() => link.socket.destroy(), this.options.closeTimeoutMs).unref();
        });
      }
    }
    this.terminate(undefined);
  }

  private async settleHandlers(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    const settled = (async () => {
      while (this.userQueues.size > 0) {
        await Promise.all([...this.userQueues.values()].map((queue) => queue.tail));
      }
    })();
    await Promise.race([settled, timeout]);
    clearTimeout(timer);
  }

  /** Ends the client for good: by close() (`reason` undefined) or a fatal error. */
  private terminate(reason: ImiError | undefined): void {
    if (this.status_ === 'closed') return;
    this.status_ = 'closed';
    clearInterval(this.tickTimer);
    clearTimeout(this.reconnectTimer);
    const link = this.link;
    this.link = undefined;
    if (link !== undefined) {
      clearTimeout(link.connectTimer);
      clearTimeout(link.idleTimer);
      clearTimeout(link.holdTimer);
      link.socket.destroy();
    }
    // Frames of handlers still running are dropped as they finish (deliver() sees `closed`).
    this.forget(this.pending);
    this.pending = [];
    if (link !== undefined) {
      this.forget(link.writeQueue);
      link.writeQueue = [];
    }
    for (const session of this.sessionMap.values()) sessionSlots(session).connected = false;
    this.sessionMap.clear();
    this.leaving.clear();
    const waiting = this.connectDeferred;
    if (reason !== undefined) {
      if (waiting !== undefined && !waiting.settled) waiting.reject(reason);
      else this.report(reason);
    } else {
      waiting?.reject(new ImiError('IMI_CLOSED', 'the client was closed'));
    }
    this.emitSafely('close', [reason]);
  }
}
