/**
 * The in-process {@link InputLedger}: FIFO queues in this process's memory.
 * O(1) per line; an entry is one object from the moment it is read to its
 * ack, linked from its session's book and from the global unacked queue.
 *
 * @module
 */
import { Fifo } from './fifo.js';
import type { InputEntry, InputLedger, LedgerLimits, LedgerSink, LedgerTotals, SessionInputs } from './ledger.js';

/** Where an entry is. A dropped or acked entry may still sit in the global queue until it reaches its head. */
const enum Where {
  /** Made, not stored (sent to a non-acking app, or being delivered). */
  Loose,
  Queued,
  /** Sent to the current app, not acked. */
  Unacked,
  /** Sent to a lost app, not acked: waits for the next one. */
  Redeliver,
  /** Acked, dropped, or its user left. */
  Done,
}

interface Entry extends InputEntry {
  seq: number;
  sentBefore: boolean;
  where: Where;
  /** Its session's book; undefined once the session closed. */
  book: Book | undefined;
}

/** One session's pending input. */
interface Book {
  readonly id: string;
  readonly queued: Fifo<Entry>;
  queuedBytes: number;
  /** Its unacked entries (sent to the current app, or kept for the next), in seq order. */
  readonly unacked: Fifo<Entry>;
  unackedBytes: number;
}

/** The default {@link InputLedger}: everything in this process's memory. */
export class MemoryLedger implements InputLedger {
  private readonly limits: LedgerLimits;
  private readonly sink: LedgerSink;
  private readonly books = new Map<string, Book>();
  private seq = 0;
  /** Entries sent to the current app, in seq order, until acked (dropped ones are skipped lazily). */
  private unacked = new Fifo<Entry>();
  /** Unacked entries, live ones only: the number `maxUnackedTotal` bounds. */
  private unackedLive = 0;
  /** Unacked entries of a lost app, in seq order, for the next one. */
  private toRedeliver = new Fifo<Entry>();
  /** Set when restored entries were added out of seq order. */
  private redeliverUnsorted = false;
  /** The seq of the last entry pushed to {@link toRedeliver}. */
  private redeliverTailSeq = 0;
  private queuedBytesTotal = 0;
  private queuedLinesTotal = 0;

  /**
   * @param limits - the bounds (see {@link LedgerLimits})
   * @param sink - told what was dropped
   */
  constructor(limits: LedgerLimits, sink: LedgerSink) {
    this.limits = limits;
    this.sink = sink;
  }

  nextSeq(): number {
    return ++this.seq;
  }

  advanceSeq(seq: number): void {
    if (seq > this.seq) this.seq = seq;
  }

  openSession(sessionId: string): void {
    // The shared empty book holds the session's place (the drain order) until its first line.
    if (!this.books.has(sessionId)) this.books.set(sessionId, UNUSED);
  }

  input(sessionId: string, value: string, txnId: string, bytes: number): InputEntry {
    const book = this.bookOf(sessionId);
    const entry: Entry = { sessionId, value, txnId, bytes, seq: 0, sentBefore: false, where: Where.Loose, book };
    return entry;
  }

  queue(input: InputEntry): void {
    const entry = input as Entry;
    const book = entry.book;
    if (book === undefined) return;
    const limits = this.limits;
    entry.where = Where.Queued;
    book.queued.push(entry);
    book.queuedBytes += entry.bytes;
    this.queuedBytesTotal += entry.bytes;
    this.queuedLinesTotal++;
    let dropped = 0;
    let which: 'maxQueuedLinesPerSession' | 'maxQueuedBytesPerSession' | 'maxQueuedBytesTotal' = 'maxQueuedLinesPerSession';
    while (
      book.queued.length > 0 &&
      (book.queued.length > limits.maxQueuedLinesPerSession || book.queuedBytes > limits.maxQueuedBytesPerSession || this.queuedBytesTotal > limits.maxQueuedBytesTotal)
    ) {
      if (dropped === 0) {
        which =
          book.queued.length > limits.maxQueuedLinesPerSession
            ? 'maxQueuedLinesPerSession'
            : book.queuedBytes > limits.maxQueuedBytesPerSession
              ? 'maxQueuedBytesPerSession'
              : 'maxQueuedBytesTotal';
      }
      const oldest = book.queued.shift()!;
      oldest.where = Where.Done;
      book.queuedBytes -= oldest.bytes;
      this.queuedBytesTotal -= oldest.bytes;
      this.queuedLinesTotal--;
      dropped++;
    }
    if (dropped > 0) this.sink.queueOverflow(book.id, which, dropped);
  }

