/**
 * The bytes of an unfinished frame, held by the frame decoder between chunks.
 *
 * @module
 */

/** Pieces shorter than this are copied into an owned buffer instead of being kept as views. */
const SMALL_TAIL_BYTES = 4096;

/**
 * Pieces of one frame, in order. Small pieces are copied (so a retained
 * 64 KiB socket chunk is not pinned for a few bytes) into one owned buffer,
 * so that many tiny chunks do not cost one `Buffer` object each; large
 * ones are kept as views.
 */
export class HeldBytes {
  /** How many bytes are held. */
  size = 0;
  private parts: Buffer[] = [];
  /** An owned buffer collecting small pieces (logically after `parts`), so 1-byte chunks cost 1 byte each. */
  private open: Buffer | null = null;
  private openUsed = 0;

  /** Keeps `tail` after what is held. */
  keep(tail: Buffer): void {
    this.size += tail.length;
    if (tail.length >= SMALL_TAIL_BYTES) {
      this.flushOpen();
      this.parts.push(tail);
      return;
    }
    if (this.open === null || this.open.length - this.openUsed < tail.length) {
      this.flushOpen();
      this.open = Buffer.allocUnsafe(SMALL_TAIL_BYTES);
    }
    tail.copy(this.open, this.openUsed);
    this.openUsed += tail.length;
  }

  /** What is held, in order (the caller must not change the array). */
  pieces(): readonly Buffer[] {
    this.flushOpen();
    return this.parts;
  }

  /** What is held and then `tail`, as one buffer (a copy). */
  joined(tail?: Buffer): Buffer {
    const pieces = this.pieces();
    return Buffer.concat(tail === undefined ? pieces : [...pieces, tail], this.size + (tail?.length ?? 0));
  }

  /** Forgets everything held. */
  clear(): void {
    this.size = 0;
    this.parts = [];
    this.open = null;
    this.openUsed = 0;
  }

  /** Moves the filled part of `open` to `parts`. */
  private flushOpen(): void {
    if (this.open !== null && this.openUsed > 0) this.parts.push(this.open.subarray(0, this.openUsed));
    this.open = null;
    this.openUsed = 0;
  }
}
