/**
 * The session registry: who is connected, and the state apps stored for
 * them. The intermediary owns the truth; the client keeps a mirror.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { LimitError } from './errors.js';
import type { JsonObject, JsonValue, RemoteAddress } from './protocol.js';

/** Default {@link SessionRegistryOptions.maxStateBytes}: 64 KiB of JSON per user. */
export const DEFAULT_MAX_STATE_BYTES = 64 * 1024;

/** Traffic counters kept per session. */
export interface SessionCounters {
  /** Lines received from the user. */
  linesIn: number;
  /** Bytes received from the user. */
  bytesIn: number;
  /** Texts written to the user. */
  writesOut: number;
  /** Bytes written to the user. */
  bytesOut: number;
}

/** One connected user. */
export interface SessionRecord {
  /** A UUID from `crypto.randomUUID()`, stable for the life of the connection. */
  readonly id: string;
  /** `"tcp"`, `"telnet"`, `"ws"`, `"tls"`, … */
  readonly transport: string;
  /** The peer address. */
  readonly remote: RemoteAddress;
  /** When the user connected (ms since the epoch). */
  readonly connectedAt: number;
  /** What apps stored for this user with `updates`. Replace only through {@link SessionRegistry.applyUpdates}. */
  state: JsonObject;
  /** Traffic counters. */
  readonly counters: SessionCounters;
}

/** What a new session is made from. */
export interface NewSession {
  /** The transport's name. */
  transport: string;
  /** The peer address. */
  remote: RemoteAddress;
  /** Defaults to now. */
  connectedAt?: number;
  /** Defaults to a new UUID; give one to mirror a session known elsewhere (the client does). */
  id?: string;
  /** Defaults to `{}`. */
  state?: JsonObject;
}

/** Events of a {@link SessionRegistry}. */
export interface SessionRegistryEvents {
  /** A session was added. */
  added: (session: SessionRecord) => void;
  /** A session was removed, with the reason given. */
  removed: (session: SessionRecord, reason: string) => void;
  /** `updates` were applied; `changes` is what was merged (null = deleted). */
  stateChanged: (session: SessionRecord, changes: JsonObject) => void;
}

/** Options of {@link SessionRegistry}. */
export interface SessionRegistryOptions {
  /** Largest per-user state, in bytes of its JSON. Default {@link DEFAULT_MAX_STATE_BYTES}. */
  maxStateBytes?: number;
}

/**
 * id → session. Every operation is O(1) in the number of sessions (a `Map`),
 * so ten thousand users joining and leaving cost no more per user than ten.
 */
export class SessionRegistry extends EventEmitter<SessionRegistryEvents> {
  /** The per-user state bound, in bytes of JSON. */
  readonly maxStateBytes: number;
  private readonly sessions = new Map<string, SessionRecord>();

  /** @param options - limits */
  constructor(options: SessionRegistryOptions = {}) {
    super();
    this.maxStateBytes = options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES;
  }

  /** How many sessions are live. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Adds a session and emits `added`.
   *
   * @param init - transport, remote and optional id, time and state
   * @returns the new record
   */
  add(init: NewSession): SessionRecord {
    const session: SessionRecord = {
      id: init.id ?? randomUUID(),
      transport: init.transport,
      remote: init.remote,
      connectedAt: init.connectedAt ?? Date.now(),
      state: init.state ?? {},
      counters: { linesIn: 0, bytesIn: 0, writesOut: 0, bytesOut: 0 },
    };
    this.sessions.set(session.id, session);
    this.emit('added', session);
    return session;
  }

  /** The session with this id, if live. */
  get(id: string): SessionRecord | undefined {
    return this.sessions.get(id);
  }

  /** Whether a session with this id is live. */
  has(id: string): boolean {
    return this.sessions.has(id);
  }

  /**
   * Removes a session and emits `removed`.
   *
   * @param id - the session id
   * @param reason - why (`"closed"`, `"kicked"`, …)
   * @returns the removed record, or undefined if it was not there
   */
  remove(id: string, reason: string): SessionRecord | undefined {
    const session = this.sessions.get(id);
    if (session === undefined) return undefined;
    this.sessions.delete(id);
    this.emit('removed', session, reason);
    return session;
  }

  /**
   * Merges `updates` into a session's state: each key is set, a key set to
   * `null` is deleted. Emits `stateChanged`. The merge is all or nothing: if
   * the result would pass `maxStateBytes`, nothing changes and a
   * {@link LimitError} is returned.
   *
   * @param id - the session id
   * @param updates - keys to set (null deletes)
   * @returns the session, undefined if there is none, or a LimitError
   */
  applyUpdates(id: string, updates: JsonObject): SessionRecord | undefined | LimitError {
    const session = this.sessions.get(id);
    if (session === undefined) return undefined;
    const next: JsonObject = { ...session.state };
    for (const key of Object.keys(updates)) {
      const value: JsonValue | undefined = updates[key];
      if (value === null || value === undefined) delete next[key];
      // A define, not `next[key] = value`: a `"__proto__"` key (JSON.parse makes it an own key) must
      // be stored as data, not replace the state object's prototype.
      else Object.defineProperty(next, key, { value, writable: true, enumerable: true, configurable: true });
    }
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(next));
    } catch (cause) {
      return new LimitError('maxStateBytes', this.maxStateBytes, 'state cannot be serialised', { cause, sessionId: id });
    }
    if (size > this.maxStateBytes) {
      return new LimitError('maxStateBytes', this.maxStateBytes, `state of ${size} bytes is over maxStateBytes (${this.maxStateBytes})`, {
        sessionId: id,
      });
    }
    session.state = next;
    this.emit('stateChanged', session, updates);
    return session;
  }

  /** The live sessions, in the order they connected. */
  values(): IterableIterator<SessionRecord> {
    return this.sessions.values();
  }

  /** The live session ids, in the order they connected. */
  ids(): IterableIterator<string> {
    return this.sessions.keys();
  }

  /** Iterates over live sessions. */
  [Symbol.iterator](): IterableIterator<SessionRecord> {
    return this.sessions.values();
  }

  /** Removes every session without emitting events (for tear-down). */
  clear(): void {
    this.sessions.clear();
  }
}
