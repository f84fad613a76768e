/**
 * The frame codec: one JSON object per line out, and a streaming decoder in
 * that accepts everything the protocol lets a peer send.
 *
 * @module
 */
import { ProtocolError } from './errors.js';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_DEPTH, type FrameDecoderOptions, type FrameSink } from './frame-options.js';
import { HeldBytes } from './held-bytes.js';
import { isAscii } from 'node:buffer';
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, CR, ESC, FRAME_START, NEWLINE, NOT_JSON, NOT_ONE_VALUE, OPEN_BRACE, OPEN_BRACKET, QUOTE, SCALAR_START, isWhitespace, matchFrameStart, noCloser, parseLine, withoutStack } from './json-bytes.js';

/** Bytes of a string scanned one by one before the scan switches to `indexOf` (cheaper per byte, dearer per call). */
const SHORT_STRING_BYTES = 32;

const UNTERMINATED = 'unterminated frame (a new frame starts on the next line)';

/**
 * A streaming decoder for the imi framing: NDJSON, JSON values back to back
 * with no separator (`{..}{..}`, as the Perl client writes), any whitespace
 * between values (and ESC, which the 0.05 Perl client writes after every
 * frame), and top-level arrays as batches.
 *
 * Chunks may split a frame anywhere, inside a multi-byte UTF-8 character
 * too: bytes are only decoded as text once a whole frame is there. A frame
 * that is a whole line of its chunk is parsed as that line, and one that
 * runs past its chunk before any object or array could end in it is held
 * until its newline and parsed as a line then (an app's `hello` naming ten
 * thousand users spans several chunks); other bytes are scanned once (a
 * small state machine tracks nesting and strings), as are a held line's
 * when it is not one value. Each byte is looked at a bounded number of
 * times: the work for a frame is proportional to its size, never to what
 * was buffered before each chunk.
 *
 * Bytes are counted before they are kept: once a frame passes
 * `maxFrameBytes` its bytes are dropped as they arrive (only its structure
 * is followed to find where it ends), and it is reported as
 * `IMI_BAD_FRAME`. A frame that is not JSON is reported and decoding goes on
 * with the next one. A newline followed by `{"param"` inside an unfinished
 * frame is taken as the start of a new frame (wherever the chunks split
 * it), and a raw newline inside a string (which JSON forbids) ends the
 * broken frame there, so one unbalanced frame costs only itself, not the
 * frames after it.
 *
 * @typeParam T - the message type the validator produces
 */
export class FrameDecoder<T> {
  /** The largest accepted frame, in bytes. */
  readonly maxFrameBytes: number;
  /** The deepest accepted nesting. */
  readonly maxDepth: number;
  /** Frames decoded so far (array elements count one each). */
  messagesDecoded = 0;
  /** Frames or elements rejected so far. */
  errorsReported = 0;

  private readonly validate: (value: unknown) => T | ProtocolError;
  private readonly sink: FrameSink<T>;

  private inValue = false;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inScalar = false;
  /** Why the current frame is being dropped (too big, too deep), or null. */
  private discardReason: string | null = null;
  /** The reason of a frame over `maxFrameBytes` (its error is `oversized`). */
  private readonly oversizedReason: string;
  /** The current frame's bytes from earlier chunks. */
  private readonly held = new HeldBytes();
  /** `held` has the start of a frame that ran past its chunk before any value could end in it, not yet scanned: parsed as a line at its newline. */
  private lineHeld = false;
  /**
   * -1, or how many bytes of {@link FRAME_START} followed a newline (outside
   * strings, inside a frame) at the very end of the previous chunk: the
   * resync check then goes on in the next chunk.
   */
  private resyncSeen = -1;
  /** Whether the current frame is a top-level array (a batch). */
  private inBatch = false;
  /** Whether the current value holds a byte JSON never has outside a string (see {@link NOT_JSON}). */
  private garbage = false;

  /**
   * @param options - the validator and limits
   * @param sink - receives messages and errors in order
   */
  constructor(options: FrameDecoderOptions<T>, sink: FrameSink<T>) {
    this.validate = options.validate;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.oversizedReason = `frame larger than ${this.maxFrameBytes} bytes`;
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_FRAME_DEPTH;
    this.sink = sink;
  }

  /** Whether a frame has begun and not ended (held, or being dropped as too long or too deep). */
  get inFrame(): boolean {
    return this.inValue || this.lineHeld;
  }

