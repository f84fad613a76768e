/**
 * What the frame decoder needs to know of JSON's bytes: the structural bytes,
 * the separators between frames, the frame start it resynchronises on, how
 * to turn garbage away cheaply, and its fast path for a frame that is a
 * whole line (internal: not exported by the package).
 *
 * @module
 */

export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const NEWLINE = 0x0a;
export const SPACE = 0x20;
export const TAB = 0x09;
export const CR = 0x0d;
/** ESC: IO::Multiplex::Intermediary 0.05's frame separator; never part of JSON outside a string. */
export const ESC = 0x1b;

/** `{"param"`: a frame start at the beginning of a line, used to resynchronise after a broken frame. */
export const FRAME_START = Buffer.from('{"param"');

/** How many bytes of {@link FRAME_START} `buf` holds from `at` on (stops at the first difference or the chunk's end). */
export function matchFrameStart(buf: Buffer, at: number): number {
  const end = Math.min(buf.length - at, FRAME_START.length);
  let k = 0;
  while (k < end && buf[at + k] === FRAME_START[k]) k++;
  return k;
}

/** JSON whitespace and ESC (between frames). */
export function isWhitespace(byte: number): boolean {
  return byte === SPACE || byte === NEWLINE || byte === CR || byte === TAB || byte === ESC;
}

/**
 * Whether `value` nests objects and arrays more than `levels` deep (a
 * container is one level). Recurses at most `levels + 1` deep, and stops at
 * the first branch that is too deep.
 */
export function deeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (levels === 0) return true;
  // Only containers are walked into (a call per string or number would cost more than the rest).
  if (Array.isArray(value)) {
    for (const element of value) if (typeof element === 'object' && element !== null && deeperThan(element, levels - 1)) return true;
    return false;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && deeperThan(child, levels - 1)) return true;
  }
  return false;
}

/**
 * 1 for a byte that JSON never has outside a string (letters other than those
 * of `true`, `false`, `null` and exponents, control bytes, non-ASCII). A frame
 * holding one is rejected without `JSON.parse`, whose thrown `SyntaxError`
 * costs microseconds: an app spewing garbage must cost about as little per
 * byte as one sending frames.
 */
export const NOT_JSON = new Uint8Array(256).fill(1);
for (const byte of Buffer.from(' \t\n\r{}[]:,"0123456789+-.eEtruefalsn')) NOT_JSON[byte] = 0;
// ESC is the 0.05 Perl separator between frames: left to JSON.parse to judge.
NOT_JSON[0x1b] = 0;

/** 1 for a byte a top-level JSON scalar can start with (a number, `true`, `false`, `null`). */
export const SCALAR_START = new Uint8Array(256);
for (const byte of Buffer.from('-0123456789tfn')) SCALAR_START[byte] = 1;

/**
 * Runs `make` with stack traces off. Errors about a peer's bytes say where in
 * the bytes, not where in the code: capturing a stack would be most of their
 * cost, and a flood of bad frames makes one per frame.
 */
export function withoutStack<R>(make: () => R): R {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** What {@link parseLine} returns for a line that is not one JSON value within the depth limit. */
export const NOT_ONE_VALUE: unique symbol = Symbol('not one JSON value');

/**
 * Deepest `maxDepth` that {@link parseLine} checks by walking the parsed
 * value (a recursion that deep is safe on any stack); with a higher limit,
 * lines long enough to pass it are left to the scanner, which counts depth
 * byte by byte.
 */
const MAX_WALKED_DEPTH = 1000;

/**
 * The frame decoder's fast path: parses `buf[start, end)` (a line, its
 * newline excluded) if it is exactly one JSON value nested no deeper than
 * `maxDepth`, trailing JSON whitespace allowed. Anything else (a line that
 * does not end its value, two values, garbage, ESC, a raw newline's broken
 * string) gives {@link NOT_ONE_VALUE}, and the decoder's scanner takes the
 * line; nothing is thrown.
 *
 * @param buf - the chunk
 * @param ascii - the chunk as a string if it is all ASCII (its offsets are the buffer's), else ''
 * @param start - where the line starts (an opening brace or bracket)
 * @param end - where its newline is
 * @param maxDepth - the decoder's nesting limit
 */
export function parseLine(buf: Buffer, ascii: string, start: number, end: number, maxDepth: number): unknown {
  // A line that does not end its value (pretty-printed, cut, ESC after it)
  // skips a JSON.parse that would throw: an exception costs microseconds.
  const last = buf[end - 1] === CR ? buf[end - 2] : buf[end - 1];
  if (last !== CLOSE_BRACE && last !== CLOSE_BRACKET) return NOT_ONE_VALUE;
  const text = ascii === '' ? buf.toString('utf8', start, end) : ascii.slice(start, end);
  let value: unknown;
  // Without a stack: garbage that ends in a brace must stay cheap.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    value = JSON.parse(text);
  } catch {
    return NOT_ONE_VALUE;
  } finally {
    Error.stackTraceLimit = limit;
  }
  // Each level takes two bytes ("[]"): a short line cannot be too deep.
  if (end - start > 2 * maxDepth && (maxDepth > MAX_WALKED_DEPTH || deeperThan(value, maxDepth))) return NOT_ONE_VALUE;
  return value;
}

/**
 * Whether `buf` from `from` on holds no closing brace or bracket: no JSON
 * object or array ends in it, so the decoder's scanner would deliver
 * nothing from those bytes (nor report anything before the frame's end,
 * short of its size limit).
 */
export function noCloser(buf: Buffer, from: number): boolean {
  return buf.indexOf(CLOSE_BRACE, from) === -1 && buf.indexOf(CLOSE_BRACKET, from) === -1;
}
