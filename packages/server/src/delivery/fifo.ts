/**
 * A FIFO queue with O(1) push and shift (an array and a moving head), used
 * for every per-user and global queue in the intermediary.
 *
 * @module
 */

/**
 * The storage of every empty queue, never written to: most per-user queues
 * stay empty for the user's whole life, and an array each cost memory per
 * idle user.
 */
const EMPTY = Object.freeze([]) as unknown as never[];

/** A first-in first-out queue; `shift` is O(1) amortised, unlike `Array#shift`. */
export class Fifo<T> implements Iterable<T> {
  private items: (T | undefined)[] = EMPTY;
  private head = 0;

  /** How many items are queued. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends an item. */
  push(item: T): void {
    if ((this.items as unknown) === EMPTY) this.items = [item];
    else this.items.push(item);
  }

  /** The oldest item, without removing it. */
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = EMPTY;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Empties the queue. */
  clear(): void {
    this.items = EMPTY;
    this.head = 0;
  }

  /** Iterates oldest first. */
  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }
}
