/**
 * The session snapshot: everything that defines a live user session except
 * its socket, as plain JSON data — what a handover sends to a successor
 * process, and what it restores from. Also its validator.
 *
 * **Versioning.** `v` is the format's version. A reader accepts exactly the
 * versions it knows and rejects any other with `IMI_BAD_SNAPSHOT`. Within a
 * version nothing is added, removed or changes meaning; any change to the
 * shape makes a new version, and a reader of version N+1 keeps reading
 * version N (so an old process can hand over to a new one).
 *
 * @module
 */
import { ImiError, type JsonObject, type TelnetInfo } from '@imi/core';

/**
 * The snapshot format this code writes. Version 2 added `ws` (WebSocket
 * sessions); version 1 snapshots are still read (as `ws: null`).
 */
export const SESSION_SNAPSHOT_VERSION = 2;
/** The oldest snapshot format this code reads. */
export const OLDEST_SESSION_SNAPSHOT_VERSION = 1;

/** A line of input kept for the next app (typed while no app was connected). */
export interface SnapshotQueuedInput {
  /** Its `txn_id` (kept: the app may deduplicate by it). */
  txnId: string;
  /** The line (UTF-8 text, end of line stripped). */
  value: string;
}

/** A line of input an app was sent and did not acknowledge; it is redelivered. */
export interface SnapshotUnackedInput {
  /** Its `txn_id` (kept across redeliveries). */
  txnId: string;
  /** The line. */
  value: string;
  /** The `seq` it was last sent with: redeliveries follow this order, and new numbers start past the highest. */
  seq: number;
}

/** A line held back by the input rate limit, not yet seen by hooks or the app. */
export interface SnapshotDelayedLine {
  /** The line. */
  value: string;
  /** Whether it was cut at `maxLineBytes`. */
  truncated: boolean;
  /** Its size as sent, in bytes (end of line excluded). */
  bytes: number;
}

/** A telnet user's negotiation, as kept by the intermediary (option codes are telnet option numbers). */
export interface SnapshotTelnet {
  /** What the app gets in `connect.data.telnet`: NAWS size, TTYPE list and MTTS bits, echo, SGA, GMCP (with `Core.Hello` and supports), MCCP2. */
  info: TelnetInfo;
  /** Whether MCCP2 was offered to this user (the listener's `mccp2`). */
  offerMccp2: boolean;
  /** Whether GMCP was offered (the listener's `gmcp`). */
  offerGmcp: boolean;
  /** Whether EOR was offered (the listener's `eor`). */
  offerEor: boolean;
  /** Whether MSDP was offered (the listener's `msdp`). */
  offerMsdp: boolean;
  /** Whether MSSP was offered (the listener's `mssp`). */
  offerMssp: boolean;
  /** Whether the app's text is written as NVT output (the listener's `nvtOutput`). */
  nvtOutput: boolean;
  /** The last byte written was a CR whose follower (LF or NUL) is not written yet. */
  pendingCr: boolean;
  /** Options on at the intermediary's side (WILL agreed): e.g. 201 GMCP, 3 SGA, 1 ECHO, 86 MCCP2. */
  local: number[];
  /** Options on at the client's side (DO agreed): e.g. 31 NAWS, 24 TTYPE. */
  remote: number[];
  /** Our WILL/WONT requests not answered yet. */
  pendingLocal: number[];
  /** Our DO/DONT requests not answered yet. */
  pendingRemote: number[];
  /** Opening offers not answered yet. */
  opening: number[];
  /** Whether the app hides the user's typing (a password prompt). */
  hideInput: boolean;
  /** `TTYPE SEND` requests made so far. */
  ttypeRequests: number;
  /** Whether a terminal type answer is awaited. */
  awaitingTtype: boolean;
  /** Whether the opening negotiation was over. */
  settled: boolean;
}

