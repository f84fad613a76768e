/**
 * What `imi-server --supervise` and the intermediary it runs (the worker)
 * say to each other over the IPC channel, and the journal record: what the
 * supervisor keeps of each session so a restarted worker can bring it back.
 *
 * ```text
 * worker → supervisor  listener   one listening socket (its handle), role and index
 * worker → supervisor  listening  every listener sent
 * worker → supervisor  open       a session let in: its record (and its socket's handle; none for WebSocket)
 * worker → supervisor  update     records that changed (state, telnet), coalesced
 * worker → supervisor  ws         WebSocket resume state that changed (token hash, parking, echo), coalesced
 * worker → supervisor  received   WebSocket sessions' counts of lines received that changed (and only that), coalesced
 * worker → supervisor  drop       sessions that ended: the supervisor closes its copy
 * worker → supervisor  serving    a restarted worker restored the sessions and listens
 * worker → supervisor  restart    a planned restart was asked of the worker (POST /upgrade, SIGUSR2)
 * worker → supervisor  late       planned restart: a user accepted while freezing, not let in (with the socket)
 * worker → supervisor  final      planned restart: every session's full snapshot; the worker exits next
 * supervisor → worker  begin      restart: the listeners' descriptors, the session count, counters
 * supervisor → worker  sessions   restart: a chunk of sessions (descriptor, record or snapshot)
 * supervisor → worker  end
 * supervisor → worker  restart    hand everything back and exit (planned restart)
 * supervisor → worker  late       a user passed on from the previous worker, once this one serves (with the socket)
 * supervisor → worker  errors     the supervisor's own error counters, for /stats
 * ```
 *
 * The sockets themselves never travel in messages after the first `open`:
 * the supervisor keeps a duplicate of each and puts it in the new worker's
 * stdio, as an upgrade does.
 *
 * @module
 */
import { ImiError, type JsonObject } from '@imi/core';
import { SESSION_SNAPSHOT_VERSION, validateSessionSnapshot, type SessionSnapshot, type SnapshotTelnet, type SnapshotWs } from '../session/snapshot.js';
import type { TelnetExtra } from '../handover/protocol.js';

/** The environment variable that tells `imi-server` it runs under a supervisor: `first` (bind the ports) or `restart` (take them from the supervisor). */
export const SUPERVISED_ENV = 'IMI_SUPERVISED';
/**
 * Largest journal record, in bytes of JSON: the app's `state` (at most
 * `maxStateBytes`, 64 KiB by default) plus the telnet negotiation (a few
 * KiB at most). A bigger record is refused and the previous one is kept.
 */
export const MAX_JOURNAL_RECORD_BYTES = 128 * 1024;
/** Sessions per `sessions` or `update` message, so no single IPC message is huge. */
export const RECORDS_PER_MESSAGE = 200;

/**
 * What the supervisor keeps of one session: enough to bring it back on its
 * socket after the worker died. Not in it (lost at a crash): the line being
 * typed, queued and unacked input, lines held by the input rate, counters.
 */
export interface JournalRecord {
  /** The session id the app knows the user by. */
  id: string;
  /**
   * `tcp`, `telnet`, or `ws` / `ws+tls` for a resumable WebSocket session
   * (no socket kept: its client resumes with its token). Other transports
   * are not journaled: they cannot survive.
   */
  transport: string;
  /** The user's address (from the PROXY header when there was one). */
  remote: { address: string; port: number };
  /** When the user connected, in ms since the epoch. */
  connectedAt: number;
  /** What apps stored for the user. */
  state: JsonObject;
  /** The telnet negotiation (NAWS, TTYPE, echo, GMCP, MCCP2, options on); `null` for `tcp`. */
  telnet: SnapshotTelnet | null;
  /**
   * A WebSocket session's resume state: the token's SHA-256 (never the
   * token), when a parked session expires (`parkedUntil`; `null` while
   * connected — the supervisor sets it to the crash time plus
   * `wsResumeWindowMs`), echo, lines received. No output is kept: `kept`
   * is empty and `sent` 0. Absent or `null` for other transports.
   */
  ws?: SnapshotWs | null;
}

/** One WebSocket session's resume state, as a `ws` message carries it. */
export interface JournalWs {
  /** The session id. */
  id: string;
  /** Its resume state (see {@link JournalRecord.ws}). */
  ws: SnapshotWs;
}

/** Whether a transport is a WebSocket one (journaled without a socket). */
export function isWsTransport(transport: string): boolean {
  return transport === 'ws' || transport === 'ws+tls';
}

/** A session as the supervisor hands it to a restarted worker. */
export interface RestoredItem {
  /** Its socket's descriptor in the worker (a stdio index); absent for a WebSocket session, restored parked. */
  fd?: number;
  /** After a crash: the journal record. */
  record?: JournalRecord;
  /** After a planned restart: the full snapshot (line, queued and unacked input too). */
  snapshot?: SessionSnapshot;
  /** Planned restart, telnet: what the channel held. */
  telnet?: TelnetExtra;
}

