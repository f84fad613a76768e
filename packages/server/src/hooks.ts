/**
 * The intermediary's lifecycle hooks (tapable) and the shapes plugins see.
 * docs/hooks.md describes each hook in the order they run.
 *
 * @module
 */
import { AsyncSeriesBailHook, AsyncSeriesHook, SyncHook, SyncWaterfallHook } from 'tapable';
import type { AppMessage, JsonObject, RemoteAddress, TelnetInfo } from '@imi/core';

/** A connected user, as hooks, events and plugins see it. */
export interface Session {
  /** The session id (a UUID), the `data.id` the app uses. */
  readonly id: string;
  /** `"tcp"`, `"telnet"`, `"ws"`, `"tls"`, … */
  readonly transport: string;
  /** The user's address. */
  readonly remote: RemoteAddress;
  /** When the user connected (ms since the epoch). */
  readonly connectedAt: number;
  /** What apps stored for this user (read-only here; apps change it with `updates`). */
  readonly state: Readonly<JsonObject>;
  /** Whether the connection is still open. */
  readonly open: boolean;
  /**
   * For telnet users: what their client negotiated (window size, terminal
   * type, GMCP, …), as the app gets it in `connect.data.telnet`. Undefined
   * for other transports.
   */
  readonly telnet?: Readonly<TelnetInfo> | undefined;
  /**
   * Writes text to the user as is (through the `output` hook). Safe to call
   * on a closed session: it is dropped.
   */
  write(text: string): void;
  /**
   * Closes the user's connection after flushing what was written, with an
   * optional last text.
   *
   * @param farewell - written before the close
   * @param reason - told to the app in `disconnect.data.reason` (default `"kicked"`)
   */
  close(farewell?: string, reason?: string): void;
}

/** The connected app, as hooks and events see it. */
export interface AppInfo {
  /** A number for logs, growing by one per app connection. */
  readonly connectionId: number;
  /** The `name` the app gave in `hello`, if any. */
  readonly name: string | undefined;
  /** Whether the app asked for acks (and gets `seq` on events). */
  readonly acks: boolean;
  /** The app's address (loopback, usually). */
  readonly remote: RemoteAddress;
}

/** What a `connect` tap returns to refuse a user. */
export interface Refusal {
  /** Written to the user before the connection is closed. */
  message: string;
}

/**
 * The hooks of an {@link Intermediary}, in the order they usually run. Each
 * is a tapable hook; the kind says what a tap's return value means.
 */
export interface IntermediaryHooks {
  /**
   * A user connected, before the app hears of them. Bail: return a
   * {@link Refusal} to turn them away (a ban list), or nothing to let them in.
   * Their input waits until every tap is done.
   */
  readonly connect: AsyncSeriesBailHook<[Session], Refusal | undefined | void>;
  /**
   * A user sent a line. Waterfall: return a new string to change it, `false`
   * to swallow it (later taps then get `false`; pass it on), or nothing to
   * keep it. Synchronous: it runs for every line.
   */
  readonly input: SyncWaterfallHook<[string | false, Session]>;
  /** A line arrived while no app is connected (it is queued or dropped, per `whileAppDown`). */
  readonly noClient: SyncHook<[Session, string]>;
  /**
   * Text is about to be written to a user (from the app, a broadcast or a
   * plugin). Waterfall: return a new string to change it; `''` writes nothing.
   */
  readonly output: SyncWaterfallHook<[string, Session]>;
  /** A user's connection ended, with the reason the app will be told. */
  readonly disconnect: SyncHook<[Session, string]>;
  /** An app connected and was accepted (after `hello`), before its resync. */
  readonly clientConnect: SyncHook<[AppInfo]>;
  /**
   * Every valid message from the app, before it is processed. Waterfall:
   * return a changed message, or `false` to drop it.
   */
  readonly clientInput: SyncWaterfallHook<[AppMessage | false, AppInfo]>;
  /** The app's connection ended (crash, close, heartbeat timeout, replaced). */
  readonly clientDisconnect: SyncHook<[AppInfo, string]>;
  /** The intermediary is stopping; users are still connected. Async taps are awaited. */
  readonly shutdown: AsyncSeriesHook<[string]>;
}

/** Creates the hooks; called once in the {@link Intermediary} constructor. */
export function createHooks(): IntermediaryHooks {
  return Object.freeze({
    connect: new AsyncSeriesBailHook<[Session], Refusal | undefined | void>(['session']),
    input: new SyncWaterfallHook<[string | false, Session]>(['line', 'session']),
    noClient: new SyncHook<[Session, string]>(['session', 'line']),
    output: new SyncWaterfallHook<[string, Session]>(['text', 'session']),
    disconnect: new SyncHook<[Session, string]>(['session', 'reason']),
    clientConnect: new SyncHook<[AppInfo]>(['app']),
    clientInput: new SyncWaterfallHook<[AppMessage | false, AppInfo]>(['message', 'app']),
    clientDisconnect: new SyncHook<[AppInfo, string]>(['app', 'reason']),
    shutdown: new AsyncSeriesHook<[string]>(['reason']),
  });
}