/** A WebSocket session: what its channel needs in another process (version 2). */
export interface SnapshotWs {
  /** The negotiated subprotocol (`imi.v1`: control messages and resumes; `''`: none). */
  protocol: string;
  /** The listener's `maxPayloadBytes`. */
  maxPayload: number;
  /** The listener's `pingIntervalMs` (0: no pings). */
  pingIntervalMs: number;
  /** Whether the peer answered the last ping. */
  alive: boolean;
  /** Whether the app shows what the user types. */
  echoVisible: boolean;
  /** Line messages received in the session so far. */
  received: number;
  /** Output messages sent in the session so far. */
  sent: number;
  /** The last output messages not acknowledged by the client (for a replay after a resume), oldest first: they end at `sent`. */
  kept: string[];
  /** The SHA-256 (hex) of the session's resume token; never the token. `null`: not resumable. */
  tokenHash: string | null;
  /** When a parked session (no connection) ends, in ms since the epoch; `null`: connected. */
  parkedUntil: number | null;
  /**
   * Restored from a crash journal and not resumed since: the log has no
   * numbering of its own, and the client's output count at its next resume
   * becomes its start. Absent: false.
   */
  rebase?: boolean;
}

/**
 * One live session as plain data (version 2). JSON-safe: strings, numbers,
 * booleans, arrays, plain objects, `null`; bytes are base64.
 */