  sent(input: InputEntry, tracked: boolean): number {
    const entry = input as Entry;
    entry.sentBefore = true;
    if (!tracked) return 0;
    entry.seq = ++this.seq;
    const book = entry.book;
    if (book === undefined) return entry.seq;
    const limits = this.limits;
    entry.where = Where.Unacked;
    this.unacked.push(entry);
    this.unackedLive++;
    book.unacked.push(entry);
    book.unackedBytes += entry.bytes;
    // Bounded like the queue: an app that never acks cannot grow memory.
    while (book.unacked.length > limits.maxQueuedLinesPerSession || book.unackedBytes > limits.maxQueuedBytesPerSession) {
      const limit = book.unacked.length > limits.maxQueuedLinesPerSession ? 'maxQueuedLinesPerSession' : 'maxQueuedBytesPerSession';
      const oldest = book.unacked.shift()!;
      book.unackedBytes -= oldest.bytes;
      this.dropUnacked(oldest, limit);
    }
    // The bound is on live inputs: entries dropped above (or of users who
    // left) still sit in the global queue until they reach its head.
    while (this.unackedLive > limits.maxUnackedTotal) {
      const oldest = this.unacked.shift()!;
      if (oldest.where === Where.Unacked) {
        this.unlink(oldest);
        this.dropUnacked(oldest, 'maxUnackedTotal');
      }
    }
    // Those dead entries must not pile up behind a live head while the app
    // never acks: sweep them once they outnumber the bound (amortised O(1)).
    if (this.unacked.length > 2 * limits.maxUnackedTotal) {
      const live = new Fifo<Entry>();
      for (const kept of this.unacked) if (kept.where === Where.Unacked) live.push(kept);
      this.unacked = live;
    }
    return entry.seq;
  }

  ack(seq: number): void {
    for (;;) {
      const oldest = this.unacked.peek();
      if (oldest === undefined || oldest.seq > seq) return;
      this.unacked.shift();
      if (oldest.where !== Where.Unacked) continue;
      oldest.where = Where.Done;
      this.unackedLive--;
      this.unlink(oldest);
    }
  }

  appLost(): void {
    // The entries stay in their sessions' books, so a user who leaves
    // meanwhile takes them along.
    for (const entry of this.unacked) {
      if (entry.where !== Where.Unacked) continue;
      entry.where = Where.Redeliver;
      this.toRedeliver.push(entry);
      this.redeliverTailSeq = entry.seq;
    }
    this.unacked = new Fifo();
  }

  drain(deliver: (entry: InputEntry) => void): void {
    let list = this.toRedeliver;
    this.toRedeliver = new Fifo();
    this.redeliverTailSeq = 0;
    if (this.redeliverUnsorted) {
      this.redeliverUnsorted = false;
      const sorted = [...list].sort((a, b) => a.seq - b.seq);
      list = new Fifo();
      for (const entry of sorted) list.push(entry);
    }
    for (const entry of list) {
      if (entry.where !== Where.Redeliver) continue;
      this.unlink(entry);
      entry.where = Where.Loose;
      this.unackedLive--;
      deliver(entry);
    }
    for (const book of this.books.values()) {
      if (book.queued.length === 0) continue;
      const queued = [...book.queued];
      book.queued.clear();
      this.queuedBytesTotal -= book.queuedBytes;
      this.queuedLinesTotal -= queued.length;
      book.queuedBytes = 0;
      for (const entry of queued) {
        entry.where = Where.Loose;
        deliver(entry);
      }
    }
  }

