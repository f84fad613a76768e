/**
 * Splits a user's byte stream into lines without ever holding more than the
 * line limit.
 *
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;

/** Receives what a {@link LineSplitter} finds. */
export interface LineSink {
  /**
   * A complete line, UTF-8 decoded, end-of-line stripped. `truncated` when
   * it was cut at the limit; `bytes` is its length as sent, in bytes,
   * end of line excluded.
   */
  onLine(line: string, truncated: boolean, bytes: number): void;
}

/**
 * Returns how many bytes of `buf[0..end)` form complete UTF-8 characters, so
 * a cut never leaves half a character (which would decode as U+FFFD).
 */
function utf8Boundary(buf: Buffer, end: number): number {
  let i = end - 1;
  let continuation = 0;
  while (i >= 0 && continuation < 3 && (buf[i]! & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < 0) return end;
  const lead = buf[i]!;
  const needed = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
  return needed > continuation ? i : end;
}

/**
 * Streams bytes into lines ending in LF or CRLF (the end of line is not part
 * of the line). A line longer than `maxLineBytes` is cut at the limit (at a
 * character boundary) and the rest, up to the next LF, is dropped as it
 * arrives: a 10 MB line costs `maxLineBytes` of memory, not 10 MB.
 */
export class LineSplitter {
  private readonly maxLineBytes: number;
  private readonly sink: LineSink;
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Bytes of the current line seen beyond the limit (and dropped). */
  private overflowBytes = 0;
  /** The last byte of the current line seen so far (kept or dropped), -1 for none. */
  private lastByte = -1;

  /**
   * @param maxLineBytes - the longest line kept, in bytes
   * @param sink - receives each line
   */
  constructor(maxLineBytes: number, sink: LineSink) {
    this.maxLineBytes = maxLineBytes;
    this.sink = sink;
  }

  /** Bytes held for an unfinished line (at most `maxLineBytes`). */
  get bufferedBytes(): number {
    return this.partsBytes;
  }

  /** Feeds a chunk; complete lines reach the sink before this returns. */
  write(chunk: Buffer): void {
    let start = 0;
    const length = chunk.length;
    while (start < length) {
      const newline = chunk.indexOf(LF, start);
      if (newline === -1) {
        this.keep(chunk, start, length);
        return;
      }
      if (this.partsBytes === 0 && this.overflowBytes === 0) {
        // The whole line is in this chunk (the usual case): decode it where it
        // lies instead of copying it first.
        const end = newline > start && chunk[newline - 1] === CR ? newline - 1 : newline;
        if (end - start <= this.maxLineBytes) {
          this.sink.onLine(chunk.toString('utf8', start, end), false, end - start);
          start = newline + 1;
          continue;
        }
      }
      this.keep(chunk, start, newline);
      this.emit();
      start = newline + 1;
    }
  }

  private keep(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.lastByte = chunk[end - 1]!;
    const room = this.maxLineBytes - this.partsBytes;
    const take = Math.min(room, end - start);
    if (take > 0) {
      // Copy: the socket's chunk should not stay pinned for a short tail.
      const part = Buffer.from(chunk.subarray(start, start + take));
      this.parts.push(part);
      this.partsBytes += take;
    }
    this.overflowBytes += end - start - Math.max(take, 0);
  }

  private emit(): void {
    // The CR of a CRLF is end of line, not content: it does not count against
    // the limit, so a line of exactly maxLineBytes is never "too long".
    const bytes = this.partsBytes + this.overflowBytes - (this.lastByte === CR ? 1 : 0);
    const truncated = bytes > this.maxLineBytes;
    let buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsBytes);
    // Not truncated: the whole line is kept (plus maybe its CR). Truncated: cut where a character ends.
    const end = truncated ? utf8Boundary(buf, buf.length) : bytes;
    if (end !== buf.length) buf = buf.subarray(0, end);
    this.parts = [];
    this.partsBytes = 0;
    this.overflowBytes = 0;
    this.lastByte = -1;
    this.sink.onLine(buf.toString('utf8'), truncated, bytes);
  }
}
