/**
 * The ordered structure behind cumulative acks: events may be handled
 * concurrently (different users), but `ack: N` says every event up to `N` is
 * done, so what they produced is released in arrival order only.
 *
 * @module
 */

/** What {@link AckTracker.complete} lets go: payloads in arrival order, and the ack to send with them. */
export interface AckRelease<T> {
  /** Payloads of the events released now, in the order the events arrived. */
  readonly payloads: T[];
  /**
   * The cumulative ack to send together with those payloads: the highest
   * `seq` released so far, when it is higher than the last one returned;
   * otherwise `undefined` (nothing new to acknowledge).
   */
  readonly ack: number | undefined;
}

interface Entry<T> {
  readonly seq: number | undefined;
  done: boolean;
  payload: T | undefined;
}

/**
 * Tracks events from arrival to completion and releases their payloads (the
 * replies) in arrival order together with the cumulative ack they allow.
 *
 * Events get a ticket on arrival ({@link receive}); when one completes its
 * payload is kept until every earlier event has completed too, then the whole
 * finished prefix is released at once with the highest `seq` in it. So a
 * reply and the ack of the input it answers can always travel in one write,
 * and an ack never covers an event still being handled.
 *
 * Memory is one small entry per event between arrival and release: the
 * client bounds that number (`maxInFlightEvents`) by pausing its reads. All
 * operations are O(1) amortised, except {@link takeHeld} which is O(size).
 *
 * @typeParam T - what an event produces (the client uses its batch of frames)
 */
export class AckTracker<T> {
  private entries: Entry<T>[] = [];
  /** Index in `entries` of the oldest unreleased event. */
  private start = 0;
  /** Ticket of `entries[start]`. */
  private firstTicket = 0;
  private nextTicket = 0;
  private highestSeq = -1;
  private lastAck = -1;

  /** Events received and not released yet (running, or finished but waiting for earlier ones). */
  get size(): number {
    return this.entries.length - this.start;
  }

  /** The last ack returned by {@link complete}, or `undefined` if none yet. */
  get acked(): number | undefined {
    return this.lastAck < 0 ? undefined : this.lastAck;
  }

  /**
   * Registers an event as it arrives.
   *
   * @param seq - its `seq`, or `undefined` when it has none (acks off); it
   *   then still takes its place in the release order
   * @returns the ticket to {@link complete} it with
   */
  receive(seq?: number): number {
    this.entries.push({ seq, done: false, payload: undefined });
    return this.nextTicket++;
  }

  /**
   * Marks an event done with what it produced, and releases every payload
   * the finished prefix now allows.
   *
   * @param ticket - from {@link receive}
   * @param payload - what the event produced (released in arrival order)
   * @returns the payloads released now and the ack to send with them
   * @throws Error when the ticket is unknown or already completed (a bug in the caller)
   */
  complete(ticket: number, payload: T): AckRelease<T> {
    const index = this.start + (ticket - this.firstTicket);
    const entry = ticket >= this.firstTicket ? this.entries[index] : undefined;
    if (entry === undefined || entry.done) throw new Error(`AckTracker: ticket ${ticket} is not pending`);
    entry.done = true;
    entry.payload = payload;

    const payloads: T[] = [];
    while (this.start < this.entries.length) {
      const head = this.entries[this.start]!;
      if (!head.done) break;
      if (head.payload !== undefined) payloads.push(head.payload);
      if (head.seq !== undefined && head.seq > this.highestSeq) this.highestSeq = head.seq;
      this.start++;
      this.firstTicket++;
    }
    this.compact();
    let ack: number | undefined;
    if (this.highestSeq > this.lastAck) {
      ack = this.highestSeq;
      this.lastAck = ack;
    }
    return { payloads, ack };
  }

  /**
   * Takes the payloads of events that finished but wait behind a slower
   * earlier one, so they can be sent now (without their ack, which still
   * waits for the slow event). The events keep their place for the ack.
   *
   * @returns those payloads, in arrival order
   */
  takeHeld(): T[] {
    const taken: T[] = [];
    for (let i = this.start; i < this.entries.length; i++) {
      const entry = this.entries[i]!;
      if (entry.done && entry.payload !== undefined) {
        taken.push(entry.payload);
        entry.payload = undefined;
      }
    }
    return taken;
  }

  /**
   * Takes the payload of one event that finished but waits behind a slower
   * earlier one (see {@link takeHeld}), in O(1).
   *
   * @param ticket - from {@link receive}
   * @returns its payload, or `undefined` when it was released or taken already, or is not done
   */
  take(ticket: number): T | undefined {
    if (ticket < this.firstTicket) return undefined;
    const entry = this.entries[this.start + (ticket - this.firstTicket)];
    if (entry === undefined || !entry.done) return undefined;
    const payload = entry.payload;
    entry.payload = undefined;
    return payload;
  }

  private compact(): void {
    // Drop released entries once they are the larger part, so the array
    // never grows with the total number of events, only with those in flight.
    if (this.start === this.entries.length) {
      this.entries = [];
      this.start = 0;
    } else if (this.start >= 1024 && this.start * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }
}
