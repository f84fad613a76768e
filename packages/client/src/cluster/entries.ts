/**
 * Small pieces of the worker's reading of partition streams: their entries'
 * fields, the JSON they carry, the hash that spreads partitions, and the
 * memory of entries handed on.
 *
 * @module
 */
import type { JsonObject } from '@imi/core';

/**
 * Entry ids this process handed to its app, remembered (65,536 at most, the
 * oldest forgotten first) to tell a true redelivery from a second look.
 */
export const DELIVERED_MEMORY = 65_536;

/**
 * FNV-1a, 32 bits: the rendezvous hash of a worker and a partition.
 *
 * @param text - what to hash
 * @returns the hash, an unsigned 32-bit integer
 */
export function fnv(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/**
 * A stream entry's field list as an object.
 *
 * @param list - field, value, field, value, …
 * @returns the fields by name (the last one wins)
 */
export function fields(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

/**
 * A JSON object stored in Redis; anything else (missing, empty, not JSON, not an object) is `{}`.
 *
 * @param text - the stored text
 * @returns the object
 */
export function parseObject(text: string | undefined): JsonObject {
  if (text === undefined || text === '') return {};
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
  } catch {
    return {};
  }
}

/** The ids of entries handed to the app, {@link DELIVERED_MEMORY} at most, the oldest forgotten first. */
export class DeliveredMemory {
  private readonly keys = new Set<string>();
  /**
   * The same keys in the order they were remembered, a ring: the oldest is
   * forgotten by its key. (Taking a `Set`'s first entry instead walks past
   * every entry deleted before it until the table is rebuilt: tens of
   * thousands of steps a line once the memory is full.)
   */
  private readonly ring: Array<string | undefined> = new Array<string | undefined>(DELIVERED_MEMORY);
  private next = 0;

  /**
   * @param key - an entry's key
   * @returns whether it is remembered
   */
  has(key: string): boolean {
    return this.keys.has(key);
  }

  /**
   * Remembers an entry's key.
   *
   * @param key - the key
   */
  remember(key: string): void {
    if (this.keys.has(key)) return;
    const oldest = this.ring[this.next];
    if (oldest !== undefined) this.keys.delete(oldest);
    this.ring[this.next] = key;
    this.next = (this.next + 1) % DELIVERED_MEMORY;
    this.keys.add(key);
  }
}

/**
 * Whether stream id `a` comes after `b` (`<ms>-<seq>`, both numbers).
 *
 * @param a - a stream id
 * @param b - another
 * @returns whether `a` is later
 */
export function idAfter(a: string, b: string): boolean {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  return ma > mb || (ma === mb && Number(a.slice(da + 1)) > Number(b.slice(db + 1)));
}

/**
 * The partitions rendezvous hashing gives one worker among the live ones: each partition goes to the worker with
 * the highest hash of `worker#partition`, so when a worker comes or goes only its share moves.
 *
 * @param workerId - the worker
 * @param live - the live workers (it among them)
 * @param partitions - the partition count
 * @returns its partitions
 */
export function shareOf(workerId: string, live: readonly string[], partitions: number): Set<number> {
  const mine = new Set<number>();
  for (let part = 0; part < partitions; part++) {
    let best = '';
    let bestHash = -1;
    for (const worker of live) {
      const hash = fnv(`${worker}#${part}`);
      if (hash > bestHash || (hash === bestHash && worker > best)) {
        best = worker;
        bestHash = hash;
      }
    }
    if (best === workerId) mine.add(part);
  }
  return mine;
}
