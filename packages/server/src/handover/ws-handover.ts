/**
 * WebSocket users in an upgrade. A plain (`ws`) connection is passed on as
 * its socket, between two messages: reading stops in the kernel only once
 * `ws`'s receiver holds no part of a frame (a frame half read would be lost
 * with this process), and only once everything written is in the kernel.
 * A user who cannot be passed that way (`ws+tls`: TLS state lives in this
 * process; a frame that does not complete in time) but who can resume
 * (`imi.v1` and a token) goes as a snapshot without a socket: the
 * successor parks the session, this process closes the connection with
 * 1012, and the browser page resumes on the successor with its token.
 *
 * This reaches into `ws`'s receiver (`_bufferedBytes`, `_state`,
 * `_fragmented`, `_loop`: ws 8.x); everything that does lives here.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { WsChannel } from '../users/ws-channel.js';
import type { UserChannel } from '../users/transport.js';
import { resumeReading, stopReading } from './fds.js';

/** The parts of `ws`'s Receiver read here. */
interface ReceiverState {
  _bufferedBytes: number;
  _state: number;
  _fragmented: number;
  _loop: boolean;
  writableLength: number;
}

/** The receiver's state between frames (`GET_INFO`). */
const GET_INFO = 0;

/** The channel as a WebSocket channel, if it is one. */
export function asWs(channel: UserChannel): WsChannel | undefined {
  return channel instanceof WsChannel ? channel : undefined;
}

/** The plain TCP socket under a connected `ws` channel (undefined for `ws+tls`, parked sessions, closing connections). */
export function wsSocket(channel: WsChannel): Socket | undefined {
  const ws = channel.ws;
  if (channel.transport !== 'ws' || ws === undefined || ws.readyState !== ws.OPEN) return undefined;
  return channel.socket as Socket | undefined;
}

/** Whether the receiver holds nothing of a message (no partial frame, no fragments of an unfinished message). */
export function atMessageBoundary(channel: WsChannel): boolean {
  const receiver = (channel.ws as unknown as { _receiver?: ReceiverState } | undefined)?._receiver;
  if (receiver === undefined) return false;
  return receiver._bufferedBytes === 0 && receiver._state === GET_INFO && receiver._fragmented === 0 && !receiver._loop && receiver.writableLength === 0;
}

/** Whether the channel can go with its socket now: plain, at a message boundary, everything written flushed, no compression. */
export function wsPassable(channel: WsChannel): boolean {
  if (wsSocket(channel) === undefined || !atMessageBoundary(channel) || channel.writableLength > 0) return false;
  return Object.keys((channel.ws as unknown as { _extensions: object })._extensions).length === 0;
}

/**
 * Freezes a WebSocket channel: no expiry, no pings; a plain one stops
 * reading in the kernel — at once when its receiver is between messages,
 * else as soon as it gets there (it reads on until then).
 *
 * @returns what undoes it (the upgrade did not happen)
 */
export function freezeWs(channel: WsChannel): () => void {
  channel.hold();
  const socket = wsSocket(channel);
  if (socket === undefined) return () => channel.unhold();
  stopReading(socket);
  // Mid-frame: read on until the frame (and message) is whole. ws's own
  // data listener runs first, so the receiver has taken the chunk by now.
  const check = (): void => {
    if (!atMessageBoundary(channel)) return;
    socket.off('data', check);
    stopReading(socket);
  };
  if (!atMessageBoundary(channel)) {
    socket.on('data', check);
    resumeReading(socket);
  }
  return () => {
    socket.off('data', check);
    if (channel.socket === socket) resumeReading(socket);
    channel.unhold();
  };
}
