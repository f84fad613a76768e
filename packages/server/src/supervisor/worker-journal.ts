/**
 * The worker's side of the journal: tells the supervisor about every
 * session it could bring back after a crash — a duplicate of its socket and
 * a small record (id, transport, remote, connectedAt, the app's `state`, the
 * telnet negotiation) — keeps the records current, and says when a session
 * ends so the supervisor closes its copy.
 *
 * A resumable WebSocket session (`imi.v1`, resume window on) is journaled
 * without a socket: its connection dies with the worker (the kernel closes
 * it, so the client notices at once) and the client resumes on the next
 * worker with its token. Its record also holds the resume state (token
 * hash, expiry when parked, echo, lines received), kept current by small
 * `ws` messages coalesced like the records.
 *
 * Records are sent when a session opens, then coalesced: a session whose
 * state or telnet negotiation changed is marked, and the marked ones go up
 * at the end of the event-loop turn — or, under a flood of changes, at most
 * once every {@link JOURNAL_FLUSH_MS}, so an app rewriting every user's
 * state in a loop costs one message per session per interval.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Intermediary } from '../intermediary.js';
import type { Session } from '../hooks.js';
import { rawHandle } from '../handover/fds.js';
import { rawSocket } from '../handover/parent.js';
import type { Connection } from '../users/connection.js';
import { TelnetChannel } from '../users/telnet/telnet-channel.js';
import { readTelnetState } from '../users/telnet/telnet-state.js';
import { WsChannel } from '../users/ws-channel.js';
import { RECORDS_PER_MESSAGE, type JournalRecord, type JournalWs, type WorkerMessage } from './protocol.js';

/** The shortest time between two flushes of changed records, in ms: under a flood, what a crash may lose of a `state` update or a window resize. */
export const JOURNAL_FLUSH_MS = 50;

/** The record of a live session. */
export function recordOf(connection: Connection): JournalRecord {
  const record = connection.record;
  const channel = connection.userChannel;
  return {
    id: record.id,
    transport: record.transport,
    remote: { address: record.remote.address, port: record.remote.port },
    connectedAt: record.connectedAt,
    state: record.state,
    telnet: channel instanceof TelnetChannel ? readTelnetState(channel) : null,
    ...(channel instanceof WsChannel ? { ws: channel.journalState() } : {}),
  };
}

/** Sends a message to the supervisor (and a handle); false when the channel is gone. */
export function sendUp(message: WorkerMessage, handle?: object): boolean {
  if (process.send === undefined || process.connected !== true) return false;
  // A raw handle travels as a duplicate descriptor; this process keeps its own.
  (process.send as (message: unknown, handle?: unknown) => boolean)(message, handle);
  return true;
}

/** Keeps the supervisor's journal current. */
export class WorkerJournal {
  /** Sessions the supervisor holds a copy of. */
  private readonly tracked = new Set<string>();
  private readonly dirty = new Set<string>();
  /** WebSocket sessions whose resume state (token, parking, echo) changed. */
  private readonly dirtyWs = new Set<string>();
  /** WebSocket sessions whose count of lines received (only) changed. */
  private readonly dirtyCounts = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private scheduledWs = false;
  private lastFlush = 0;
  private stopped = false;

  /**
   * @param imi - the intermediary
   * @param logger - where to log
   * @param restored - sessions restored from the supervisor (it holds them already)
   */
  constructor(
    private readonly imi: Intermediary,
    private readonly logger: Logger,
    restored: Iterable<string> = [],
  ) {
    const parts = imi.handoverParts();
    for (const id of restored) {
      this.tracked.add(id);
      const connection = parts.users.get(id);
      if (connection?.userChannel instanceof WsChannel) this.watchWs(connection, connection.userChannel);
    }
    imi.on('sessionOpen', this.onOpen);
    imi.on('sessionClose', this.onClose);
    imi.registry.on('stateChanged', this.onState);
    // Every telnet change (NAWS, TTYPE, echo, GMCP, MCCP2) goes through this
    // one method; wrapping it on this instance marks the session without
    // touching the telnet code (being reworked elsewhere).
    const users = parts.users;
    const original = users.onTelnetChanged.bind(users);
    users.onTelnetChanged = (connection: Connection): void => {
      this.onTelnet(connection);
      original(connection);
    };
  }

  /** Stops sending (a planned restart hands everything back in one message). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.imi.off('sessionOpen', this.onOpen);
    this.imi.off('sessionClose', this.onClose);
    this.imi.registry.off('stateChanged', this.onState);
  }

  /** Sends the changed records (and WebSocket resume states) now. */
  flush(): void {
    this.scheduled = false;
    this.flushWs();
    if (this.stopped || this.dirty.size === 0) return;
    this.lastFlush = performance.now();
    const users = this.imi.handoverParts().users;
    const records: JournalRecord[] = [];
    for (const id of this.dirty) {
      const connection = users.get(id);
      if (connection !== undefined && !connection.closing) records.push(recordOf(connection));
    }
    this.dirty.clear();
    for (let i = 0; i < records.length; i += RECORDS_PER_MESSAGE) sendUp({ imi: 'supervise', kind: 'update', records: records.slice(i, i + RECORDS_PER_MESSAGE) });
  }

