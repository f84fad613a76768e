/**
 * Frames whole: encoding one message, decoding a whole byte sequence.
 *
 * @module
 */
import { FrameDecoder } from './frame-decoder.js';
import type { ProtocolError } from './errors.js';
import type { FrameDecoderOptions } from './frame-options.js';

/** One result of {@link decodeFrames}: a message or an error, in stream order. */
export type DecodeResult<T> = { ok: true; message: T } | { ok: false; error: ProtocolError };

/**
 * Decodes a whole byte sequence at once (tests, tools). For streams, use a
 * {@link FrameDecoder}.
 *
 * @param chunks - the bytes, in as many chunks as you like
 * @param options - the validator and limits
 * @returns every message and error, in order
 */
export function decodeFrames<T>(chunks: Iterable<Uint8Array>, options: FrameDecoderOptions<T>): DecodeResult<T>[] {
  const results: DecodeResult<T>[] = [];
  const decoder = new FrameDecoder(options, {
    onMessage: (message) => results.push({ ok: true, message }),
    onError: (error) => results.push({ ok: false, error }),
  });
  for (const chunk of chunks) decoder.write(chunk);
  decoder.end();
  return results;
}

/**
 * Encodes one message as a frame: compact JSON and `\n`.
 *
 * @param message - any JSON-serialisable message
 * @returns the frame, ready to write
 */
export function encodeFrame(message: object): string {
  return JSON.stringify(message) + '\n';
}
