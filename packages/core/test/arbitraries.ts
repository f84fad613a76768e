// Shared fast-check arbitraries and helpers for the @imi/core tests.
import fc from 'fast-check';
import { FrameDecoder, ProtocolError, type AppMessage, type DecodeResult, type FrameDecoderOptions, type JsonObject } from '@imi/core';

/** Strings with what makes framing hard: multi-byte UTF-8 (é, €, emoji), quotes, backslashes, newlines, braces. */
export const text: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc
    .array(
      fc.constantFrom('é', '€', '😀', '👍🏽', '𝄞', '中', 'a', ' ', '"', '\\', '\n', '\r\n', '{', '}', '[', ']', '{"param"', '\n{"param"', '\u0000', '\u2028'),
      { maxLength: 10 },
    )
    .map((pieces) => pieces.join('')),
);

/** A session id as the intermediary makes them, or any string. */
export const sessionId: fc.Arbitrary<string> = fc.oneof(fc.uuid(), text);

/** A JSON object usable as `updates` or `state`. */
export const jsonObject: fc.Arbitrary<JsonObject> = fc.dictionary(text, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }) as fc.Arbitrary<JsonObject>;

const envelope = fc.record(
  {
    txn_id: fc.oneof(fc.uuid(), text),
    dep_txns: fc.array(fc.uuid(), { maxLength: 3 }),
    updates: jsonObject,
    ack: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  },
  { requiredKeys: [] },
);

const appData: fc.Arbitrary<{ param: AppMessage['param']; data?: unknown }> = fc.oneof(
  fc.record({
    param: fc.constant('hello' as const),
    data: fc.record({ protocol: fc.nat(5), token: text, acks: fc.boolean(), name: text }, { requiredKeys: [] }),
  }),
  fc.record({ param: fc.constant('output' as const), data: fc.record({ id: sessionId, value: text }) }),
  fc.record({
    param: fc.constant('disconnect' as const),
    data: fc.record({ id: sessionId, value: text }, { requiredKeys: ['id'] }),
  }),
  fc.record({ param: fc.constant('disconnect' as const), data: fc.constant({ success: 1 }) }),
  fc.record({
    param: fc.constant('broadcast' as const),
    data: fc.record({ value: text, except: fc.array(sessionId, { maxLength: 3 }) }, { requiredKeys: ['value'] }),
  }),
  fc.record({ param: fc.constant('state' as const), data: fc.record({ id: sessionId }) }),
  fc.record({ param: fc.constant('ack' as const), data: fc.record({ seq: fc.nat() }) }),
  fc.record({ param: fc.constant('pong' as const), data: fc.record({ ts: fc.integer() }, { requiredKeys: [] }) }),
  fc.record({ param: fc.constant('null' as const), data: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: ['param'] }),
  fc.record({ param: fc.constant('telnet' as const), data: fc.record({ id: sessionId, echo: fc.boolean() }, { requiredKeys: ['id'] }) }),
  fc.record({
    param: fc.constant('gmcp' as const),
    data: fc.record(
      { id: sessionId, package: fc.stringMatching(/^[A-Za-z][A-Za-z0-9.]{0,40}$/), value: fc.jsonValue({ maxDepth: 2 }) },
      { requiredKeys: ['id', 'package'] },
    ),
  }),
);

/** Any valid app → intermediary message, `param` first as apps write it. */
export const appMessage: fc.Arbitrary<AppMessage> = fc
  .tuple(appData, envelope)
  .map(([body, env]) => ({ param: body.param, ...('data' in body ? { data: body.data } : {}), ...env }) as AppMessage);

/** JSON values that are not valid app messages, with the code the validator gives them. */
export const invalidAppElement: fc.Arbitrary<{ value: unknown; code: 'IMI_BAD_MESSAGE' | 'IMI_UNKNOWN_PARAM' }> = fc.oneof(
  fc.constantFrom<{ value: unknown; code: 'IMI_BAD_MESSAGE' | 'IMI_UNKNOWN_PARAM' }>(
    { value: null, code: 'IMI_BAD_MESSAGE' },
    { value: 42, code: 'IMI_BAD_MESSAGE' },
    { value: 'output', code: 'IMI_BAD_MESSAGE' },
    { value: true, code: 'IMI_BAD_MESSAGE' },
    { value: [], code: 'IMI_BAD_MESSAGE' },
    { value: [{ param: 'null' }], code: 'IMI_BAD_MESSAGE' },
    { value: {}, code: 'IMI_BAD_MESSAGE' },
    { value: { param: 'output', data: { id: 1, value: 'x' } }, code: 'IMI_BAD_MESSAGE' },
    { value: { param: 'ack', data: { seq: -1 } }, code: 'IMI_BAD_MESSAGE' },
    { value: { param: 'connect', data: {} }, code: 'IMI_UNKNOWN_PARAM' },
  ),
  text.filter((p) => !['hello', 'output', 'disconnect', 'broadcast', 'state', 'ack', 'pong', 'null', 'telnet', 'gmcp'].includes(p)).map((param) => ({
    value: { param, data: {} },
    code: 'IMI_UNKNOWN_PARAM' as const,
  })),
);

/** What a message looks like after a trip through JSON (the decoder's output for it). */
export function roundTrip<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Cuts `bytes` at the given offsets (taken modulo length + 1; repeats give empty chunks). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Buffer[] {
  const buf = Buffer.from(bytes);
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(buf.subarray(from, p));
    from = p;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}

/** Random cut offsets for {@link splitAt}. */
export const cuts: fc.Arbitrary<number[]> = fc.array(fc.nat(), { maxLength: 24 });

/** What a decoder run produced. */
export interface DecoderRun<T> {
  /** Messages and errors, in the order the sink got them. */
  results: DecodeResult<T>[];
  /** The largest `bufferedBytes` seen after any write. */
  maxBuffered: number;
  /** The decoder, after `end()` when asked. */
  decoder: FrameDecoder<T>;
}

/**
 * Feeds chunks to a new decoder, checking after every write that
 * `bufferedBytes` stays within `maxFrameBytes`.
 */
export function runDecoder<T>(chunks: Iterable<Uint8Array>, options: FrameDecoderOptions<T>, end = true): DecoderRun<T> {
  const results: DecodeResult<T>[] = [];
  const decoder = new FrameDecoder(options, {
    onMessage: (message) => results.push({ ok: true, message }),
    onError: (error) => results.push({ ok: false, error }),
  });
  let maxBuffered = 0;
  for (const chunk of chunks) {
    decoder.write(chunk);
    maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    if (decoder.bufferedBytes > decoder.maxFrameBytes) {
      throw new Error(`bufferedBytes ${decoder.bufferedBytes} > maxFrameBytes ${decoder.maxFrameBytes}`);
    }
  }
  if (end) decoder.end();
  return { results, maxBuffered, decoder };
}

/** The messages of a run (throws if there was any error). */
export function messagesOnly<T>(results: DecodeResult<T>[]): T[] {
  return results.map((r) => {
    if (!r.ok) throw new Error(`unexpected error ${r.error.code}: ${r.error.message}`);
    return r.message;
  });
}

/** Shorthand for a result's code or `"message"`. */
export function kinds<T>(results: DecodeResult<T>[]): string[] {
  return results.map((r) => (r.ok ? 'message' : r.error.code));
}

export { ProtocolError };
