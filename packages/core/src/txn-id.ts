/**
 * Cheap unique txn ids, shaped as UUIDs.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';

/**
 * The counter runs from here to {@link COUNTER_END}, so it always prints as
 * 8 hex digits and stays a small integer (Smi): `toString(16)` of a heap
 * number was slower than `randomUUID()` itself.
 */
const COUNTER_START = 0x1000_0000;
const COUNTER_END = 0x4000_0000;

/**
 * Makes txn ids: a random prefix drawn once (and again every 805 million
 * ids) followed by a counter, in the shape of a version 4 UUID (the
 * protocol promises a UUID, and apps may check it).
 *
 * Why not `crypto.randomUUID()`: it was called for every input line and
 * every event, and a txn id only needs to be unique, not unpredictable.
 * The prefix carries 90 random bits, so ids stay unique across restarts
 * and in-place upgrades of the process (a new prefix per process), and the
 * counter makes them unique within one.
 *
 * @returns a function that returns a new id on each call
 */
export function txnIdSource(): () => string {
  let prefix = newPrefix();
  let counter = COUNTER_START;
  return () => {
    if (counter === COUNTER_END) {
      prefix = newPrefix();
      counter = COUNTER_START;
    }
    return prefix + (counter++).toString(16);
  };
}

/** `xxxxxxxx-xxxx-4xxx-yxxx-xxxx`: 22 random hex digits, the version nibble, and a variant nibble (2 more random bits). */
function newPrefix(): string {
  const hex = randomBytes(12).toString('hex');
  const variant = '89ab'[parseInt(hex[22]!, 16) & 3]!;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(12, 15)}-${variant}${hex.slice(15, 18)}-${hex.slice(18, 22)}`;
}
