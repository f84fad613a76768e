/**
 * `dep_txns` ordering: an app message is held until the app messages it
 * names have been processed. The original kept every txn id forever and
 * copied the table per message (its throughput fell sevenfold within 51k
 * messages); here both the memory of processed ids and the held messages
 * are bounded, and each step is O(1) per id.
 *
 * @module
 */
import { Fifo } from './fifo.js';

/** A message waiting for its dependencies. */
export interface HeldMessage<T> {
  /** The message. */
  readonly message: T;
  /** When it started waiting (ms, monotonic-ish `Date.now()`). */
  readonly since: number;
  /** How many of its dependencies are still missing. */
  missing: number;
  /** Set once it was released or expired. */
  done: boolean;
}

/** What {@link DependencyTracker.markProcessed} returns when nothing was released (most calls). */
const NONE: readonly never[] = Object.freeze([]);

/**
 * Tracks processed txn ids and held messages for one app connection.
 *
 * The processed ids are a ring of the last `memory` ids. Most apps never
 * send `dep_txns`, yet every message they send has a `txn_id`: a `Set` of
 * 65,536 strings updated per message was about 7 % of the intermediary's
 * CPU under load. So the ring is all that is kept until the first
 * `dep_txns` asks for an id; from then on a `Set` index is kept with it.
 */
export class DependencyTracker<T> {
  /** The last `memory` processed ids; oldest at {@link ringNext} once it is full. */
  private ring: string[] = [];
  /** Where the next id goes once the ring is full. */
  private ringNext = 0;
  /** The ids in {@link ring}, built on the first `dep_txns` lookup. */
  private index: Set<string> | undefined;
  private readonly waiters = new Map<string, HeldMessage<T>[]>();
  private readonly heldOrder = new Fifo<HeldMessage<T>>();
  private heldCount = 0;

  /**
   * @param memory - how many processed ids to remember
   * @param maxHeld - how many messages may wait at once
   */
  constructor(
    private readonly memory: number,
    private readonly maxHeld: number,
  ) {}

  /** Messages waiting now. */
  get held(): number {
    return this.heldCount;
  }

  /** The ids in `deps` not processed yet (deduplicated). */
  missing(deps: readonly string[]): string[] {
    const processed = this.index ?? this.buildIndex();
    let missing: string[] | undefined;
    for (const dep of deps) {
      if (!processed.has(dep)) {
        missing ??= [];
        if (!missing.includes(dep)) missing.push(dep);
      }
    }
    return missing ?? [];
  }

  /**
   * Holds a message until `missing` are processed.
   *
   * @returns false when `maxHeld` messages already wait (the caller processes it at once)
   */
  hold(message: T, missing: readonly string[], now: number): boolean {
    if (this.heldCount >= this.maxHeld) return false;
    const held: HeldMessage<T> = { message, since: now, missing: missing.length, done: false };
    for (const dep of missing) {
      const list = this.waiters.get(dep);
      if (list) list.push(held);
      else this.waiters.set(dep, [held]);
    }
    this.heldOrder.push(held);
    this.heldCount++;
    return true;
  }

  /**
   * Records that a txn id was processed.
   *
   * @returns the held messages this released, in the order they were held
   */
  markProcessed(txnId: string): readonly T[] {
    const index = this.index;
    if (index === undefined) this.remember(txnId);
    else if (!index.has(txnId)) {
      const evicted = this.remember(txnId);
      index.add(txnId);
      if (evicted !== undefined) index.delete(evicted);
    }
    if (this.waiters.size === 0) return NONE;
    const list = this.waiters.get(txnId);
    if (list === undefined) return NONE;
    this.waiters.delete(txnId);
    const released: T[] = [];
    for (const held of list) {
      if (held.done) continue;
      held.missing--;
      if (held.missing === 0) {
        held.done = true;
        this.heldCount--;
        released.push(held.message);
      }
    }
    return released;
  }

  /**
   * Removes messages that waited longer than `timeoutMs`.
   *
   * @returns the expired messages, oldest first (the caller processes and reports them)
   */
  expire(now: number, timeoutMs: number): T[] {
    const expired: T[] = [];
    for (;;) {
      const oldest = this.heldOrder.peek();
      if (oldest === undefined) break;
      if (oldest.done) {
        this.heldOrder.shift();
        continue;
      }
      if (now - oldest.since < timeoutMs) break;
      this.heldOrder.shift();
      oldest.done = true;
      this.heldCount--;
      expired.push(oldest.message);
    }
    if (expired.length > 0) this.pruneWaiters();
    return expired;
  }

  /** Releases everything still held (the app is gone), oldest first. */
  drain(): T[] {
    const all: T[] = [];
    for (const held of this.heldOrder) {
      if (!held.done) {
        held.done = true;
        all.push(held.message);
      }
    }
    this.heldOrder.clear();
    this.waiters.clear();
    this.heldCount = 0;
    return all;
  }

  /** Puts an id in the ring; returns the id it pushed out, if the ring was full. */
  private remember(txnId: string): string | undefined {
    const ring = this.ring;
    if (ring.length < this.memory) {
      ring.push(txnId);
      return undefined;
    }
    if (this.memory === 0) return undefined;
    const evicted = ring[this.ringNext];
    ring[this.ringNext] = txnId;
    this.ringNext = this.ringNext + 1 === this.memory ? 0 : this.ringNext + 1;
    return evicted;
  }

  /**
   * Makes the index of the ring. Without an index an id sent twice took two
   * places in the ring; the ring is rebuilt with each id once (at its latest
   * place), so that an eviction never drops an id that is still in the ring.
   */
  private buildIndex(): Set<string> {
    const ring = this.ring;
    const size = ring.length;
    const index = new Set<string>();
    const newestFirst: string[] = [];
    // Newest first: ringNext - 1 (wrapping) down to ringNext.
    for (let k = 1; k <= size; k++) {
      const id = ring[(this.ringNext - k + size) % size]!;
      if (!index.has(id)) {
        index.add(id);
        newestFirst.push(id);
      }
    }
    this.ring = newestFirst.reverse();
    this.ringNext = 0;
    this.index = index;
    return index;
  }

  private pruneWaiters(): void {
    // Lists whose every waiter is done would otherwise keep ids nobody sends.
    if (this.waiters.size <= this.maxHeld * 4) return;
    for (const [id, list] of this.waiters) {
      if (list.every((held) => held.done)) this.waiters.delete(id);
    }
  }
}
