/**
 * The handover protocol: the messages an old `imi-server` and its successor
 * exchange over the IPC channel of `child_process.spawn` while the sockets
 * themselves travel as inherited descriptors (stdio entries) or, for users
 * who arrive during the handover, one at a time with `subprocess.send`.
 *
 * ```text
 * new → old  booted    (precopy: it takes pre-copies)
 * old → new  precopy   a chunk of sessions taken while the old process still serves
 * old → new  begin     version, fd layout, global state, session count
 * old → new  sessions  a chunk of sessions: fd, snapshot, what was read but not used;
 *                      or `{ same: id }` for one whose pre-copy is still exact
 * old → new  end
 * new → old  ready     (or refused: code, message; then it exits)
 * old → new  commit    final seq, users closed by the old one
 * old → new  late      a user accepted during the handover (with the socket)
 * new → old  serving
 * ```
 *
 * Until `commit` the successor takes nothing from any socket and writes
 * nothing to it, so the old process can kill it and go on serving.
 *
 * **Pre-copy** (as a virtual machine's live migration copies memory before it
 * stops the machine): once the successor says `booted` with `precopy: true`,
 * the old process sends every session it could hand over as it is then,
 * while it still serves, and the successor checks and keeps them. Frozen, the
 * old process writes each session down again and sends only `{ same: id }`
 * where the result is the very same JSON (an idle user's), the whole session
 * otherwise. What users wait for in the freeze is then the successor's restore,
 * not the transfer and check of every snapshot. A successor that does not say
 * `precopy: true` gets no pre-copy.
 *
 * **Versioning.** `begin.v` is {@link HANDOVER_VERSION}, `begin.snapshotVersion`
 * the session snapshot's; a successor refuses versions it does not know
 * (`IMI_BAD_SNAPSHOT`), and the old process keeps serving.
 *
 * @module
 */
import { ImiError } from '@imi/core';

/** The version of the handover messages this code speaks. */
export const HANDOVER_VERSION = 1;
/** Sessions per `sessions` message: a few hundred KiB of JSON each, so no single IPC message is huge. */
export const SESSIONS_PER_MESSAGE = 200;
/** The environment variable that tells `imi-server` it is a successor (set by the old process, removed at once by the new one). */
export const SUCCESSOR_ENV = 'IMI_HANDOVER';
/**
 * Set beside {@link SUCCESSOR_ENV} by an old process that starts its
 * successor before it freezes (value: `from,wsFrom,to`, see
 * {@link UserSockets}): the successor makes its user sockets, then says
 * `booted`, and the old process freezes only then. (A successor
 * that does not know this variable never says `booted`, and the old process
 * gives up after `upgradeTimeoutMs` and serves on.)
 */
export const SUCCESSOR_EARLY_ENV = 'IMI_HANDOVER_EARLY';

/**
 * Where the user sockets are in the successor's stdio (it makes its sockets
 * of them while it boots, before the freeze): plain TCP and telnet in
 * `[from, wsFrom)`, WebSocket in `[wsFrom, to)`. Passed as
 * `from,wsFrom,to` in {@link SUCCESSOR_EARLY_ENV}.
 */
export interface UserSockets {
  from: number;
  wsFrom: number;
  to: number;
}

/** Reads {@link SUCCESSOR_EARLY_ENV}: `1` (no sockets to make early) or `from,wsFrom,to`; undefined when unset or malformed. */
export function readUserSockets(value: string | undefined): UserSockets | undefined {
  const match = value === undefined ? null : /^(\d+),(\d+),(\d+)$/.exec(value);
  if (match === null) return undefined;
  const [from, wsFrom, to] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return from >= 4 && from <= wsFrom && wsFrom <= to ? { from, wsFrom, to } : undefined;
}

/** A user who left without an app to tell, waiting for the same app to come back (see the app side's `departed`). */
export interface DepartedUser {
  /** The session id. */
  id: string;
  /** The reason the app will be told. */
  reason: string;
}