/** A session handed back for a planned restart. */
export interface FinalSession {
  /** The full snapshot. */
  snapshot: SessionSnapshot;
  /** Telnet: the parser's place and input held. */
  telnet?: TelnetExtra;
}

/** Which listener a `listener` message carries. */
export type ListenerRole = 'user' | 'app' | 'admin';

/** Messages from the worker. */
export type WorkerMessage =
  | { imi: 'supervise'; kind: 'listener'; role: ListenerRole; index: number }
  | { imi: 'supervise'; kind: 'listening'; users: number; admin: boolean }
  | { imi: 'supervise'; kind: 'open'; record: JournalRecord }
  | { imi: 'supervise'; kind: 'update'; records: JournalRecord[] }
  | { imi: 'supervise'; kind: 'ws'; items: JournalWs[] }
  | { imi: 'supervise'; kind: 'received'; ids: string[]; counts: number[] }
  | { imi: 'supervise'; kind: 'drop'; ids: string[] }
  | { imi: 'supervise'; kind: 'serving'; pid: number; sessions: number }
  | { imi: 'supervise'; kind: 'restart' }
  | { imi: 'supervise'; kind: 'late'; listener: number; pending: string }
  | { imi: 'supervise'; kind: 'final'; sessions: FinalSession[]; seq: number };

/** Messages from the supervisor. */
export type SupervisorMessage =
  | { imi: 'supervise'; kind: 'begin'; layout: { users: number[]; app: number; admin?: number }; sessions: number; planned: boolean; seq: number; errors: Record<string, number> }
  | { imi: 'supervise'; kind: 'sessions'; items: RestoredItem[] }
  | { imi: 'supervise'; kind: 'end' }
  | { imi: 'supervise'; kind: 'restart' }
  | { imi: 'supervise'; kind: 'late'; listener: number; pending: string }
  | { imi: 'supervise'; kind: 'errors'; errors: Record<string, number> };

/** The error for a broken message or record. */
export function badJournal(what: string, cause?: unknown): ImiError {
  return new ImiError('IMI_BAD_JOURNAL', `supervisor: ${what}`, cause === undefined ? {} : { cause });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isInt(value: unknown, min = 0): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min;
}

/** The snapshot a record stands for: empty line and queues, counters from zero, idle from now. */
export function recordToSnapshot(record: JournalRecord, now = Date.now()): SessionSnapshot {
  return {
    v: SESSION_SNAPSHOT_VERSION,
    id: record.id,
    transport: record.transport,
    remote: { address: record.remote.address, port: record.remote.port },
    connectedAt: record.connectedAt,
    lastInputAt: now,
    state: record.state,
    counters: { linesIn: 0, bytesIn: 0, writesOut: 0, bytesOut: 0 },
    line: { bytes: '', overflowBytes: 0, crs: 0, afterLf: false },
    delayed: [],
    queued: [],
    unacked: [],
    telnet: record.telnet,
    ws: record.ws === undefined || record.ws === null ? null : { ...record.ws, kept: [], sent: 0 },
  };
}

/**
 * Checks a journal record: its shape (as the snapshot it stands for), its
 * transport and its size.
 *
 * @throws ImiError `IMI_BAD_JOURNAL` naming what is wrong
 */
export function validateJournalRecord(value: unknown): JournalRecord {
  if (!isObject(value) || !isObject(value['remote'])) throw badJournal('a journal record must be an object with a remote');
  const record = value as unknown as JournalRecord;
  const ws = typeof record.transport === 'string' && isWsTransport(record.transport);
  if (record.transport !== 'tcp' && record.transport !== 'telnet' && !ws) throw badJournal(`a journal record of transport ${JSON.stringify(record.transport)?.slice(0, 32)} (only tcp, telnet and resumable ws are kept)`);
  if ((record.transport === 'telnet') !== (record.telnet !== null && record.telnet !== undefined)) throw badJournal('a journal record has telnet state exactly when its transport is telnet');
  if (ws !== (record.ws !== null && record.ws !== undefined)) throw badJournal('a journal record has ws state exactly when its transport is ws');
  if (ws) checkJournalWs(record.ws);
  try {
    validateSessionSnapshot(recordToSnapshot(record, 0));
  } catch (error) {
    throw badJournal(`a broken journal record: ${(error as Error).message}`, error);
  }
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > MAX_JOURNAL_RECORD_BYTES) throw badJournal(`a journal record of ${bytes} bytes is over ${MAX_JOURNAL_RECORD_BYTES}`);
  return record;
}

/**
 * Checks a WebSocket session's journaled resume state: a snapshot's `ws`
 * part with a token hash (only resumable sessions are journaled) and no
 * output (the journal keeps none).
 *
 * @throws ImiError `IMI_BAD_JOURNAL` naming what is wrong
 */
