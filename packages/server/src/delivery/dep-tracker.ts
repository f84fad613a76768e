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

/** Tracks processed txn ids and held messages for one app connection. */
export class DependencyTracker<T> {
  private readonly processed = new Set<string>();
  private readonly processedOrder = new Fifo<string>();
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
    let missing: string[] | undefined;
    for (const dep of deps) {
      if (!this.processed.has(dep)) {
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
  markProcessed(txnId: string): T[] {
    if (!this.processed.has(txnId)) {
      this.processed.add(txnId);
      this.processedOrder.push(txnId);
      if (this.processedOrder.length > this.memory) {
        const evicted = this.processedOrder.shift();
        if (evicted !== undefined) this.processed.delete(evicted);
      }
    }
    const list = this.waiters.get(txnId);
    if (list === undefined) return [];
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

  private pruneWaiters(): void {
    // Lists whose every waiter is done would otherwise keep ids nobody sends.
    if (this.waiters.size <= this.maxHeld * 4) return;
    for (const [id, list] of this.waiters) {
      if (list.every((held) => held.done)) this.waiters.delete(id);
    }
  }
}