export interface SessionSnapshot {
  /** Format version: {@link SESSION_SNAPSHOT_VERSION} (1 is read too). */
  v: 1 | 2;
  /** The session id (a UUID), the `data.id` the app knows the user by. */
  id: string;
  /** `tcp`, `tls`, `telnet`, `telnet+tls`, `ws`, `ws+tls`. */
  transport: string;
  /** The user's address and port. */
  remote: { address: string; port: number };
  /** When the user connected, in ms since the epoch. */
  connectedAt: number;
  /** When the user last sent a line, in ms since the epoch (idle timeouts count from it). */
  lastInputAt: number;
  /** What apps stored for the user with `updates`. */
  state: JsonObject;
  /** The session's traffic so far: lines and bytes in, writes and bytes out. */
  counters: { linesIn: number; bytesIn: number; writesOut: number; bytesOut: number };
  /**
   * The line being typed: its bytes so far (base64), bytes past
   * `maxLineBytes` already dropped, how many CRs end the kept bytes (a line
   * end if an LF follows), and whether the last line ended at an LF (a CR
   * next is its pair).
   */
  line: { bytes: string; overflowBytes: number; crs: number; afterLf: boolean };
  /** Lines held back by the input rate, oldest first. */
  delayed: SnapshotDelayedLine[];
  /** Input queued for the next app, in the order typed. */
  queued: SnapshotQueuedInput[];
  /** Input sent to an app and not acknowledged, in `seq` order. */
  unacked: SnapshotUnackedInput[];
  /** The telnet negotiation; `null` for users of other transports. */
  telnet: SnapshotTelnet | null;
  /** The WebSocket state; `null` for users of other transports (absent in version 1). */
  ws?: SnapshotWs | null;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Checks that a value (say, from `JSON.parse`) is a session snapshot this
 * code can restore, and returns it typed.
 *
 * @throws ImiError `IMI_BAD_SNAPSHOT` for an unknown version or a missing or
 *   mistyped field (the message names it)
 */
export function validateSessionSnapshot(value: unknown): SessionSnapshot {
  const s = object(value, 'snapshot');
  if (s['v'] !== SESSION_SNAPSHOT_VERSION && s['v'] !== OLDEST_SESSION_SNAPSHOT_VERSION) {
    throw bad(`unknown snapshot version ${JSON.stringify(s['v'] ?? null)?.slice(0, 32)} (this intermediary reads versions ${OLDEST_SESSION_SNAPSHOT_VERSION} to ${SESSION_SNAPSHOT_VERSION})`);
  }
  text(s['id'], 'id', true);
  text(s['transport'], 'transport', true);
  const remote = object(s['remote'], 'remote');
  text(remote['address'], 'remote.address');
  integer(remote['port'], 'remote.port', 0, 65535);
  finite(s['connectedAt'], 'connectedAt');
  finite(s['lastInputAt'], 'lastInputAt');
  object(s['state'], 'state');
  const counters = object(s['counters'], 'counters');
  for (const key of ['linesIn', 'bytesIn', 'writesOut', 'bytesOut']) integer(counters[key], `counters.${key}`, 0);
  const line = object(s['line'], 'line');
  text(line['bytes'], 'line.bytes');
  if (!BASE64.test(line['bytes'] as string)) throw bad('line.bytes is not base64');
  integer(line['overflowBytes'], 'line.overflowBytes', 0);
  integer(line['crs'], 'line.crs', 0);
  if (typeof line['afterLf'] !== 'boolean') throw bad('line.afterLf must be a boolean');
  list(s['delayed'], 'delayed').forEach((item, i) => {
    const delayed = object(item, `delayed[${i}]`);
    text(delayed['value'], `delayed[${i}].value`);
    if (typeof delayed['truncated'] !== 'boolean') throw bad(`delayed[${i}].truncated must be a boolean`);
    integer(delayed['bytes'], `delayed[${i}].bytes`, 0);
  });
  list(s['queued'], 'queued').forEach((item, i) => {
    const queued = object(item, `queued[${i}]`);
    text(queued['txnId'], `queued[${i}].txnId`, true);
    text(queued['value'], `queued[${i}].value`);
  });
  let lastSeq = 0;
  list(s['unacked'], 'unacked').forEach((item, i) => {
    const unacked = object(item, `unacked[${i}]`);
    text(unacked['txnId'], `unacked[${i}].txnId`, true);
    text(unacked['value'], `unacked[${i}].value`);
    integer(unacked['seq'], `unacked[${i}].seq`, lastSeq + 1);
    lastSeq = unacked['seq'] as number;
  });
  if (s['telnet'] !== null) {
    const telnet = object(s['telnet'], 'telnet');
    const info = object(telnet['info'], 'telnet.info');
    for (const key of ['echo', 'sga', 'gmcp', 'mccp2', 'eor']) if (typeof info[key] !== 'boolean') throw bad(`telnet.info.${key} must be a boolean`);
    for (const key of ['offerMccp2', 'offerGmcp', 'offerEor', 'offerMsdp', 'offerMssp', 'nvtOutput', 'pendingCr', 'hideInput', 'awaitingTtype', 'settled']) {
      if (typeof telnet[key] !== 'boolean') throw bad(`telnet.${key} must be a boolean`);
    }
    for (const key of ['local', 'remote', 'pendingLocal', 'pendingRemote', 'opening']) {
      list(telnet[key], `telnet.${key}`).forEach((option, i) => integer(option, `telnet.${key}[${i}]`, 0, 255));
    }
    integer(telnet['ttypeRequests'], 'telnet.ttypeRequests', 0);
  }
  if (s['ws'] !== undefined && s['ws'] !== null) {
    if (s['v'] === OLDEST_SESSION_SNAPSHOT_VERSION) throw bad('ws is not part of version 1');
    const ws = object(s['ws'], 'ws');
    text(ws['protocol'], 'ws.protocol');
    for (const key of ['maxPayload', 'pingIntervalMs', 'received', 'sent']) integer(ws[key], `ws.${key}`, 0);
    for (const key of ['alive', 'echoVisible']) if (typeof ws[key] !== 'boolean') throw bad(`ws.${key} must be a boolean`);
    const kept = list(ws['kept'], 'ws.kept');
    kept.forEach((entry, i) => text(entry, `ws.kept[${i}]`));
    if (kept.length > (ws['sent'] as number)) throw bad('ws.kept holds more messages than ws.sent');
    if (ws['tokenHash'] !== null && (typeof ws['tokenHash'] !== 'string' || !/^[0-9a-f]{64}$/.test(ws['tokenHash']))) throw bad('ws.tokenHash must be a SHA-256 in hex, or null');
    if (ws['parkedUntil'] !== null) finite(ws['parkedUntil'], 'ws.parkedUntil');
    if (ws['rebase'] !== undefined && typeof ws['rebase'] !== 'boolean') throw bad('ws.rebase must be a boolean');
  }
  if (typeof s['transport'] === 'string' && s['transport'].startsWith('ws') && (s['ws'] === undefined || s['ws'] === null)) throw bad(`a ${s['transport']} session needs ws`);
  return value as SessionSnapshot;
}

function bad(message: string): ImiError {
  return new ImiError('IMI_BAD_SNAPSHOT', `bad session snapshot: ${message}`);
}

function object(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${name} must be an object`);
  return value as Record<string, unknown>;
}

function list(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw bad(`${name} must be an array`);
  return value;
}

function text(value: unknown, name: string, nonEmpty = false): void {
  if (typeof value !== 'string' || (nonEmpty && value.length === 0)) throw bad(`${name} must be a ${nonEmpty ? 'non-empty ' : ''}string`);
}

function finite(value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`${name} must be a number`);
}

function integer(value: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw bad(`${name} must be an integer from ${min} to ${max}`);
}