/** What is not per session: numbering, the app the sessions were announced to, counters. */
export interface GlobalState {
  /** The ledger's last `seq`: the successor numbers past it. */
  seq: number;
  /** The last app's `hello.instance` (`null`: none or not given), so the same app reconnecting is known. */
  lastAppInstance: string | null;
  /** Whether an app was connected: it will reconnect to the successor, which waits a moment for it before reading. */
  appConnected: boolean;
  /** The last app connection's id; restored sessions announced to it keep that mark. */
  lastAppConnectionId: number;
  /** Users who left while no app was connected, for the same app when it comes back. */
  departed: DepartedUser[];
  /** The counters (`stats()`), so totals go on across upgrades. */
  counters: Record<string, unknown>;
}

/** The telnet parser's position inside a command, so the bytes after it parse the same in the successor. */
export interface ParserState {
  state: number;
  verb: number;
  subOption: number;
  /** The subnegotiation bytes so far, base64. */
  sub: string;
  subMax: number;
}

/** What a telnet channel had read but not passed on. */
export interface TelnetExtra {
  parser: ParserState;
  /** Input held while the channel was paused (protocol already removed), base64. */
  held: string;
  /** GMCP messages held while paused: package, JSON text. */
  heldGmcp: Array<[string, string]>;
}

/** One session as sent in `sessions`. */
export interface HandedSession {
  /** Its socket's descriptor number in the successor (its stdio index); none for a WebSocket session whose client resumes on the successor. */
  fd?: number;
  /** The {@link SessionSnapshot}; validated by the successor. */
  snapshot: unknown;
  /** Whether the last app was told of this user. */
  announced: boolean;
  /** Telnet users only. */
  telnet?: TelnetExtra;
  /** The telnet info (JSON) the last app was last told, when `announced`: the successor then tells the app only a change. */
  telnetSent?: string;
}

/** A session in `sessions` whose pre-copy (sent in `precopy`) is exactly what it would be sent as now. */
export interface SameSession {
  /** The session id of the pre-copy to restore. */
  same: string;
}

/** Messages from the old process. */
export type ParentMessage =
  | { imi: 'handover'; kind: 'precopy'; items: HandedSession[] }
  | { imi: 'handover'; kind: 'begin'; v: number; snapshotVersion: number; from: number; layout: { users: number[]; app: number; admin?: number }; global: GlobalState; sessions: number }
  | { imi: 'handover'; kind: 'sessions'; items: Array<HandedSession | SameSession> }
  /**
   * `close`: stdio indices of users who left between the successor's start and the freeze; the successor closes its copies.
   * `sessions`: how many were sent (then `begin.sessions` is only the most there could be).
   */
  | { imi: 'handover'; kind: 'end'; close?: number[]; sessions?: number }
  | { imi: 'handover'; kind: 'commit'; seq: number; departed: DepartedUser[] }
  | { imi: 'handover'; kind: 'late'; listener: number; pending: string };

/** Messages from the successor. */
export type ChildMessage =
  /**
   * The successor has loaded its code and takes messages (only when started with {@link SUCCESSOR_EARLY_ENV}).
   * `precopy`: it takes `precopy` messages (absent: the old process sends none).
   */
  | { imi: 'handover'; kind: 'booted'; precopy?: boolean }
  /** `restoreMs`: the successor's time spent restoring sessions (for the upgrade's phase timings). */
  | { imi: 'handover'; kind: 'ready'; sessions: number; restoreMs?: number }
  | { imi: 'handover'; kind: 'refused'; code: string; message: string }
  /** `at`: when it started serving, in ms since the epoch (the old process is busy letting go of sockets then, and reads this later). */
  | { imi: 'handover'; kind: 'serving'; pid: number; at?: number };

