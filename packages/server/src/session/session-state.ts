/**
 * Takes a live session's snapshot, and brings a snapshot back to life on a
 * new socket. The snapshot's shape and its versioning rule are in
 * `snapshot.ts`.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { ImiError, type SessionRegistry } from '@imi/core';
import type { InputLedger } from '../delivery/ledger.js';
import { isLoopback } from '../users/admission.js';
import { Connection } from '../users/connection.js';
import { SocketChannel } from '../users/socket-transport.js';
import { TelnetChannel } from '../users/telnet/telnet-channel.js';
import { readTelnetState, restoreTelnetChannel, resumeTelnetCompression } from '../users/telnet/telnet-state.js';
import type { MsspTable } from '../users/telnet/mssp.js';
import type { UserChannel } from '../users/transport.js';
import type { UserSide } from '../users/user-side.js';
import { WsChannel } from '../users/ws-channel.js';
import { webSocketOnSocket } from '../users/ws-on-socket.js';
import type { WsResumeSettings } from '../users/ws-resume.js';
import { SESSION_SNAPSHOT_VERSION, validateSessionSnapshot, type SessionSnapshot } from './snapshot.js';

/** The parts a restore touches. */
export interface RestoreParts {
  users: UserSide;
  registry: SessionRegistry;
  ledger: InputLedger;
  /** Tells a ready app about the restored user and hands it their kept input. */
  announceRestored(connection: Connection): void;
  maxLineBytes: number;
  maxOutputBufferBytes: number;
  limitLoopback: boolean;
  /** The MSSP variables now, for telnet users whose listener offered MSSP. */
  mssp?: () => MsspTable;
  /** Resume settings for WebSocket sessions. */
  wsResume: WsResumeSettings | undefined;
}

/** A live session as plain data (see {@link SessionSnapshot}). */
export function takeSnapshot(connection: Connection, ledger: InputLedger): SessionSnapshot {
  const record = connection.record;
  const line = connection.lineState();
  const inputs = ledger.sessionInputs(connection.id) ?? { queued: [], unacked: [] };
  return {
    v: SESSION_SNAPSHOT_VERSION,
    id: record.id,
    transport: record.transport,
    remote: { address: record.remote.address, port: record.remote.port },
    connectedAt: record.connectedAt,
    lastInputAt: connection.lastInputAt,
    state: structuredClone(record.state),
    counters: { ...record.counters },
    line: { bytes: line.bytes.toString('base64'), overflowBytes: line.overflowBytes, crs: line.crs, afterLf: line.afterLf },
    delayed: (connection.delayedCount === 0 ? [] : [...connection.delayedLines]).map((delayed) => ({ value: delayed.line, truncated: delayed.truncated, bytes: delayed.bytes })),
    queued: inputs.queued.map((entry) => ({ txnId: entry.txnId, value: entry.value })),
    unacked: inputs.unacked.map((entry) => ({ txnId: entry.txnId, value: entry.value, seq: entry.seq })),
    telnet: connection.userChannel instanceof TelnetChannel ? readTelnetState(connection.userChannel) : null,
    ws: connection.userChannel instanceof WsChannel ? connection.userChannel.snapshot() : null,
  };
}

/**
 * Makes a snapshot a live session again, over `socket`: same id, state,
 * telnet negotiation (nothing is renegotiated), unfinished line and pending
 * input. The `connect` hook does not run (the user was let in before); the
 * `sessionOpen` event is emitted. A ready app is told of the user
 * (`resumed: true`) and gets their kept input; otherwise the next app does.
 *
 * A WebSocket session comes back on its socket (the WebSocket handshake
 * is not done again) or, without one, parked: its client resumes it with
 * its token.
 *
 * The snapshot must have passed {@link validateSessionSnapshot} (the
 * intermediary's `restoreSession` checks it; an upgrade's successor checks
 * each one as it arrives and does not pay for a second check).
 *
 * @param owned - the snapshot is this restore's to keep (parsed for it
 *   alone, as an upgrade's successor's are): its `state` becomes the
 *   session's instead of a copy
 *
 * @throws ImiError `IMI_BAD_SNAPSHOT` for an id that is live already, an
 *   ssh session, or a missing socket (only a resumable WebSocket session
 *   may come without one)
 */
