/**
 * Users who half-closed (`printf 'look\r\n' | nc`, `nc -q1`, scripted
 * clients): they send no more, but still read. Their session stays open
 * until the app has answered what they sent, at most `halfCloseGraceMs`
 * after their input ended; then it closes with reason `closed`.
 *
 * "Answered" means: nothing of theirs is queued for an app or held by the
 * input rate, and then, with an acking app, every line of theirs acked;
 * with an app without acks, `output` to them after their last line. The
 * close waits for the rest of the event loop turn, so the other messages
 * the app sent in the same read go out too.
 *
 * @module
 */
import type { InputLedger } from '../delivery/ledger.js';
import type { Connection } from './connection.js';

/** The half-closed users waiting for their answer, each with their grace timer. */
export class HalfClosedUsers {
  private readonly waiting = new Map<Connection, NodeJS.Timeout>();
  private readonly closeScheduled = new Set<Connection>();

  /**
   * @param graceMs - the longest wait for the answer (`halfCloseGraceMs`)
   * @param ledger - where their queued and unacked lines are
   * @param appAcks - whether the connected app acks
   */
  constructor(
    private readonly graceMs: number,
    private readonly ledger: InputLedger,
    private readonly appAcks: () => boolean,
  ) {}

  /** Whether anyone waits (so an ack costs nothing while nobody does). */
  get size(): number {
    return this.waiting.size;
  }

  /** A user's input ended: their session closes once answered, or after the grace. */
  begin(connection: Connection): void {
    if (connection.closing || this.waiting.has(connection)) return;
    const timer = setTimeout(() => this.finish(connection), this.graceMs);
    timer.unref();
    this.waiting.set(connection, timer);
    this.check(connection);
  }

  /** Something that may be the answer happened for this user: output, released lines. */
  check(connection: Connection): void {
    if (!this.waiting.has(connection) || this.closeScheduled.has(connection)) return;
    if (connection.delayedCount > 0) return;
    const totals = this.ledger.sessionTotals(connection.id);
    if (totals !== undefined && (totals.queuedLines > 0 || totals.unacked > 0)) return;
    // An acking app may ack a line it answers with silence; output alone may be half its answer.
    if (!this.appAcks() && connection.awaitingReply) return;
    this.closeScheduled.add(connection);
    setImmediate(() => this.finish(connection));
  }

  /** The app acked: a waiting user with nothing unacked left has their answer. */
  acked(): void {
    for (const connection of this.waiting.keys()) this.check(connection);
  }

  /** The user is closing for another reason (kicked, shutdown, gone): stop waiting. */
  forget(connection: Connection): void {
    const timer = this.waiting.get(connection);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.waiting.delete(connection);
    this.closeScheduled.delete(connection);
  }

  private finish(connection: Connection): void {
    if (!this.waiting.has(connection)) return;
    this.forget(connection);
    // Lines still queued go with the session (counted as dropped: userGone).
    connection.close(undefined, 'closed');
  }
}
