/**
 * The state of a {@link LineSplitter} as plain data, for session snapshots:
 * the bytes of the line the user is typing (not ended yet).
 *
 * `line-splitter.ts` is being reworked on another branch, so this reads its
 * fields from outside (bracket access keeps them type-checked: a renamed
 * field fails to compile here) rather than adding methods to it. Once that
 * work lands, these two functions belong in the splitter as methods.
 *
 * @module
 */
import type { LineSplitter } from './line-splitter.js';

/** An unfinished line: what {@link LineSplitter} holds between two reads. */
export interface LineState {
  /** The bytes kept so far (at most `maxLineBytes`). */
  bytes: Buffer;
  /** Bytes of this line seen past `maxLineBytes` and dropped (the line will be reported cut). */
  overflowBytes: number;
  /** The last byte seen of this line (kept or dropped), -1 for none: a final CR is end of line, not content. */
  lastByte: number;
}

/** Reads a splitter's unfinished line (a copy). */
export function readLineState(splitter: LineSplitter): LineState {
  const parts = splitter['parts'];
  return {
    bytes: parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, splitter['partsBytes']),
    overflowBytes: splitter['overflowBytes'],
    lastByte: splitter['lastByte'],
  };
}

/** Puts an unfinished line back into a splitter that has read nothing yet. */
export function writeLineState(splitter: LineSplitter, state: LineState): void {
  splitter['parts'] = state.bytes.length === 0 ? [] : [Buffer.from(state.bytes)];
  splitter['partsBytes'] = state.bytes.length;
  splitter['overflowBytes'] = state.overflowBytes;
  splitter['lastByte'] = state.lastByte;
}
