/**
 * What the original Perl IO::Multiplex::Intermediary (0.05, AnyEvent) writes
 * to the app: `push_write(json => ...)`, so JSON texts back to back with
 * nothing between them; the resync as one JSON array of `connect`s; every
 * message with a `txn_id`; `connect` and `disconnect` with only `data.id`.
 */
import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  LEGACY_DISCONNECT_REASON,
  ProtocolError,
  validateIntermediaryMessage,
  validateLegacyIntermediaryMessage,
  type IntermediaryMessage,
} from '../src/index.js';

const U1 = '0b6f6a8e-3c39-4bd4-a1c4-5a3b8e0c7f01';
const U2 = '9d1c2f40-8a7e-4f8e-9b7c-2e5d4a3c1b02';

/** The bytes of one session of the original: resync batch, a new user, input (with a multi-byte character), a departure. */
const LEGACY_WIRE = Buffer.from(
  JSON.stringify([{ param: 'connect', data: { id: U1 }, txn_id: 't1' }]) +
    JSON.stringify({ param: 'connect', data: { id: U2 }, txn_id: 't2' }) +
    JSON.stringify({ param: 'input', data: { id: U2, value: 'say 5 €' }, txn_id: 't3' }) +
    JSON.stringify({ param: 'disconnect', data: { id: U1 }, txn_id: 't4' }) +
    JSON.stringify([]),
  'utf8',
);

function decodeByteByByte(bytes: Buffer): { messages: IntermediaryMessage[]; errors: ProtocolError[] } {
  const messages: IntermediaryMessage[] = [];
  const errors: ProtocolError[] = [];
  const decoder = new FrameDecoder<IntermediaryMessage>(
    { validate: validateLegacyIntermediaryMessage },
    { onMessage: (message) => messages.push(message), onError: (error) => errors.push(error) },
  );
  for (let i = 0; i < bytes.length; i++) decoder.write(bytes.subarray(i, i + 1));
  return { messages, errors };
}

describe('the original Perl intermediary on the wire', () => {
  it('has no separator between frames: FrameDecoder splits them, fed one byte at a time', () => {
    expect(LEGACY_WIRE.includes('\n')).toBe(false);
    const { messages, errors } = decodeByteByByte(LEGACY_WIRE);
    expect(errors).toEqual([]);
    expect(messages.map((message) => `${message.param} ${message.txn_id}`)).toEqual(['connect t1', 'connect t2', 'input t3', 'disconnect t4']);
    expect(messages[2]).toMatchObject({ data: { id: U2, value: 'say 5 €' } });
  });

  it('fills in what a legacy connect and disconnect leave out, and leaves the rest absent', () => {
    const { messages } = decodeByteByByte(LEGACY_WIRE);
    expect(messages[0]!.data).toEqual({ id: U1, transport: 'tcp', state: {} });
    expect(messages[3]!.data).toEqual({ id: U1, reason: LEGACY_DISCONNECT_REASON });
  });

  it('the strict validator still rejects them, naming the missing field', () => {
    const connect = validateIntermediaryMessage({ param: 'connect', data: { id: U1 }, txn_id: 't1' });
    expect(connect).toBeInstanceOf(ProtocolError);
    expect((connect as ProtocolError).message).toContain('data.transport');
    const disconnect = validateIntermediaryMessage({ param: 'disconnect', data: { id: U1 }, txn_id: 't4' });
    expect((disconnect as ProtocolError).message).toContain('data.reason');
  });

  it('an imi connect is checked as strictly as ever by the legacy validator', () => {
    const imi = { param: 'connect', txn_id: 't', data: { id: U1, transport: 'ws', remote: { address: '::1', port: 5 }, connectedAt: 1, resumed: true, state: { a: 1 } } };
    const copy = structuredClone(imi);
    expect(validateLegacyIntermediaryMessage(copy)).toBe(copy);
    expect(copy).toEqual(imi);
    const broken = validateLegacyIntermediaryMessage({ ...imi, data: { ...imi.data, remote: 'x' } });
    expect((broken as ProtocolError).code).toBe('IMI_BAD_MESSAGE');
    const noResumed = validateLegacyIntermediaryMessage({ ...imi, data: { ...imi.data, resumed: undefined } });
    expect((noResumed as ProtocolError).message).toContain('data.resumed');
    const badLegacy = validateLegacyIntermediaryMessage({ param: 'connect', txn_id: 't', data: { id: U1, transport: 7 } });
    expect((badLegacy as ProtocolError).message).toContain('data.transport');
  });
});
