/**
 * The frames the intermediary writes to the app (NDJSON, one per line).
 *
 * @module
 */
import { encodeFrame, txnIdSource } from '@imi/core';

/** Txn ids of the frames the intermediary writes: unique, not secret (see `txnIdSource`). */
const nextTxnId = txnIdSource();

/** A message with a fresh `txn_id`, as one frame. */
export function frame(message: { param: string; data: object }): string {
  return encodeFrame({ ...message, txn_id: nextTxnId() });
}

/** A `connect` or `disconnect` event; `seq` is 0 for an app without acks (then it has none). */
export function eventFrame(param: 'connect' | 'disconnect', data: object, seq: number): string {
  const message: { param: string; data: object; txn_id: string; seq?: number } = { param, data, txn_id: nextTxnId() };
  if (seq !== 0) message.seq = seq;
  return encodeFrame(message);
}

/**
 * An `input` event. Built as a string template: byte for byte what
 * `encodeFrame()` gives for `{param, data: {id, value}, txn_id, seq?,
 * redelivered?}`, without the object (session ids and txn ids are UUIDs:
 * no escaping needed). The hot path: one string per line.
 *
 * @param seq - 0 for an app without acks
 */
export function inputFrame(sessionId: string, value: string, txnId: string, seq: number, redelivered: boolean): string {
  let text = `{"param":"input","data":{"id":"${sessionId}","value":${JSON.stringify(value)}},"txn_id":"${txnId}"`;
  if (seq !== 0) text += `,"seq":${seq}`;
  if (redelivered) text += ',"redelivered":true';
  return text + '}\n';
}

/**
 * An `input` event as the object {@link inputFrame} encodes, for a link
 * that takes messages as objects (in process: {@link AppLink.takesMessages}).
 *
 * @param seq - 0 for an app without acks
 */
export function inputMessage(sessionId: string, value: string, txnId: string, seq: number, redelivered: boolean): object {
  const message: { param: 'input'; data: { id: string; value: string }; txn_id: string; seq?: number; redelivered?: true } = { param: 'input', data: { id: sessionId, value }, txn_id: txnId };
  if (seq !== 0) message.seq = seq;
  if (redelivered) message.redelivered = true;
  return message;
}

/** A `disconnect` event as the object {@link eventFrame} encodes (see {@link inputMessage}); `seq` is 0 for an app without acks. */
export function disconnectMessage(id: string, reason: string, seq: number): object {
  const message: { param: 'disconnect'; data: { id: string; reason: string }; txn_id: string; seq?: number } = { param: 'disconnect', data: { id, reason }, txn_id: nextTxnId() };
  if (seq !== 0) message.seq = seq;
  return message;
}

/** About what a message handed over as an object weighs besides its text, in bytes (its frame's length, for the write bound). */
export const MESSAGE_OVERHEAD_BYTES = 120;

/** What a `connect` event tells of a user (a `Connection` is one). */
export interface AnnouncedUser {
  readonly id: string;
  readonly transport: string;
  readonly remote: object;
  readonly connectedAt: number;
}

/**
 * A `connect` event, built as a string template: byte for byte what
 * `eventFrame('connect', {id, transport, remote, connectedAt, resumed,
 * state, telnet?}, seq)` gives, without the objects. A resync writes one per
 * live user.
 *
 * @param telnetJson - `JSON.stringify` of the user's telnet info, if they have any
 * @param seq - 0 for an app without acks
 */
export function connectFrame(user: AnnouncedUser, resumed: boolean, state: object, telnetJson: string | undefined, seq: number): string {
  let text = `{"param":"connect","data":{"id":${JSON.stringify(user.id)},"transport":${JSON.stringify(user.transport)},"remote":${JSON.stringify(user.remote)},"connectedAt":${JSON.stringify(user.connectedAt)},"resumed":${resumed},"state":${JSON.stringify(state)}`;
  if (telnetJson !== undefined) text += `,"telnet":${telnetJson}`;
  text += `},"txn_id":"${nextTxnId()}"`;
  if (seq !== 0) text += `,"seq":${seq}`;
  return text + '}\n';
}