  /** Whether the frame under way is already longer than `maxFrameBytes` (its bytes are being dropped; reported at its end). */
  get inOversizedFrame(): boolean {
    return this.discardReason === this.oversizedReason;
  }

  /** Bytes currently held for an unfinished frame (never more than `maxFrameBytes`). */
  get bufferedBytes(): number {
    return this.held.size;
  }

  /**
   * Feeds one chunk. Complete frames are delivered to the sink before this
   * returns; an unfinished one is kept (within the limit) for the next chunk.
   *
   * @param chunk - bytes as they came off the socket
   */
  write(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.lineHeld) this.continueLine(buf);
    else this.scan(buf, 0, true);
  }

  /**
   * Goes on with a frame held by {@link lineHeld}: parses it whole once this
   * chunk brings its newline, holds this chunk too while no value can end in it,
   * and otherwise hands every byte held and this chunk to the scanner (which
   * gives what it would have given had it scanned them as they came).
   */
  private continueLine(buf: Buffer): void {
    const newline = buf.indexOf(NEWLINE);
    const end = newline === -1 ? buf.length : newline;
    const fits = this.held.size + end <= this.maxFrameBytes;
    if (fits && newline === -1 && noCloser(buf, 0)) {
      this.held.keep(buf);
      return;
    }
    // One copy, for the line and, if it is not one value, for the scanner.
    const all = this.held.joined(buf);
    const lineEnd = this.held.size + newline;
    this.dropHeld();
    if (fits && newline !== -1) {
      const value = parseLine(all, isAscii(all) ? all.toString('latin1') : '', 0, lineEnd, this.maxDepth);
      if (value !== NOT_ONE_VALUE) {
        this.deliverValue(value);
        this.scan(buf, newline + 1, true);
        return;
      }
    }
    this.scan(all, 0, false);
  }

  /** Forgets the held line (its bytes were parsed or go to the scanner). */
  private dropHeld(): void {
    this.lineHeld = false;
    this.held.clear();
  }

  /**
   * Decodes `buf` from `from`. With `lines`, a frame that is a whole line of
   * it is parsed as that line; without, the scanner takes everything.
   */
  private scan(buf: Buffer, from: number, lines: boolean): void {
    const length = buf.length;
    let start = 0;
    let i = from;
    /** Where the next newline at or after `i` is (`length` if none), once looked for; -1 before. */
    let nextNewline = -1;
    let fastPath = lines; // cleared when it fails: the scanner then owns the rest of the chunk
    /** The chunk as a string if all ASCII (one decode for its lines; its indexOf is cheaper), '' if not; once needed. */
    let ascii: string | undefined;
    if (this.resyncSeen >= 0) i = this.continueResync(buf);
    while (i < length) {
      if (!this.inValue) {
        const byte = buf[i]!;
        if (isWhitespace(byte)) {
          i++;
          continue;
        }
        if ((byte === OPEN_BRACE || byte === OPEN_BRACKET) && fastPath) {
          // A frame that is a whole line of the chunk (what imi peers write) is
          // parsed as that line, with the scanner's results. Anything else (back
          // to back, pretty-printed, broken, cut) goes to the scanner, for the
          // rest of the chunk: one failed try per chunk for such a peer, not per line.
          if (ascii === undefined) ascii = isAscii(buf) ? buf.toString('latin1', 0, length) : '';
          if (nextNewline < i) {
            nextNewline = ascii === '' ? buf.indexOf(NEWLINE, i) : ascii.indexOf('\n', i);
            if (nextNewline === -1) nextNewline = length;
          }
          if (nextNewline < length && nextNewline - i <= this.maxFrameBytes) {
            const value = parseLine(buf, ascii, i, nextNewline, this.maxDepth);
            if (value !== NOT_ONE_VALUE) {
              this.deliverValue(value);
              i = nextNewline + 1;
              continue;
            }
          } else if (nextNewline === length && length - i <= this.maxFrameBytes && noCloser(buf, i)) {
            // Cut by the chunk's end before any value could end in it: held for its newline.
            this.held.keep(buf.subarray(i, length));
            this.lineHeld = true;
            return;
          }
          fastPath = false;
        }
        this.inValue = true;
        start = i;
        i++;
        if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
          this.depth = 1;
          this.inBatch = byte === OPEN_BRACKET;
        } else if (byte === QUOTE) {
          this.depth = 0;
          this.inString = true;
        } else {
          this.inScalar = true;
          this.garbage = SCALAR_START[byte] === 0;
        }
        continue;
      }

      if (this.inString) {
        // String bytes are the bulk of every frame. Short strings (keys,
        // params) are scanned byte by byte; past SHORT_STRING_BYTES the scan
        // jumps from quote to quote with indexOf (native), cheaper per byte.
        let rawNewline = false;
        let escaped = this.escaped;
        const shortEnd = Math.min(length, i + SHORT_STRING_BYTES);
        while (i < shortEnd) {
          const byte = buf[i]!;
          i++;
          if (byte > BACKSLASH) {
            // Cannot be a quote, a backslash or a newline: most letters, every byte of a multi-byte character.
            escaped = false;
          } else if (byte === NEWLINE) {
            rawNewline = true;
            break;
          } else if (escaped) {
            escaped = false;
          } else if (byte === BACKSLASH) {
            escaped = true;
          } else if (byte === QUOTE) {
            this.inString = false;
            break;
          }
        }
        this.escaped = escaped;
        while (!rawNewline && this.inString && i < length) {
          if (this.escaped) {
            // The byte after a backslash (a raw newline still breaks the frame).
            if (buf[i] === NEWLINE) {
              rawNewline = true;
              i++;
              break;
            }
            this.escaped = false;
            i++;
            continue;
          }
          if (nextNewline < i) {
            nextNewline = buf.indexOf(NEWLINE, i);
            if (nextNewline === -1) nextNewline = length;
          }
          const quote = buf.indexOf(QUOTE, i);
          const stop = quote === -1 ? length : quote;
          if (nextNewline < stop) {
            // JSON strings never hold a raw newline: the frame is broken and ends here.
            rawNewline = true;
            i = nextNewline + 1;
            break;
          }
          // A quote (or the chunk's end) after an odd run of backslashes is escaped.
          let backslashes = 0;
          for (let k = stop - 1; k >= i && buf[k] === BACKSLASH; k--) backslashes++;
          if (quote === -1) {
            this.escaped = backslashes % 2 === 1;
            i = length;
          } else {
            i = quote + 1;
            if (backslashes % 2 === 0) this.inString = false;
          }
        }
        if (rawNewline) {
          this.reportBroken(buf, start, i, 'unterminated string (a raw newline inside a string)');
        } else if (!this.inString && this.depth === 0) {
          this.finishValue(buf, start, i);
        }
        continue;
      }

      if (this.inScalar) {
        const byte = buf[i]!;
        if (this.garbage) {
          // Text that is not JSON (a stray log line) runs to its line's end or
          // the next frame: one report per run, not one per word.
          if (byte === NEWLINE || byte === CR || byte === ESC || byte === OPEN_BRACE || byte === OPEN_BRACKET) {
            this.finishValue(buf, start, i);
            continue;
          }
          i++;
          continue;
        }
        if (isWhitespace(byte) || byte === OPEN_BRACE || byte === OPEN_BRACKET || byte === QUOTE) {
          this.finishValue(buf, start, i);
          continue;
        }
        if (NOT_JSON[byte] === 1) this.garbage = true;
        i++;
        continue;
      }

      // Inside an object or array, outside strings.
      const byte = buf[i]!;
      i++;
      switch (byte) {
        case QUOTE:
          this.inString = true;
          break;
        case OPEN_BRACE:
        case OPEN_BRACKET:
          this.depth++;
          if (this.depth > this.maxDepth && this.discardReason === null) {
            this.startDiscarding(`frame nested deeper than ${this.maxDepth} levels`);
          }
          break;
        case CLOSE_BRACE:
        case CLOSE_BRACKET:
          this.depth--;
          if (this.depth === 0) this.finishValue(buf, start, i);
          break;
        case NEWLINE: {
          // In a batch, `{"param"` at the top level of the array is just its next element.
          if (this.inBatch && this.depth === 1) break;
          const seen = matchFrameStart(buf, i);
          if (seen === FRAME_START.length) {
            this.reportBroken(buf, start, i, UNTERMINATED);
          } else if (seen === length - i) {
            // The chunk ends inside what may be `{"param"`: decide in the next chunk.
            this.resyncSeen = seen;
          }
          break;
        }
        default:
          if (NOT_JSON[byte] === 1) this.garbage = true;
      }
    }

    if (this.inValue) {
      const pending = this.held.size + (length - start);
      if (this.discardReason !== null) return;
      if (pending > this.maxFrameBytes) {
        this.startDiscarding(this.oversizedReason);
        return;
      }
      if (length > start) this.held.keep(buf.subarray(start, length));
    }
  }

  /**
   * Goes on with a resync check cut by the previous chunk's end: if this
   * chunk completes `{"param"`, the unfinished frame is reported and a new
   * frame starts with those bytes.
   *
   * @returns where the main loop starts in `buf`
   */
  private continueResync(buf: Buffer): number {
    const seen = this.resyncSeen;
    this.resyncSeen = -1;
    const need = FRAME_START.length - seen;
    let k = 0;
    while (k < need && k < buf.length && buf[k] === FRAME_START[seen + k]) k++;
    if (k === need) {
      this.reportBroken(buf, 0, 0, UNTERMINATED);
      // The new frame: `{"param"`, of which `seen` bytes came in earlier chunks.
      this.inValue = true;
      this.depth = 1;
      this.inBatch = false;
      if (seen > 0) this.held.keep(FRAME_START.subarray(0, seen));
      return need;
    }
    if (k === buf.length) this.resyncSeen = seen + k;
    return 0;
  }

  /**
   * Signals the end of the stream: a top-level scalar still open is decoded,
   * an unfinished frame is reported as `IMI_BAD_FRAME`. The decoder is then
   * ready for a new stream.
   */
  end(): void {
    if (this.lineHeld) {
      const held = this.held.joined();
      this.dropHeld();
      this.scan(held, 0, false);
    }
    if (!this.inValue) return;
    if (this.inScalar && this.discardReason === null) {
      this.finishValue(Buffer.alloc(0), 0, 0);
      return;
    }
    const reason = this.discardReason ?? 'stream ended inside a frame';
    this.reset();
    this.report(reason);
  }

  private startDiscarding(reason: string): void {
    this.discardReason = reason;
    this.held.clear();
  }

  private reset(): void {
    this.lineHeld = false;
    this.inValue = false;
    this.inString = false;
    this.inScalar = false;
    this.escaped = false;
    this.depth = 0;
    this.discardReason = null;
    this.resyncSeen = -1;
    this.garbage = false;
    if (this.held.size > 0) this.held.clear();
  }

  private report(reason: string, excerpt?: string): void {
    this.errorsReported++;
    const message = excerpt === undefined ? reason : `${reason}: ${excerpt}`;
    const error = withoutStack(() => new ProtocolError('IMI_BAD_FRAME', message));
    error.oversized = reason === this.oversizedReason;
    this.sink.onError(error);
  }

  private reportBroken(buf: Buffer, start: number, end: number, reason: string): void {
    const discardReason = this.discardReason;
    const excerpt = discardReason === null ? this.excerptOf(buf, start, end) : undefined;
    this.reset();
    this.report(discardReason ?? reason, excerpt);
  }

  private excerptOf(buf: Buffer, start: number, end: number): string {
    const pieces = this.held.pieces();
    const head = pieces.length > 0 ? pieces[0]! : buf.subarray(start, end);
    return JSON.stringify(head.toString('utf8', 0, Math.min(head.length, 80)));
  }

  private finishValue(buf: Buffer, start: number, end: number): void {
    const discardReason = this.discardReason;
    const total = this.held.size + (end - start);
    if (this.garbage && discardReason === null && total <= this.maxFrameBytes) {
      const excerpt = this.excerptOf(buf, start, end);
      this.reset();
      this.report('not valid JSON', excerpt);
      return;
    }
    let text: string | undefined;
    if (discardReason === null && total <= this.maxFrameBytes) {
      text = this.held.size === 0 ? buf.toString('utf8', start, end) : this.held.joined(buf.subarray(start, end)).toString('utf8');
    }
    this.reset();
    if (text === undefined) {
      this.report(discardReason ?? this.oversizedReason);
      return;
    }
    let value: unknown;
    try {
      value = withoutStack(() => JSON.parse(text) as unknown);
    } catch {
      this.report('not valid JSON', JSON.stringify(text.slice(0, 80)));
      return;
    }
    this.deliverValue(value);
  }

  /** A top-level array is a batch: its elements are delivered one by one. */
  private deliverValue(value: unknown): void {
    if (Array.isArray(value)) {
      for (const element of value) this.deliver(element);
    } else {
      this.deliver(value);
    }
  }

  private deliver(value: unknown): void {
    // withoutStack, inline (no closure per message).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    let result: T | ProtocolError;
    try {
      result = this.validate(value);
    } finally {
      Error.stackTraceLimit = limit;
    }
    if (result instanceof ProtocolError) {
      this.errorsReported++;
      this.sink.onError(result);
    } else {
      this.messagesDecoded++;
      this.sink.onMessage(result);
    }
  }
}