export function restoreValidSnapshot(snapshot: SessionSnapshot, socket: Socket | undefined, parts: RestoreParts, owned = false): Connection {
  const { users, registry, ledger } = parts;
  if (registry.has(snapshot.id)) throw new ImiError('IMI_BAD_SNAPSHOT', `bad session snapshot: session ${snapshot.id} is live already`, { sessionId: snapshot.id });
  if (snapshot.transport === 'ssh') throw new ImiError('IMI_BAD_SNAPSHOT', 'bad session snapshot: an ssh session cannot be restored (its crypto state stays in its process)', { sessionId: snapshot.id });
  const ws = snapshot.ws ?? null;
  if (socket === undefined && (ws === null || ws.tokenHash === null)) throw new ImiError('IMI_BAD_SNAPSHOT', `bad session snapshot: only a resumable WebSocket session can be restored without a socket`, { sessionId: snapshot.id });
  const telnet = snapshot.telnet;
  let channel: UserChannel;
  if (ws !== null) {
    const info = { transport: snapshot.transport, remote: { ...snapshot.remote }, protocol: ws.protocol, maxPayload: ws.maxPayload, pingIntervalMs: ws.pingIntervalMs };
    const wsChannel = new WsChannel(socket === undefined ? undefined : webSocketOnSocket(socket, ws.protocol, ws.maxPayload), socket, info, parts.wsResume);
    wsChannel.load(ws);
    channel = wsChannel;
    // The address the session had (a PROXY header's, if any), not the socket's peer: and no getpeername() per user.
  } else channel = telnet === null ? new SocketChannel(socket!, snapshot.transport, { ...snapshot.remote }) : restoreTelnetChannel(socket!, snapshot.transport, telnet, parts.mssp, { ...snapshot.remote });
  const record = registry.add({ id: snapshot.id, transport: snapshot.transport, remote: { ...snapshot.remote }, connectedAt: snapshot.connectedAt, state: owned ? snapshot.state : structuredClone(snapshot.state) });
  Object.assign(record.counters, snapshot.counters);
  const connection = new Connection(channel, record, users, parts.maxLineBytes, parts.maxOutputBufferBytes);
  if (telnet !== null) resumeTelnetCompression(channel as TelnetChannel, telnet);
  connection.lastInputAt = snapshot.lastInputAt;
  connection.restoreLineState({ bytes: Buffer.from(snapshot.line.bytes, 'base64'), overflowBytes: snapshot.line.overflowBytes, crs: snapshot.line.crs, afterLf: snapshot.line.afterLf });
  // A handed-over user holds their place in the admission counts, but is never refused.
  const limited = parts.limitLoopback || !isLoopback(snapshot.remote.address);
  users.admission.admitAnyway(snapshot.remote.address, limited);
  users.track(connection, limited);
  ledger.restoreSession(snapshot.id, {
    queued: snapshot.queued.map((input) => ({ sessionId: snapshot.id, value: input.value, txnId: input.txnId, bytes: Buffer.byteLength(input.value), seq: 0, sentBefore: false })),
    unacked: snapshot.unacked.map((input) => ({ sessionId: snapshot.id, value: input.value, txnId: input.txnId, bytes: Buffer.byteLength(input.value), seq: input.seq, sentBefore: true })),
  });
  users.adopt(connection);
  parts.announceRestored(connection);
  // Lines the input rate held back pass it again, after the input kept above.
  for (const delayed of snapshot.delayed) users.onLine(connection, delayed.value, delayed.truncated, delayed.bytes);
  return connection;
}