function broken(what: string): ImiError {
  return new ImiError('IMI_UPGRADE_FAILED', `broken handover message: ${what}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isInt(value: unknown, min = 0): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min;
}

/**
 * Checks a message from the old process (the successor's side).
 *
 * @returns undefined for a message that is not part of the handover (someone else's IPC)
 * @throws ImiError `IMI_UPGRADE_FAILED` for a malformed message, `IMI_BAD_SNAPSHOT` for versions this code cannot read
 */
export function readParentMessage(value: unknown): ParentMessage | undefined {
  if (!isObject(value) || value['imi'] !== 'handover') return undefined;
  switch (value['kind']) {
    case 'begin': {
      if (value['v'] !== HANDOVER_VERSION) throw new ImiError('IMI_BAD_SNAPSHOT', `unknown handover version ${JSON.stringify(value['v'] ?? null)?.slice(0, 32)} (this imi-server reads version ${HANDOVER_VERSION})`);
      const layout = value['layout'];
      const global = value['global'];
      if (!isObject(layout) || !Array.isArray(layout['users']) || !layout['users'].every((fd) => isInt(fd, 3)) || !isInt(layout['app'], 3)) throw broken('begin.layout');
      if (layout['admin'] !== undefined && !isInt(layout['admin'], 3)) throw broken('begin.layout.admin');
      if (!isObject(global) || !isInt(global['seq']) || typeof global['appConnected'] !== 'boolean' || !isInt(global['lastAppConnectionId']) || !Array.isArray(global['departed']) || !isObject(global['counters'])) throw broken('begin.global');
      if (global['lastAppInstance'] !== null && typeof global['lastAppInstance'] !== 'string') throw broken('begin.global.lastAppInstance');
      if (!isInt(value['sessions']) || !isInt(value['snapshotVersion'])) throw broken('begin.sessions');
      return value as ParentMessage;
    }
    case 'precopy':
    case 'sessions': {
      const items = value['items'];
      if (!Array.isArray(items)) throw broken(`${value['kind']}.items`);
      for (const item of items) {
        if (value['kind'] === 'sessions' && isObject(item) && item['same'] !== undefined) {
          if (typeof item['same'] !== 'string' || item['same'] === '') throw broken('a session item same');
          continue;
        }
        if (!isObject(item) || (item['fd'] !== undefined && !isInt(item['fd'], 3)) || typeof item['announced'] !== 'boolean') throw broken('a session item');
        const telnet = item['telnet'];
        if (telnet !== undefined && (!isObject(telnet) || !isObject(telnet['parser']) || typeof telnet['held'] !== 'string' || !Array.isArray(telnet['heldGmcp']))) throw broken('a session item telnet');
        if (item['telnetSent'] !== undefined && typeof item['telnetSent'] !== 'string') throw broken('a session item telnetSent');
      }
      return value as ParentMessage;
    }
    case 'end': {
      const close = value['close'];
      if (close !== undefined && (!Array.isArray(close) || !close.every((fd) => isInt(fd, 3)))) throw broken('end.close');
      if (value['sessions'] !== undefined && !isInt(value['sessions'])) throw broken('end.sessions');
      return value as ParentMessage;
    }
    case 'commit':
      if (!isInt(value['seq']) || !Array.isArray(value['departed'])) throw broken('commit');
      return value as ParentMessage;
    case 'late':
      if (!isInt(value['listener']) || typeof value['pending'] !== 'string') throw broken('late');
      return value as ParentMessage;
    default:
      throw broken(`unknown kind ${JSON.stringify(value['kind'])?.slice(0, 32)}`);
  }
}

/**
 * Checks a message from the successor (the old process's side).
 *
 * @returns undefined for a message that is not part of the handover
 * @throws ImiError `IMI_UPGRADE_FAILED` for a malformed one
 */
export function readChildMessage(value: unknown): ChildMessage | undefined {
  if (!isObject(value) || value['imi'] !== 'handover') return undefined;
  const kind = value['kind'];
  if (kind === 'booted' && (value['precopy'] === undefined || typeof value['precopy'] === 'boolean')) return value as ChildMessage;
  if (kind === 'ready' && isInt(value['sessions']) && (value['restoreMs'] === undefined || (typeof value['restoreMs'] === 'number' && value['restoreMs'] >= 0))) return value as ChildMessage;
  if (kind === 'refused' && typeof value['code'] === 'string' && typeof value['message'] === 'string') return value as ChildMessage;
  if (kind === 'serving' && isInt(value['pid']) && (value['at'] === undefined || (typeof value['at'] === 'number' && Number.isFinite(value['at'])))) return value as ChildMessage;
  throw broken(`from the successor: ${JSON.stringify(value).slice(0, 80)}`);
}
