/**
 * What keeps input safe: the {@link InputLedger} interface and its
 * in-memory back end. Swapping back ends touches only this folder and the
 * line of `intermediary.ts` that picks one.
 *
 * @module
 */
export type { InputEntry, InputLedger, LedgerLimits, LedgerSink, LedgerTotals, QueueLimit, SessionInputs, UnackedLimit } from './ledger.js';
export { MemoryLedger } from './memory-ledger.js';