  closeSession(sessionId: string): void {
    const book = this.books.get(sessionId);
    if (book === undefined) return;
    this.books.delete(sessionId);
    let gone = 0;
    for (const entry of book.queued) {
      entry.where = Where.Done;
      entry.book = undefined;
      this.queuedBytesTotal -= entry.bytes;
      this.queuedLinesTotal--;
      gone++;
    }
    for (const entry of book.unacked) {
      // Sent to the current app: it has them. Kept for a next app: that app will never hear of this user.
      if (entry.where === Where.Redeliver) gone++;
      if (entry.where === Where.Unacked || entry.where === Where.Redeliver) this.unackedLive--;
      entry.where = Where.Done;
      entry.book = undefined;
    }
    if (gone > 0) this.sink.userGone(sessionId, gone);
  }

  totals(): LedgerTotals {
    return { queuedLines: this.queuedLinesTotal, queuedBytes: this.queuedBytesTotal, unacked: this.unackedLive };
  }

  sessionTotals(sessionId: string): LedgerTotals | undefined {
    const book = this.books.get(sessionId);
    if (book === undefined) return undefined;
    return { queuedLines: book.queued.length, queuedBytes: book.queuedBytes, unacked: book.unacked.length };
  }

  sessionInputs(sessionId: string): SessionInputs | undefined {
    const book = this.books.get(sessionId);
    if (book === undefined) return undefined;
    return { queued: [...book.queued].map(copy), unacked: [...book.unacked].map(copy) };
  }

  restoreSession(sessionId: string, inputs: SessionInputs): void {
    const book = this.bookOf(sessionId);
    for (const given of inputs.queued) {
      const entry = this.input(sessionId, given.value, given.txnId, given.bytes) as Entry;
      entry.sentBefore = given.sentBefore;
      this.queue(entry);
    }
    for (const given of inputs.unacked) {
      const entry = this.input(sessionId, given.value, given.txnId, given.bytes) as Entry;
      entry.seq = given.seq;
      entry.sentBefore = true;
      entry.where = Where.Redeliver;
      book.unacked.push(entry);
      book.unackedBytes += entry.bytes;
      this.unackedLive++;
      if (entry.seq < this.redeliverTailSeq) this.redeliverUnsorted = true;
      this.redeliverTailSeq = entry.seq;
      this.toRedeliver.push(entry);
      if (entry.seq > this.seq) this.seq = entry.seq;
    }
  }

  /** A session's own book, made on its first line (an idle user costs a map entry, not a book and two queues). */
  private bookOf(sessionId: string): Book {
    let book = this.books.get(sessionId);
    if (book === undefined || book === UNUSED) {
      book = newBook(sessionId);
      // On an existing key, `set` keeps the session's place in the drain order.
      this.books.set(sessionId, book);
    }
    return book;
  }

  /** Takes an unacked entry out of its session's book (it is the head: both lists are in seq order). */
  private unlink(entry: Entry): void {
    const book = entry.book;
    if (book !== undefined && book.unacked.peek() === entry) {
      book.unacked.shift();
      book.unackedBytes -= entry.bytes;
    }
  }

  private dropUnacked(entry: Entry, limit: 'maxQueuedLinesPerSession' | 'maxQueuedBytesPerSession' | 'maxUnackedTotal'): void {
    if (entry.where !== Where.Unacked && entry.where !== Where.Redeliver) return;
    entry.where = Where.Done;
    this.unackedLive--;
    this.sink.unackedOverflow(entry.sessionId, limit);
  }
}

/**
 * The book of every open session that has sent no line yet. Nothing is ever
 * added to it: entries get a book of their own ({@link MemoryLedger.bookOf}).
 */
const UNUSED: Book = Object.freeze({ id: '', queued: new Fifo<Entry>(), queuedBytes: 0, unacked: new Fifo<Entry>(), unackedBytes: 0 });

function newBook(id: string): Book {
  return { id, queued: new Fifo(), queuedBytes: 0, unacked: new Fifo(), unackedBytes: 0 };
}

function copy(entry: Entry): InputEntry {
  return { sessionId: entry.sessionId, value: entry.value, txnId: entry.txnId, bytes: entry.bytes, seq: entry.seq, sentBefore: entry.sentBefore };
}
