/**
 * The input ledger: what keeps a user's input safe between the moment they
 * typed it and the moment an app acknowledged it. This file is the
 * extension point — the intermediary talks only to {@link InputLedger};
 * `memory-ledger.ts` is the in-process back end, and a shared one (Redis
 * Streams, where a consumer group's pending entries are the unacked input)
 * can implement the same interface without a change outside `delivery/`.
 *
 * @module
 */

/**
 * One line of user input as the ledger keeps it. Created by
 * {@link InputLedger.input}; the ledger owns `seq` and `sentBefore` (read
 * only here), the rest never changes.
 */
export interface InputEntry {
  /** The session (user) it came from. */
  readonly sessionId: string;
  /** The line, UTF-8 text without its end of line. */
  readonly value: string;
  /** Its `txn_id` (a UUID), kept across redeliveries so an app can deduplicate. */
  readonly txnId: string;
  /** Its size in UTF-8 bytes: what the byte bounds count. */
  readonly bytes: number;
  /** The `seq` it was last sent with to an acking app; 0 while it never was. */
  readonly seq: number;
  /** Whether an app already got it (its next delivery is a redelivery: `redelivered: true`). */
  readonly sentBefore: boolean;
}

/**
 * The bounds of a ledger. Every count is of *live* entries (dropped ones do
 * not count). Each has an option of the same name and a documented default
 * in `options.ts`.
 */
export interface LedgerLimits {
  /** Lines one session may have queued while no app is connected; also the most unacked lines per session. */
  maxQueuedLinesPerSession: number;
  /** Bytes one session may have queued; also the most unacked bytes per session. */
  maxQueuedBytesPerSession: number;
  /** Bytes queued over all sessions. */
  maxQueuedBytesTotal: number;
  /** Inputs unacked (or waiting for redelivery) over all sessions. */
  maxUnackedTotal: number;
}

/** The bound a queued line was dropped for. */
export type QueueLimit = 'maxQueuedLinesPerSession' | 'maxQueuedBytesPerSession' | 'maxQueuedBytesTotal';
/** The bound an unacked input was dropped for (it will not be redelivered). */
export type UnackedLimit = 'maxQueuedLinesPerSession' | 'maxQueuedBytesPerSession' | 'maxUnackedTotal';

/**
 * What a ledger tells its owner about input it had to give up. The owner
 * counts, logs and tells the user; the ledger only decides what goes.
 */
export interface LedgerSink {
  /**
   * Queueing one line pushed a session over `limit`: its `count` oldest
   * queued lines were dropped (once per {@link InputLedger.queue} call).
   */
  queueOverflow(sessionId: string, limit: QueueLimit, count: number): void;
  /** An unacked input was dropped for `limit`: it will not be redelivered (once per input). */
  unackedOverflow(sessionId: string, limit: UnackedLimit): void;
  /**
   * A session closed with `count` inputs no app will get: queued ones, and
   * unacked ones kept for a next app (input the current app was sent is
   * not counted: it has it).
   */
  userGone(sessionId: string, count: number): void;
}

/** The ledger's numbers, for `stats()`. */
export interface LedgerTotals {
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet, including those kept for redelivery. */
  unacked: number;
}

/** What a ledger holds for one session, oldest first (the snapshot of a session's input). */
export interface SessionInputs {
  /** Input typed while no app was connected, in the order typed. */
  queued: InputEntry[];
  /** Input sent to an acking app and not acked (or kept for redelivery), in `seq` order. */
  unacked: InputEntry[];
}

/**
 * Keeps user input from the moment it is read until an app acknowledged it.
 *
 * Semantics every back end keeps:
 *
 * - **Numbering.** {@link nextSeq} hands out the `seq` of every event for an
 *   acking app (`connect`, `disconnect` and `input`), growing by one over the
 *   ledger's life, so an app's cumulative `ack` covers them all.
 * - **Queue while the app is away.** {@link queue} keeps a line for the next
 *   app, per session in the order typed, within {@link LedgerLimits}; past a
 *   bound the *oldest* queued lines of that session go first.
 * - **Unacked until acked.** {@link sent} records that an acking app got an
 *   entry; it stays until an {@link ack} with a `seq` at or past its own.
 *   Past a bound the oldest unacked input is dropped (never redelivered).
 * - **Redelivery.** {@link appLost} keeps every unacked entry for the next
 *   app; {@link drain} hands them out first, in the order of their old
 *   `seq`, then the queued lines, per session in order. A drained entry
 *   sent again gets a new `seq` and keeps its `txnId`.
 * - **A user leaving** takes their pending input along ({@link closeSession}).
 *
 * Synchronous on purpose, for now: the hot path (one {@link input} and one
 * {@link sent} per line) must not build promises, and the in-memory back end
 * never waits. A remote back end would keep this interface by writing
 * through (its own pipelined, ordered commands) and holding in memory what
 * the calls return, or the interface grows `Promise`-returning variants for
 * {@link drain} and {@link ack} — the only calls whose result the
 * intermediary waits on. Nothing here hands out internal queues, so no
 * caller depends on Fifo internals.
 */
export interface InputLedger {
  /** The next `seq` (1 for the first event of the ledger's life). */
  nextSeq(): number;
  /**
   * Numbers from here on start past `seq` (a successor process goes on
   * from where its predecessor's numbering stopped, so an app never sees a
   * `seq` twice). A lower `seq` changes nothing.
   */
  advanceSeq(seq: number): void;
  /**
   * Starts a session's book. Sessions are drained in the order they were
   * opened. Opening one that is open does nothing.
   */
  openSession(sessionId: string): void;
  /**
   * Makes the entry for one line of input. Nothing is stored until it is
   * {@link queue}d or {@link sent}.
   *
   * @param bytes - its UTF-8 size (the caller has it already)
   */
  input(sessionId: string, value: string, txnId: string, bytes: number): InputEntry;
  /** Keeps an entry for the next app (no app is connected). Bounds apply; see {@link LedgerSink.queueOverflow}. */
  queue(entry: InputEntry): void;
  /**
   * An app was sent the entry. With `tracked` (an acking app) it gets the
   * next `seq` and stays unacked until acked; bounds apply (see
   * {@link LedgerSink.unackedOverflow}).
   *
   * @returns the `seq` it was sent with, or 0 when not tracked
   */
  sent(entry: InputEntry, tracked: boolean): number;
  /** The app acknowledged every event up to and including `seq` (cumulative). */
  ack(seq: number): void;
  /** The app is gone: what it did not ack waits, in `seq` order, for the next one. */
  appLost(): void;
  /**
   * Hands every kept entry to `deliver`, removed from the ledger first (so
   * `deliver` may call {@link sent} on it): redeliveries in their old `seq`
   * order, then queued input per session in the order typed.
   */
  drain(deliver: (entry: InputEntry) => void): void;
  /**
   * Forgets a session and its pending input (see {@link LedgerSink.userGone}).
   * Unknown ids are ignored.
   */
  closeSession(sessionId: string): void;
  /** Numbers over all sessions. */
  totals(): LedgerTotals;
  /** One session's numbers; undefined for a session that is not open. */
  sessionTotals(sessionId: string): LedgerTotals | undefined;
  /** Copies of what a session has pending, for a snapshot; undefined for a session that is not open. */
  sessionInputs(sessionId: string): SessionInputs | undefined;
  /**
   * Opens a session with pending input taken from a snapshot (a handover):
   * queued lines are queued again; unacked ones are kept for redelivery to
   * the next app, merged with the others by their old `seq`. Later `seq`
   * numbers start past the highest one restored.
   */
  restoreSession(sessionId: string, inputs: SessionInputs): void;
}