export function checkJournalWs(value: unknown): SnapshotWs {
  if (!isObject(value)) throw badJournal('a WebSocket journal entry must be an object');
  const ws = value as unknown as SnapshotWs;
  if (typeof ws.tokenHash !== 'string') throw badJournal('a WebSocket journal entry needs a token hash (only resumable sessions are kept)');
  if (!Array.isArray(ws.kept) || ws.kept.length !== 0 || ws.sent !== 0) throw badJournal('a WebSocket journal entry keeps no output (kept [], sent 0)');
  const probe = recordToSnapshot({ id: 'probe', transport: 'ws', remote: { address: '', port: 0 }, connectedAt: 0, state: {}, telnet: null, ws }, 0);
  try {
    validateSessionSnapshot(probe);
  } catch (error) {
    throw badJournal(`a broken WebSocket journal entry: ${(error as Error).message}`, error);
  }
  return ws;
}

/**
 * Checks a message from the worker (the supervisor's side). Records inside
 * `open` and `update` are checked one by one by the caller, so one broken
 * record does not cost the others.
 *
 * @returns undefined for a message that is not the supervisor's (someone else's IPC)
 * @throws ImiError `IMI_BAD_JOURNAL` for a malformed one
 */
export function readWorkerMessage(value: unknown): WorkerMessage | undefined {
  if (!isObject(value) || value['imi'] !== 'supervise') return undefined;
  const ok = ((): boolean => {
    switch (value['kind']) {
      case 'listener':
        return (value['role'] === 'user' || value['role'] === 'app' || value['role'] === 'admin') && isInt(value['index']);
      case 'listening':
        return isInt(value['users'], 1) && typeof value['admin'] === 'boolean';
      case 'open':
        return value['record'] !== undefined;
      case 'update':
        return Array.isArray(value['records']);
      case 'ws':
        return Array.isArray(value['items']);
      case 'received': {
        const { ids, counts } = value;
        return Array.isArray(ids) && Array.isArray(counts) && ids.length === counts.length && ids.every((id) => typeof id === 'string') && counts.every((count) => isInt(count) && Number.isSafeInteger(count));
      }
      case 'drop':
        return Array.isArray(value['ids']) && value['ids'].every((id) => typeof id === 'string');
      case 'serving':
        return isInt(value['pid'], 1) && isInt(value['sessions']);
      case 'restart':
        return true;
      case 'late':
        return isInt(value['listener']) && typeof value['pending'] === 'string';
      case 'final':
        return Array.isArray(value['sessions']) && value['sessions'].every((item) => isObject(item) && isObject(item['snapshot'])) && isInt(value['seq']);
      default:
        return false;
    }
  })();
  if (!ok) throw badJournal(`a broken message from the worker: ${JSON.stringify(value).slice(0, 120)}`);
  return value as unknown as WorkerMessage;
}

/** Whether a restored item may come without a descriptor: a WebSocket session (its client resumes). */
function restoredWithoutSocket(item: Record<string, unknown>): boolean {
  const inner = isObject(item['record']) ? item['record'] : isObject(item['snapshot']) ? item['snapshot'] : undefined;
  return inner !== undefined && typeof inner['transport'] === 'string' && isWsTransport(inner['transport']);
}

/**
 * Checks a message from the supervisor (the worker's side).
 *
 * @returns undefined for a message that is not the supervisor's
 * @throws ImiError `IMI_BAD_JOURNAL` for a malformed one
 */
export function readSupervisorMessage(value: unknown): SupervisorMessage | undefined {
  if (!isObject(value) || value['imi'] !== 'supervise') return undefined;
  const ok = ((): boolean => {
    switch (value['kind']) {
      case 'begin': {
        const layout = value['layout'];
        if (!isObject(layout) || !Array.isArray(layout['users']) || !layout['users'].every((fd) => isInt(fd, 3)) || !isInt(layout['app'], 3)) return false;
        if (layout['admin'] !== undefined && !isInt(layout['admin'], 3)) return false;
        return isInt(value['sessions']) && typeof value['planned'] === 'boolean' && isInt(value['seq']) && isObject(value['errors']);
      }
      case 'sessions':
        return Array.isArray(value['items']) && value['items'].every((item) => isObject(item) && (isInt(item['fd'], 3) || (item['fd'] === undefined && restoredWithoutSocket(item))) && (isObject(item['record']) || isObject(item['snapshot'])));
      case 'end':
      case 'restart':
        return true;
      case 'late':
        return isInt(value['listener']) && typeof value['pending'] === 'string';
      case 'errors':
        return isObject(value['errors']);
      default:
        return false;
    }
  })();
  if (!ok) throw badJournal(`a broken message from the supervisor: ${JSON.stringify(value).slice(0, 120)}`);
  return value as unknown as SupervisorMessage;
}
