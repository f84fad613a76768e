/**
 * The options and the sink of a `FrameDecoder`, and their defaults: kept
 * apart so that `frame-codec.ts` and the decoder both use them.
 *
 * @module
 */
import type { ProtocolError } from './errors.js';

/** Default {@link FrameDecoderOptions.maxFrameBytes}: 1 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Default {@link FrameDecoderOptions.maxDepth}: 64 levels of nesting. Deeper
 * frames are rejected before parsing, so hostile input (100k nested arrays)
 * cannot reach a recursive `JSON.stringify` later on.
 */
export const DEFAULT_MAX_FRAME_DEPTH = 64;

/** Where a {@link FrameDecoder} delivers what it decodes, in order. */
export interface FrameSink<T> {
  /** Called once per decoded message (once per element of a top-level array). */
  onMessage(message: T): void;
  /** Called once per rejected frame or element. Never thrown. */
  onError(error: ProtocolError): void;
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions<T> {
  /**
   * Turns a parsed JSON value into a message or a {@link ProtocolError}
   * (e.g. `validateAppMessage`). Must not throw.
   */
  validate: (value: unknown) => T | ProtocolError;
  /** Largest accepted frame, in bytes of UTF-8. Default {@link DEFAULT_MAX_FRAME_BYTES}. */
  maxFrameBytes?: number;
  /** Deepest accepted nesting of objects and arrays. Default {@link DEFAULT_MAX_FRAME_DEPTH}. */
  maxDepth?: number;
}
