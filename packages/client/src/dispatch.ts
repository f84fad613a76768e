/**
 * Incoming user events turned into the app's handlers: one queue per user
 * (a user's events run one at a time, in order; different users' run
 * concurrently), the `connect`/`input`/`disconnect` listeners and hooks,
 * read pausing past `maxInFlightEvents`, and the release of each event's
 * replies with its cumulative ack.
 *
 * @module
 */
import { ImiError, type ConnectMessage, type GmcpMessage, type InputMessage, type TelnetInfoMessage, type UserDisconnectMessage } from '@imi/core';
import { HandlerError } from './errors.js';
import { invokeListeners } from './events.js';
import { callHook, type ClientHooks } from './hooks.js';
import { REDELIVERY_MEMORY } from './options.js';
import type { Outbox } from './outbox.js';
import { Session, sessionSlots, type SessionOwner } from './session.js';
import { describeError, isThenable, type ClientState } from './state.js';
import type { Batch, Link } from './types.js';

interface UserQueue {
  tail: Promise<void>;
  size: number;
}

/** Runs the app's handlers for user events, in order per user, and releases their replies with acks. */
export class Dispatcher {
  /** Events received and not yet handled, across links. */
  private inFlight = 0;
  private readonly userQueues = new Map<string, UserQueue>();
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
   * @param state - what the parts share
   * @param hooks - the client's hooks
   * @param outbox - where replies go
   * @param owner - what sessions call back into (the client's sending methods)
   */
  constructor(
    private readonly state: ClientState,
    private readonly hooks: ClientHooks,
    private readonly outbox: Outbox,
    private readonly owner: SessionOwner,
  ) {}

  /** Users with events queued or running. */
  get busyUsers(): number {
    return this.userQueues.size;
  }

  /** The promise that settles once the user's queued events are handled, if any are. */
  userTail(id: string): Promise<void> | undefined {
    return this.userQueues.get(id)?.tail;
  }

  /** A `connect`, `input` or `disconnect` from the intermediary on `link`. */
  onUserEvent(link: Link, message: ConnectMessage | InputMessage | UserDisconnectMessage): void {
    const state = this.state;
    const id = message.data.id;
    const ticket = link.tracker.receive(state.options.acks ? message.seq : undefined);
    // A user named in hello.known and told gone now may still be in `sessions` at `synced` (their departure queued
    // behind a handler from the last link): they must not be kept.
    if (message.param === 'disconnect' && link.state === 'resyncing') link.knownSent?.delete(id);
    if (message.param === 'connect' && link.state === 'resyncing') {
      link.announced.add(id);
      if (state.sessions.has(id)) {
        // This process already knows the user (a short outage): nothing to
        // run, and nothing to wait for behind handlers still running for them.
        this.release(link, ticket, { generation: link.generation, records: [], closed: true, inputTxn: undefined, seq: message.seq });
        return;
      }
      link.announcedNew.add(id);
    }
    // Only input with a `seq` is redelivered if unacked: only its replies are kept for that.
    const inputTxn = message.param === 'input' && message.seq !== undefined ? message.txn_id : undefined;
    const batch: Batch = { generation: link.generation, records: [], closed: false, inputTxn, seq: message.seq };
    this.inFlight++;
    this.checkPause();

    // The original Perl intermediary does not say `resumed`: a user it
    // announces while the link is resyncing was there before this app.
    const resumed = message.param === 'connect' && (message.data.resumed ?? link.state === 'resyncing');
    let replay = false;
    if (message.param === 'input') {
      // Input this process already took (before a short outage) comes back
      // unacked. Its handlers do not run twice: the replies they made and
      // the intermediary did not take (written to the broken link, still
      // queued, held behind a slower event, or made by a handler that
      // finishes only now) were set aside by the outbox, and go out here,
      // with this event's ack. They are taken when this event's turn comes
      // in the user's queue, not now: a handler of this input still
      // running from the broken link is ahead in that queue, and once it
      // is done its replies are set aside too.
      // Redeliveries come first on a link: past them the index is not needed.
      if (message.redelivered !== true) this.handledIndex = undefined;
      replay = message.redelivered === true && (this.outbox.hasReplayable(message.txn_id) || this.wasHandled(message.txn_id));
    }
    const queue = this.userQueues.get(id);
    if (queue !== undefined) {
      this.chain(id, queue, () => this.runEvent(batch, ticket, message, resumed, replay));
      return;
    }
    // Nothing queued for the user: the event runs now, with no closure,
    // promise or queue unless a handler returns a promise (see enqueueForUser).
    let pending: Promise<void> | undefined;
    try {
      pending = this.runEvent(batch, ticket, message, resumed, replay);
    } catch (error) {
      this.internalError(id, error);
      return;
    }
    if (pending !== undefined) this.chain(id, this.newQueue(id, pending), undefined);
  }

  /**
   * Runs a user event's handlers in its batch, then releases its replies
   * (at once when the handlers finished synchronously, else when their
   * promise settles).
   *
   * @returns a promise only when a handler returned one
   */
  private runEvent(batch: Batch, ticket: number, message: ConnectMessage | InputMessage | UserDisconnectMessage, resumed: boolean, replay: boolean): Promise<void> | undefined {
    let pending: Promise<void> | undefined;
    try {
      pending = this.state.batchStore.run(batch, this.handleEvent, batch, message, resumed, replay);
    } catch (error) {
      this.eventFailed(message, error);
    }
    if (pending === undefined) {
      this.finishEvent(batch, ticket);
      return undefined;
    }
    return pending.then(
      () => this.finishEvent(batch, ticket),
      (error: unknown) => {
        this.eventFailed(message, error);
        this.finishEvent(batch, ticket);
      },
    );
  }

  /** The handlers of one user event (one function for all, made once: no closure per event). */
  private readonly handleEvent = (batch: Batch, message: ConnectMessage | InputMessage | UserDisconnectMessage, resumed: boolean, replay: boolean): Promise<void> | undefined => {
    const id = message.data.id;
    if (message.param === 'connect') return this.handleConnect(batch, message.data, resumed);
    if (message.param === 'disconnect') return this.handleDisconnect(id, message.data.reason);
    if (!replay) return this.handleInput(batch, id, message.data.value, message.txn_id);
    const taken = this.outbox.takeReplayable(message.txn_id);
    if (taken !== undefined) {
      for (const record of taken.records) batch.records.push({ ...record, ack: undefined, written: false });
      this.outbox.bytes += taken.bytes;
    }
    return undefined;
  };

  private eventFailed(message: ConnectMessage | InputMessage | UserDisconnectMessage, error: unknown): void {
    this.state.report(new ImiError('IMI_PLUGIN', `handling ${message.param} failed: ${describeError(error)}`, { cause: error, sessionId: message.data.id }));
  }

  /**
   * `telnet` and `gmcp` from the intermediary: not acked, handled in order
   * with the user's other events; what their listeners send goes out at once.
   */
  onTelnetEvent(message: TelnetInfoMessage | GmcpMessage): void {
    const state = this.state;
    const id = message.data.id;
    this.enqueueForUser(id, () =>
      state.batchStore.exit(() => {
        const session = state.sessions.get(id);
        if (session === undefined) return undefined;
        if (message.param === 'telnet') {
          // After a reconnect the intermediary sends the info of every telnet user it cannot be sure the app heard
          // (what was written to a lost link may not have arrived): the app hears only what changed.
          if (session.telnet !== undefined && JSON.stringify(session.telnet) === JSON.stringify(message.data.telnet)) return undefined;
          sessionSlots(session).telnet = Object.freeze({ ...message.data.telnet });
          state.emitSafely('telnet', [session, session.telnet]);
        } else {
          state.emitSafely('gmcp', [session, message.data.package, message.data.value, message.data.protocol ?? 'gmcp']);
        }
        return undefined;
      }),
    );
  }

  /** Runs the `disconnect` handlers of a user a resync found gone, after what is queued for them. */
  enqueueGone(id: string): void {
    this.enqueueForUser(id, () => this.state.batchStore.exit(() => this.handleDisconnect(id, 'gone')));
  }

  /**
   * Runs a user's task after what is queued for them. A user with nothing
   * queued or running has it run at once, and when it finishes
   * synchronously (every handler did) no queue, promise or microtask is
   * made: the common case, and what a resync of many users is made of.
   * Only a task that returns a promise makes the user's queue.
   */
  private enqueueForUser(id: string, task: () => Promise<void> | undefined): void {
    let queue = this.userQueues.get(id);
    if (queue === undefined) {
      let pending: Promise<void> | undefined;
      try {
        pending = task();
      } catch (error) {
        this.internalError(id, error);
        return;
      }
      if (pending !== undefined) this.chain(id, this.newQueue(id, pending), undefined);
      return;
    }
    this.chain(id, queue, task);
  }

  /** A queue for a user whose task is running and returned `pending`: their later events wait behind it. */
  private newQueue(id: string, pending: Promise<void>): UserQueue {
    const queue = { tail: pending, size: 0 };
    this.userQueues.set(id, queue);
    return queue;
  }

  /** Queues `task` after the user's tail (or, without a task, waits for the tail that is already running). */
  private chain(id: string, own: UserQueue, task: (() => Promise<void> | undefined) | undefined): void {
    own.size++;
    const done = (): void => {
      if (--own.size === 0 && this.userQueues.get(id) === own) this.userQueues.delete(id);
    };
    const started = task === undefined ? own.tail : own.tail.then(task);
    own.tail = started.then(done, (error: unknown) => {
      done();
      this.internalError(id, error);
    });
  }

  private internalError(id: string, error: unknown): void {
    this.state.report(new ImiError('IMI_PLUGIN', `internal error for session ${id}: ${describeError(error)}`, { cause: error, sessionId: id }));
  }

  /** Whether an event of an earlier link, not started before that link broke, should be skipped. */
  private isStale(batch: Batch): boolean {
    return this.state.link?.generation !== batch.generation;
  }

  /** Returns a promise only when a listener or tap did (see enqueueForUser). */
  private handleConnect(batch: Batch, data: ConnectMessage['data'], resumed: boolean): Promise<void> | undefined {
    // The next link's resync announces the user again if they are still
    // there; adding them now could leave a user who left meanwhile.
    if (this.isStale(batch)) return undefined;
    const sessions = this.state.sessions;
    if (sessions.get(data.id) !== undefined) {
      // The same process after a short outage: it already knows the user,
      // and its local state already includes every update it made (some may
      // still be on their way), so it is kept.
      return undefined;
    }
    const session = new Session(this.owner, data, resumed);
    sessions.set(session.id, session);
    const listening = this.runListeners('connect', [session], session.id);
    if (listening !== undefined) return listening.then(() => this.connectTaps(session));
    return this.connectTaps(session);
  }

  private connectTaps(session: Session): Promise<void> | undefined {
    if (this.hooks.connect.taps.length === 0) return undefined;
    return callHook(this.hooks.connect, [session], false) as Promise<void> | undefined;
  }

  /** Returns a promise only when a listener or tap did (see enqueueForUser). */
  private handleInput(batch: Batch, id: string, line: string, txnId: string): Promise<void> | undefined {
    const state = this.state;
    // With acks, an input not started before its link broke is redelivered: handle it then.
    if (state.options.acks && this.isStale(batch)) return undefined;
    const session = state.sessions.get(id);
    if (session === undefined) {
      if (!this.isStale(batch)) state.report(new ImiError('IMI_UNKNOWN_ID', `input for a session never announced: ${id}`, { sessionId: id, txnId }));
      return undefined;
    }
    this.rememberInput(txnId);
    const listening = this.runListeners('input', [session, line], id);
    if (listening !== undefined) return listening.then(() => this.inputTaps(session, id, line));
    return this.inputTaps(session, id, line);
  }

  private inputTaps(session: Session, id: string, line: string): Promise<void> | undefined {
    const hooks = this.hooks;
    if (hooks.input.taps.length > 0) {
      const tapped = callHook(hooks.input, [session, line], false);
      if (tapped !== undefined) return Promise.resolve(tapped).then(() => this.respond(session, id, line));
    }
    return this.respond(session, id, line);
  }

  private respond(session: Session, id: string, line: string): Promise<void> | undefined {
    const hooks = this.hooks;
    if (hooks.buildResponse.taps.length === 0) return undefined;
    const reply: unknown = callHook(hooks.buildResponse, [undefined, session, line], true);
    if (isThenable(reply)) return Promise.resolve(reply).then((value) => this.sendReply(id, value));
    this.sendReply(id, reply);
    return undefined;
  }

  private sendReply(id: string, reply: unknown): void {
    const state = this.state;
    if (reply === undefined || reply === '') return;
    if (typeof reply !== 'string') {
      state.report(new HandlerError('hook', 'buildResponse', undefined, new TypeError(`the reply must be a string or undefined, got ${typeof reply}`), id));
      return;
    }
    try {
      this.owner.send(id, reply);
    } catch (error) {
      state.report(error instanceof ImiError ? error : new HandlerError('hook', 'buildResponse', undefined, error, id));
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

  /** Returns a promise only when a listener or tap did (see enqueueForUser). */
  private handleDisconnect(id: string, reason: string): Promise<void> | undefined {
    const state = this.state;
    // A departure is a fact whatever link told it: always handled.
    const session = state.sessions.get(id) ?? state.leaving.get(id);
    if (session === undefined) return undefined;
    state.sessions.delete(id);
    state.leaving.delete(id);
    sessionSlots(session).connected = false;
    const listening = this.runListeners('disconnect', [session, reason], id);
    if (listening !== undefined) return listening.then(() => this.disconnectTaps(session, reason));
    return this.disconnectTaps(session, reason);
  }

  private disconnectTaps(session: Session, reason: string): Promise<void> | undefined {
    if (this.hooks.disconnect.taps.length === 0) return undefined;
    return callHook(this.hooks.disconnect, [session, reason], false) as Promise<void> | undefined;
  }

  /** An event's handlers are done: its batch takes no more replies, and goes out with its ack (in arrival order). */
  private finishEvent(batch: Batch, ticket: number): void {
    batch.closed = true;
    this.inFlight--;
    this.checkResume();
    const link = this.state.link;
    if (link === undefined || link.generation !== batch.generation) {
      // Its link is gone: the ack would mean nothing to the next one (which
      // redelivers what was not acked). Replies to an input wait for its
      // redelivery (see outbox.setAside); other frames still go out.
      if (batch.inputTxn !== undefined && this.state.options.acks) this.outbox.setAside(batch);
      else this.outbox.deliver(batch.records);
      return;
    }
    this.release(link, ticket, batch);
  }

  /**
   * A finished event's replies go out in arrival order with the cumulative
   * ack; behind a slower earlier event they wait for it (`maxReplyHoldMs`),
   * except on a link that takes per-event acks, where they go at once with
   * their own (`done`): never held, never without an ack.
   */
  private release(link: Link, ticket: number, batch: Batch): void {
    this.outbox.release(link, link.tracker.complete(ticket, batch));
    if (link.tracker.size === 0) return;
    if (!link.eventAcks || !this.state.options.acks) {
      this.armHold(link);
      return;
    }
    const held = link.tracker.take(ticket);
    if (held !== undefined) this.outbox.releaseDone(link, held);
  }

  /** Replies finished behind a slow earlier event wait at most `maxReplyHoldMs`, then go without their ack. */
  private armHold(link: Link): void {
    const holdMs = this.state.options.maxReplyHoldMs;
    if (holdMs === Number.POSITIVE_INFINITY || link.holdTimer !== undefined) return;
    const releaseHeld = (): void => {
      link.holdTimer = undefined;
      if (this.state.link !== link) return;
      for (const batch of link.tracker.takeHeld()) {
        this.outbox.rememberSent(link, batch);
        this.outbox.deliver(batch.records);
      }
    };
    if (holdMs === 0) releaseHeld();
    else link.holdTimer = setTimeout(releaseHeld, holdMs).unref();
  }

  /** Stops reading from the intermediary while `maxInFlightEvents` events are being handled. */
  checkPause(): void {
    const link = this.state.link;
    if (link !== undefined && !link.paused && this.inFlight >= this.state.options.maxInFlightEvents) {
      link.paused = true;
      link.socket.pause();
    }
  }

  private checkResume(): void {
    const state = this.state;
    const link = state.link;
    if (link !== undefined && link.paused && state.status !== 'closing' && this.inFlight <= state.options.maxInFlightEvents / 2) {
      link.paused = false;
      link.socket.resume();
    }
  }

  /** Calls an event's listeners; returns a promise only if some returned one (so an event nobody listens to costs no `await`). */
  private runListeners(event: 'connect' | 'input' | 'disconnect', args: unknown[], sessionId: string): Promise<unknown> | undefined {
    const state = this.state;
    if (state.emitter.listenerCount(event) === 0) return undefined;
    const { results, errors } = invokeListeners(state.emitter, event, args);
    for (const error of errors) state.report(new HandlerError('event', event, undefined, error, sessionId));
    const waits: Promise<unknown>[] = [];
    for (const result of results) {
      if (isThenable(result)) {
        waits.push(Promise.resolve(result).then(undefined, (error: unknown) => state.report(new HandlerError('event', event, undefined, error, sessionId))));
      }
    }
    return waits.length > 0 ? Promise.all(waits) : undefined;
  }

  /** Waits (at most `timeoutMs`) until no user has events queued or running. */
  async settle(timeoutMs: number): Promise<void> {
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

  /** Whether reading should start paused on a new link (handlers of an earlier one are still busy). */
  get saturated(): boolean {
    return this.inFlight >= this.state.options.maxInFlightEvents;
  }
}
