/**
 * Splits a user's byte stream into lines without ever holding more than the
 * line limit.
 *
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;
const BS = 0x08;
const DEL = 0x7f;

/** The parts of every splitter with nothing kept (never written to: an idle user costs no array). */
const NO_PARTS = Object.freeze([]) as unknown as Buffer[];

/** Receives what a {@link LineSplitter} finds. */
export interface LineSink {
  /**
   * A complete line, UTF-8 decoded, end-of-line stripped, BS and DEL
   * applied. `truncated` when it was cut at the limit; `bytes` is its
   * length in bytes once edited (beyond the limit: as sent), end of line
   * excluded.
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
 * Where the last character of `buf` starts: a whole UTF-8 sequence when it
 * ends the buffer, else the last byte alone (text in another encoding, e.g.
 * cp1251, erases byte by byte).
 */
function lastCharStart(buf: Buffer): number {
  const last = buf.length - 1;
  let i = last;
  let continuation = 0;
  while (i > 0 && continuation < 3 && (buf[i]! & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (continuation === 0) return last;
  const lead = buf[i]!;
  const needed = lead >= 0xf8 ? -1 : lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : -1;
  return needed === continuation ? i : last;
}

/** How many CR bytes end `buf[start..end)`. */
function trailingCrs(buf: Buffer, start: number, end: number): number {
  let count = 0;
  while (end - count > start && buf[end - count - 1] === CR) count++;
  return count;
}

/** What a {@link LineSplitter} holds between two reads: the line the user is typing. */
export interface LineState {
  /** The bytes kept so far (at most `maxLineBytes`). */
  bytes: Buffer;
  /** Bytes of this line seen past `maxLineBytes` and dropped (the line will be reported cut). */
  overflowBytes: number;
  /** CRs at the end of the kept bytes: part of the line end if an LF follows. */
  crs: number;
  /** The last line ended at an LF: a CR next is its pair (`LF CR`), not input. */
  afterLf: boolean;
}

/**
 * Streams bytes into lines, editing them as a terminal line discipline
 * would, without ever holding more than the line limit.
 *
 * - A line ends at LF. CRs right before the LF are part of the line end
 *   (`CR LF`, `CR CR LF`), and so is a CR right after it (`LF CR`, which
 *   some old clients send): each is one line end, never an extra empty
 *   line, also when split across reads. A CR anywhere else is kept as text
 *   (telnet turns the CR line ends of RFC 854 into `CR LF` before this).
 * - BS (0x08) and DEL (0x7f) erase the last character of the line being
 *   assembled (a whole UTF-8 character, not a byte), and nothing when it is
 *   empty, as classic MUD servers do for clients in character mode.
 * - A line longer than `maxLineBytes` is cut at the limit (at a character
 *   boundary) and the rest, up to the next LF, is dropped as it arrives: a
 *   10 MB line costs `maxLineBytes` of memory, not 10 MB. Once cut, a line
 *   stays cut: erasing does not bring the dropped part back.
 */
export class LineSplitter {
  private readonly maxLineBytes: number;
  private readonly sink: LineSink;
  /** The kept bytes of the unfinished line; {@link NO_PARTS} (shared) while there are none. */
  private parts: Buffer[] = NO_PARTS;
  private partsBytes = 0;
  /** Bytes of the current line seen beyond the limit (and dropped). */
  private overflowBytes = 0;
  /** CRs ending the current line so far (kept or dropped): end of line if an LF follows. */
  private crs = 0;
  /** A line just ended at an LF: a CR right after it is the pair (`LF CR`). */
  private afterLf = false;

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

  /** The unfinished line as plain data (a copy), for session snapshots. */
  exportState(): LineState {
    const parts = this.parts;
    return {
      bytes: parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, this.partsBytes),
      overflowBytes: this.overflowBytes,
      crs: this.crs,
      afterLf: this.afterLf,
    };
  }

  /** Puts back an unfinished line {@link exportState} took (into a splitter that has read nothing yet). */
  importState(state: LineState): void {
    this.parts = state.bytes.length === 0 ? NO_PARTS : [Buffer.from(state.bytes)];
    this.partsBytes = state.bytes.length;
    this.overflowBytes = state.overflowBytes;
    this.crs = state.crs;
    this.afterLf = state.afterLf;
  }

  /** Feeds a chunk; complete lines reach the sink before this returns. */
  write(chunk: Buffer): void {
    let start = 0;
    const length = chunk.length;
    // The next BS and DEL of the chunk, each searched for again only once
    // passed, so a chunk is scanned once however many lines it holds.
    let nextBs = -1;
    let nextDel = -1;
    while (start < length) {
      if (this.afterLf) {
        this.afterLf = false;
        if (chunk[start] === CR) {
          start++;
          continue;
        }
      }
      const newline = chunk.indexOf(LF, start);
      const end = newline === -1 ? length : newline;
      if (nextBs !== length && nextBs < start) nextBs = indexOr(chunk, BS, start, length);
      if (nextDel !== length && nextDel < start) nextDel = indexOr(chunk, DEL, start, length);
      let edit = Math.min(nextBs, nextDel);
      if (edit >= end && newline !== -1 && this.partsBytes === 0 && this.overflowBytes === 0) {
        // The whole line is in this chunk and needs no editing (the usual
        // case): decode it where it lies instead of copying it first.
        const textEnd = newline - trailingCrs(chunk, start, newline);
        if (textEnd - start <= this.maxLineBytes) {
          this.afterLf = true;
          this.sink.onLine(chunk.toString('utf8', start, textEnd), false, textEnd - start);
          start = newline + 1;
          continue;
        }
      }
      let from = start;
      while (edit < end) {
        this.keep(chunk, from, edit);
        this.erase();
        from = edit + 1;
        if (edit === nextBs) nextBs = indexOr(chunk, BS, from, length);
        else nextDel = indexOr(chunk, DEL, from, length);
        edit = Math.min(nextBs, nextDel);
      }
      this.keep(chunk, from, end);
      if (newline === -1) return;
      this.emit();
      this.afterLf = true;
      start = newline + 1;
    }
  }

  /** Drops the unfinished line, cut or not (the user threw it away: Ctrl-C on an SSH terminal). */
  discard(): void {
    this.parts = [];
    this.partsBytes = 0;
    this.overflowBytes = 0;
    this.crs = 0;
    this.afterLf = false;
  }

  /**
   * The input ended (the user half-closed): an unfinished line is still a
   * line — what a script sends last often has no line end. CRs alone are
   * not one.
   */
  end(): void {
    if (this.partsBytes > this.crs || this.overflowBytes > 0) this.emit();
  }

  private keep(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const crs = trailingCrs(chunk, start, end);
    this.crs = crs === end - start ? this.crs + crs : crs;
    const room = this.maxLineBytes - this.partsBytes;
    const take = Math.min(room, end - start);
    if (take > 0) {
      // Copy: the socket's chunk should not stay pinned for a short tail.
      const part = Buffer.from(chunk.subarray(start, start + take));
      if (this.parts === NO_PARTS) this.parts = [part];
      else this.parts.push(part);
      this.partsBytes += take;
    }
    this.overflowBytes += end - start - Math.max(take, 0);
  }

  /** BS or DEL: drops the last character of the line. */
  private erase(): void {
    if (this.overflowBytes > 0 || this.partsBytes === 0) return;
    const buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsBytes);
    const end = lastCharStart(buf);
    this.parts = end === 0 ? NO_PARTS : [buf.subarray(0, end)];
    this.partsBytes = end;
    this.crs = trailingCrs(buf, 0, end);
  }

  private emit(): void {
    // The CRs before the LF are end of line, not content: they do not count
    // against the limit, so a line of exactly maxLineBytes is never "too long".
    const bytes = this.partsBytes + this.overflowBytes - this.crs;
    const truncated = bytes > this.maxLineBytes;
    let buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsBytes);
    // Not truncated: the whole line is kept (plus maybe its CRs). Truncated: cut where a character ends.
    const end = truncated ? utf8Boundary(buf, buf.length) : bytes;
    if (end !== buf.length) buf = buf.subarray(0, end);
    this.parts = NO_PARTS;
    this.partsBytes = 0;
    this.overflowBytes = 0;
    this.crs = 0;
    this.sink.onLine(buf.toString('utf8'), truncated, bytes);
  }
}

/** The index of `byte` in `buf` from `from`, or `notFound`. */
function indexOr(buf: Buffer, byte: number, from: number, notFound: number): number {
  const at = buf.indexOf(byte, from);
  return at === -1 ? notFound : at;
}