  /** Sends the changed WebSocket resume states now. */
  private flushWs(): void {
    this.scheduledWs = false;
    if (this.stopped || (this.dirtyWs.size === 0 && this.dirtyCounts.size === 0)) return;
    const users = this.imi.handoverParts().users;
    const items: JournalWs[] = [];
    for (const id of this.dirtyWs) {
      this.dirtyCounts.delete(id);
      const channel = users.get(id)?.userChannel;
      if (channel instanceof WsChannel && !channel.destroyed) items.push({ id, ws: channel.journalState() });
    }
    this.dirtyWs.clear();
    for (let i = 0; i < items.length; i += RECORDS_PER_MESSAGE) sendUp({ imi: 'supervise', kind: 'ws', items: items.slice(i, i + RECORDS_PER_MESSAGE) });
    if (this.dirtyCounts.size === 0) return;
    // The common case, a line arrived: two flat arrays, cheap to send and to read.
    const ids: string[] = [];
    const counts: number[] = [];
    for (const id of this.dirtyCounts) {
      const channel = users.get(id)?.userChannel;
      if (!(channel instanceof WsChannel) || channel.destroyed) continue;
      ids.push(id);
      counts.push(channel.received);
    }
    this.dirtyCounts.clear();
    if (ids.length > 0) sendUp({ imi: 'supervise', kind: 'received', ids, counts });
  }

  private readonly onOpen = (session: Session): void => {
    const connection = session as Connection;
    const channel = connection.userChannel;
    if (channel instanceof WsChannel) {
      if (channel.resumable) this.watchWs(connection, channel);
      return;
    }
    // TLS users have no plain socket to keep: they end with the worker.
    const socket: Socket | undefined = rawSocket(connection.userChannel);
    const handle = socket === undefined ? undefined : rawHandle(socket);
    if (handle === undefined || this.tracked.has(connection.id)) return;
    const record = recordOf(connection);
    if (!sendUp({ imi: 'supervise', kind: 'open', record }, handle)) return;
    this.tracked.add(connection.id);
    this.logger.trace({ session: connection.id }, 'journal: session sent to the supervisor');
  };

  private readonly onClose = (session: Session): void => {
    const id = session.id;
    if (!this.tracked.delete(id)) return;
    this.dirty.delete(id);
    this.dirtyWs.delete(id);
    this.dirtyCounts.delete(id);
    // At once: if this process only destroyed the socket, the supervisor's copy is the last and its close sends the FIN.
    sendUp({ imi: 'supervise', kind: 'drop', ids: [id] });
  };

  private readonly onState = (record: { id: string }): void => this.mark(record.id);

  /** Journals a resumable WebSocket session (no socket), and follows its resume state from now on. */
  private watchWs(connection: Connection, channel: WsChannel): void {
    const id = connection.id;
    channel.onResumeStateChange = (what): void => {
      if (this.tracked.has(id)) this.mark(id, what === 'count' ? this.dirtyCounts : this.dirtyWs);
      else this.openWs(connection, channel);
    };
    this.openWs(connection, channel);
  }

  private openWs(connection: Connection, channel: WsChannel): void {
    // A session gets its token when it is attached; one without is not resumable (yet).
    if (this.stopped || this.tracked.has(connection.id) || channel.tokenHash === undefined || connection.closing) return;
    if (!sendUp({ imi: 'supervise', kind: 'open', record: recordOf(connection) })) return;
    this.tracked.add(connection.id);
  }

  private onTelnet(connection: Connection): void {
    this.mark(connection.id);
  }

  private mark(id: string, set = this.dirty): void {
    if (this.stopped || !this.tracked.has(id)) return;
    set.add(id);
    if (set === this.dirtyWs) {
      // At once (rare: a connect, a resume, a park, echo): a new token's hash goes up before the
      // client is sent the token, so the journal is never behind the client; only a crash between
      // those two writes leaves the client with a token the journal no longer has.
      this.flushWs();
      return;
    }
    if (set === this.dirtyCounts) {
      // Not rate-limited: a WebSocket user's count of lines received must be current at a crash, or
      // their page would resend lines the app already had. A small message per event-loop turn.
      if (!this.scheduledWs) {
        this.scheduledWs = true;
        setImmediate(() => this.flushWs());
      }
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.lastFlush + JOURNAL_FLUSH_MS - performance.now();
    if (wait <= 0) setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), wait);
  }
}
