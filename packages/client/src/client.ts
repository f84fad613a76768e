/**
 * The application side of imi: one connection to the intermediary, kept up
 * across intermediary restarts, turned into typed events and tapable hooks.
 *
 * This file composes the parts and holds the public API; each part has its
 * own file: `link.ts` (the connection, reconnecting), `outbox.ts` (what goes
 * out: bounds, coalesced writes, replay), `dispatch.ts` (user events,
 * handlers, acks), `resync.ts` (the end of a resync), `session.ts`,
 * `events.ts`, `hooks.ts`, `options.ts`.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import { ImiError, ProtocolError, isJsonObject, txnIdSource, validateAppMessage, type JsonObject, type JsonValue, type MsspValue } from '@imi/core';
import { Dispatcher } from './dispatch.js';
import { emitReporting, reportError, type ClientEvents } from './events.js';
import { isolateTaps, type ClientHooks } from './hooks.js';
import { ClusterWorker } from './cluster/worker.js';
import type { ClusterWorkerStats } from './cluster/worker-options.js';
import { Linker, clearLinkTimers } from './link.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Outbox, toIdList } from './outbox.js';
import { Resync } from './resync.js';
import type { BroadcastOptions, OutputOptions, SendOptions } from './send-options.js';
import type { OutRecord } from './types.js';
import { mergeState, sessionSlots, type Session } from './session.js';
import { deferred, type ClientState, type ClientStatus } from './state.js';

/** Txn ids of what the app sends: a random per-process prefix and a counter (unique, cheaper than `randomUUID()` per message). */
const nextTxnId = txnIdSource();

export type { BroadcastOptions, OutputOptions, SendOptions } from './send-options.js';
export type { ClientStatus } from './state.js';

/** A GMCP package name the intermediary accepts (as its validator checks it). */
const GMCP_PACKAGE = /^[^\s\x00-\x1f\x7f]{1,128}$/;

function checkString(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string') throw new ImiError('IMI_BAD_MESSAGE', `${what} must be a string, got ${value === null ? 'null' : typeof value}`);
}

