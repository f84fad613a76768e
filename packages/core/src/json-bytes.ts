/**
 * What the frame decoder needs to know of JSON's bytes to turn garbage away
 * cheaply (internal: not exported by the package).
 *
 * @module
 */

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