/** The `data` of an `output` message: `prompt: true` only when asked, so legacy intermediaries see the same frame as before. */
function outputData(id: string, text: string, options: Pick<OutputOptions, 'prompt'> | undefined): { id: string; value: string; prompt?: true } {
  const prompt = options?.prompt;
  if (prompt === undefined || prompt === false) return { id, value: text };
  if (prompt !== true) throw new ImiError('IMI_BAD_MESSAGE', `prompt must be true or false, got ${prompt === null ? 'null' : typeof prompt}`);
  return { id, value: text, prompt: true };
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

  private readonly state: ClientState;
  private readonly outbox: Outbox;
  private readonly dispatcher: Dispatcher;
  private readonly linker: Linker;
  /** Cluster mode (`redis` option): the worker the link goes to. */
  private readonly worker: ClusterWorker | undefined;
  private ticks = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private closePromise: Promise<void> | undefined;
  /** The last {@link setServerStatus} variables, sent again after each reconnection. */
  private serverStatus: { [name: string]: MsspValue } | undefined;

  /**
   * @param options - where the intermediary is and how to behave; every option has a default
   * @throws ImiError `IMI_CONFIG` when an option is impossible
   */
  constructor(options: ClientOptions = {}) {
    super();
    this.options = resolveClientOptions(options);
    const report = (error: ImiError): void => reportError(this, error);
    this.state = {
      options: this.options,
      emitter: this,
      status: 'idle',
      link: undefined,
      sessions: new Map<string, Session>(),
      leaving: new Map<string, Session>(),
      batchStore: new AsyncLocalStorage(),
      connectDeferred: undefined,
      report,
      emitSafely: (event, args) => emitReporting(this, event, args, report),
    };
    this.hooks = Object.freeze({
      connect: new AsyncSeriesHook<[Session]>(['session'], 'connect'),
      input: new AsyncSeriesHook<[Session, string]>(['session', 'line'], 'input'),
      buildResponse: new AsyncSeriesWaterfallHook<[string | undefined, Session, string]>(['reply', 'session', 'line'], 'buildResponse'),
      disconnect: new AsyncSeriesHook<[Session, string]>(['session', 'reason'], 'disconnect'),
    });
    for (const [name, hook] of Object.entries(this.hooks) as [string, AsyncSeriesHook<never>][]) isolateTaps(hook, name, report);
    this.outbox = new Outbox(this.state, () => this.state.emitSafely('drain', []));
    this.dispatcher = new Dispatcher(this.state, this.hooks, this.outbox, this);
    const resync = new Resync(this.state, this.outbox, this.dispatcher, () => this.linker.resetAttempts());
    this.linker = new Linker(this.state, this.instanceId, this.outbox, this.dispatcher, resync, (reason) => this.terminate(reason));
    if (options.redis !== undefined) this.worker = new ClusterWorker(options.redis, options.cluster, report);
  }

  /** Cluster mode: the partitions this worker serves now (empty otherwise). */
  get partitionsHeld(): number[] {
    return this.worker?.partitionsHeld ?? [];
  }

  /**
   * Cluster mode: this worker's counters since it started (reads, events
   * read, claimed, redelivered and acked, commits, leases gained, lost and
   * given back, Redis errors; docs/cluster.md lists them). `undefined`
   * without the `redis` option.
   */
  get clusterStats(): ClusterWorkerStats | undefined {
    return this.worker?.stats();
  }

  /** The live users, by session id, as last told by the intermediary. */
  get sessions(): ReadonlyMap<string, Session> {
    return this.state.sessions;
  }

  /** Where the client is; see {@link ClientStatus}. */
  get status(): ClientStatus {
    return this.state.status;
  }

  /** Bytes of frames accepted by `send()` and friends and not yet handed to the socket. */
  get bufferedBytes(): number {
    return this.outbox.bytes;
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
    const state = this.state;
    if (state.connectDeferred !== undefined) return state.connectDeferred.promise;
    const ready = deferred();
    state.connectDeferred = ready;
    if (state.status === 'closing' || state.status === 'closed') {
      ready.reject(new ImiError('IMI_CLOSED', 'connect() after close()'));
      return ready.promise;
    }
    if (this.options.tickIntervalMs > 0) {
      state.batchStore.exit(() => {
        this.tickTimer = setInterval(() => state.emitSafely('tick', [++this.ticks]), this.options.tickIntervalMs);
      });
    }
    if (this.worker === undefined) this.linker.open();
    else {
      // Cluster mode: the link goes to the worker's gateway, in process, once Redis was tried.
      const worker = this.worker;
      worker.start().then(
        () => {
          this.linker.setConnector(() => worker.connect(), `the cluster worker's gateway (${worker.options.workerId})`);
          if (state.status === 'idle') this.linker.open();
        },
        (error: unknown) => this.terminate(error instanceof ImiError ? error : new ImiError('IMI_CONFIG', String(error))),
      );
    }
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
   * @param options - `after` (ordering via `dep_txns`), state `updates`, and `prompt` (the text is a prompt)
   * @returns the message's txn id, for another message's `after`
   * @throws ImiError `IMI_LINK_DOWN` when the link is down and `maxPendingOutgoing` or
   *   `maxOutgoingBytes` is reached; `LimitError` (`IMI_LIMIT`) when the link is up but
   *   `maxOutgoingBytes` wait for a slow intermediary, or the frame is over `maxFrameBytes`;
   *   `IMI_CLOSED` after close; `IMI_BAD_MESSAGE` when an argument has the wrong type
   */
  send(id: string, text: string, options?: OutputOptions): string {
    checkString(id, 'send: id');
    checkString(text, 'send: text');
    const txnId = nextTxnId();
    const record = this.outbox.appRecord({ param: 'output', data: outputData(id, text, options) }, txnId, id, options);
    this.outbox.submit([record]);
    this.applyLocalUpdates(id, options?.updates);
    return txnId;
  }

  /**
   * Sends to many users at once: one `output` frame each, all or none
   * accepted, all in one write.
   *
   * @param ids - the session ids
   * @param text - the same text for all of them
   * @param options - `after` (ordering via `dep_txns`) and `prompt`, applied to every frame
   * @returns the txn ids, in the order of `ids`
   * @throws ImiError as {@link send}
   */
  multisend(ids: Iterable<string>, text: string, options?: Omit<OutputOptions, 'updates'>): string[];
  /**
   * Sends a different text to each of many users: one `output` frame each,
   * all or none accepted, all in one write.
   *
   * @param messages - `[id, text]` pairs (an array, a `Map`) or an `{ id: text }` object
   * @param options - `after` (ordering via `dep_txns`) and `prompt`, applied to every frame
   * @returns the txn ids, in the order of `messages`
   * @throws ImiError as {@link send}
   */
  multisend(messages: Iterable<readonly [string, string]> | Readonly<Record<string, string>>, options?: Omit<OutputOptions, 'updates'>): string[];
  multisend(
    first: Iterable<string> | Iterable<readonly [string, string]> | Readonly<Record<string, string>>,
    second?: string | Omit<OutputOptions, 'updates'>,
    third?: Omit<OutputOptions, 'updates'>,
  ): string[] {
    let pairs: [string, string][];
    let options: Omit<OutputOptions, 'updates'> | undefined;
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
      checkString(id, 'multisend: id');
      checkString(text, 'multisend: text');
      const txnId = nextTxnId();
      txnIds.push(txnId);
      records.push(this.outbox.appRecord({ param: 'output', data: outputData(id, text, options) }, txnId, id, options));
    }
    if (records.length > 0) this.outbox.submit(records);
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
    checkString(text, 'broadcast: text');
    const txnId = nextTxnId();
    const except = toIdList(options?.except, 'broadcast: except');
    const data: { value: string; except?: string[] } = { value: text };
    if (except !== undefined && except.length > 0) data.except = except;
    const after = options?.after === undefined ? undefined : { after: options.after };
    this.outbox.submit([this.outbox.appRecord({ param: 'broadcast', data }, txnId, undefined, after)]);
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
    checkString(id, 'setState: id');
    if (!isJsonObject(updates)) throw new ImiError('IMI_BAD_MESSAGE', 'setState: updates must be an object', { sessionId: id });
    const txnId = nextTxnId();
    this.outbox.submit([this.outbox.appRecord({ param: 'state', data: { id } }, txnId, id, { ...options, updates })]);
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
    checkString(id, 'disconnect: id');
    if (farewell !== undefined) checkString(farewell, 'disconnect: farewell');
    const txnId = nextTxnId();
    const data: { id: string; value?: string } = { id };
    if (farewell !== undefined) data.value = farewell;
    this.outbox.submit([this.outbox.appRecord({ param: 'disconnect', data }, txnId, id, options)]);
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
    checkString(id, 'setEcho: id');
    if (typeof visible !== 'boolean') throw new ImiError('IMI_BAD_MESSAGE', 'setEcho: visible must be a boolean', { sessionId: id });
    const txnId = nextTxnId();
    this.outbox.submit([this.outbox.appRecord({ param: 'telnet', data: { id, echo: visible } }, txnId, id, options)]);
    return txnId;
  }

  /**
   * Telnet users whose MUD client speaks GMCP (`session.telnet.gmcp`) or
   * MSDP (`session.telnet.msdp`): sends a GMCP message, in order with the
   * text sent to them; to a user with MSDP but not GMCP it goes as the MSDP
   * variable `packageName` (`protocol` picks one: `"gmcp"` or `"msdp"`).
   * Dropped by the intermediary for users with neither.
   *
   * @param id - the session id
   * @param packageName - e.g. `"Char.Vitals"` (no spaces, at most 128 characters)
   * @param value - the payload, sent as JSON; none when undefined
   * @param options - `after`; `protocol`: `"gmcp"` or `"msdp"` only (default: GMCP when on, else MSDP)
   * @returns the message's txn id
   * @throws ImiError `IMI_BAD_MESSAGE` for a bad package name; otherwise as {@link send}
   */
  sendGmcp(id: string, packageName: string, value?: JsonValue, options?: Omit<SendOptions, 'updates'> & { protocol?: 'gmcp' | 'msdp' }): string {
    checkString(id, 'sendGmcp: id');
    checkString(packageName, 'sendGmcp: packageName');
    if (!GMCP_PACKAGE.test(packageName)) throw new ImiError('IMI_BAD_MESSAGE', `sendGmcp: ${JSON.stringify(packageName.slice(0, 64))} is not a GMCP package name (1-128 characters, no spaces)`, { sessionId: id });
    const protocol = options?.protocol;
    if (protocol !== undefined && protocol !== 'gmcp' && protocol !== 'msdp') throw new ImiError('IMI_BAD_MESSAGE', 'sendGmcp: protocol must be "gmcp" or "msdp"', { sessionId: id });
    const txnId = nextTxnId();
    const data: { id: string; package: string; value?: JsonValue; protocol?: 'gmcp' | 'msdp' } = { id, package: packageName };
    if (value !== undefined) data.value = value;
    if (protocol !== undefined) data.protocol = protocol;
    this.outbox.submit([this.outbox.appRecord({ param: 'gmcp', data }, txnId, id, options)]);
    return txnId;
  }

  /**
   * Sets the variables the intermediary answers MUD listing crawlers with
   * (MSSP, on telnet listeners): `{ GENRE: 'Fantasy', CODEBASE: 'mine 1.0',
   * PORT: [4000, 4443] }` (names from the MSSP spec; text, numbers, or arrays
   * of them). Each call replaces the previous set. The intermediary keeps it
   * across app restarts and fills in `NAME` (unless given here), `PLAYERS`
   * and `UPTIME` itself; the client sends it again after each reconnection,
   * so a restarted intermediary has it too.
   *
   * @param variables - MSSP variable names to values
   * @returns the message's txn id
   * @throws ImiError `IMI_BAD_MESSAGE` when a name or value is not one (control characters, not text or a number)
   */
  setServerStatus(variables: { [name: string]: MsspValue }): string {
    const probe = validateAppMessage({ param: 'mssp', data: { variables } });
    if (probe instanceof ProtocolError) throw new ImiError('IMI_BAD_MESSAGE', `setServerStatus: ${probe.message}`);
    const first = this.serverStatus === undefined;
    this.serverStatus = structuredClone(variables);
    if (first) this.on('linkUp', () => this.submitServerStatus());
    return this.submitServerStatus();
  }

  private submitServerStatus(): string {
    const txnId = nextTxnId();
    this.outbox.submit([this.outbox.appRecord({ param: 'mssp', data: { variables: this.serverStatus! } }, txnId, undefined, undefined)]);
    return txnId;
  }

  private applyLocalUpdates(id: string, updates: JsonObject | undefined): void {
    if (updates === undefined) return;
    const session = this.state.sessions.get(id);
    if (session !== undefined) {
      const slots = sessionSlots(session);
      slots.state = mergeState(slots.state, updates);
    }
  }

  // ------------------------------------------------------------ shutting down

  private async closeGracefully(): Promise<void> {
    const state = this.state;
    if (state.status === 'closed') return;
    state.status = 'closing';
    state.connectDeferred?.reject(new ImiError('IMI_CLOSED', 'close() was called before the client was resynced'));
    clearInterval(this.tickTimer);
    this.linker.cancelReconnect();
    const link = state.link;
    if (link !== undefined && link.state !== 'connecting') {
      link.paused = true;
      link.socket.pause();
      await this.dispatcher.settle(this.options.closeTimeoutMs);
      if (state.link === link) {
        for (const batch of link.tracker.takeHeld()) this.outbox.deliver(batch.records);
        this.outbox.flush(link);
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

  /** Ends the client for good: by close() (`reason` undefined) or a fatal error. */
  private terminate(reason: ImiError | undefined): void {
    const state = this.state;
    if (state.status === 'closed') return;
    state.status = 'closed';
    clearInterval(this.tickTimer);
    this.linker.cancelReconnect();
    const link = state.link;
    state.link = undefined;
    if (link !== undefined) {
      clearLinkTimers(link);
      link.socket.destroy();
    }
    // Frames of handlers still running are dropped as they finish (deliver() sees `closed`).
    this.outbox.discard(link);
    for (const session of state.sessions.values()) sessionSlots(session).connected = false;
    state.sessions.clear();
    state.leaving.clear();
    const waiting = state.connectDeferred;
    if (reason !== undefined) {
      if (waiting !== undefined && !waiting.settled) waiting.reject(reason);
      else state.report(reason);
    } else {
      waiting?.reject(new ImiError('IMI_CLOSED', 'the client was closed'));
    }
    void this.worker?.stop();
    state.emitSafely('close', [reason]);
  }
}
