/**
 * What code outside the intermediary sees of it: the shapes of its numbers
 * and events, and {@link IntermediaryApi}, the narrow view plugins, the admin
 * API and the metrics get instead of the {@link Intermediary} class (so none
 * of them imports the class that imports them).
 *
 * @module
 */
import type { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import type { ImiError, ImiErrorCode } from '@imi/core';
import type { AppInfo, IntermediaryHooks, Session } from './hooks.js';
import type { AdmissionRefusal } from './users/admission.js';
import type { TransportAddress } from './users/transport.js';

/** The ports the intermediary listens on (the real ones when 0 was asked). */
export interface ListeningPorts {
  /** Where users connect. */
  externalPort: number;
  /** Where the app connects. */
  clientPort: number;
  /** The admin HTTP listener's port, when `adminPort` is set. */
  adminPort?: number;
  /**
   * Every user listener, in order: the plain TCP one on `externalPort`
   * first, then those of {@link IntermediaryOptions.listeners}.
   */
  listeners: TransportAddress[];
}

/** The queues of one live session (the admin API's `GET /sessions`). */
export interface SessionQueues {
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet. */
  unacked: number;
}

/** Why input was dropped, as counted in {@link IntermediaryStats.dropped}. */
export type DropReason = 'queueFull' | 'appDownDrop' | 'userGone' | 'unackedOverflow' | 'rateLimited';

/** A snapshot of the intermediary's numbers (the admin API and metrics read the same). */
export interface IntermediaryStats {
  /** Live user sessions. */
  sessions: number;
  /**
   * User connections holding a seat of `maxConnections`: live sessions, plus
   * sockets still flushing after their session ended (at most
   * `closeTimeoutMs`) and users still being let in.
   */
  seats: number;
  /** Live user sessions by transport (`tcp`, `telnet`, …). */
  sessionsByTransport: Record<string, number>;
  /** Whether an app is connected and synced. */
  appConnected: boolean;
  /** The connected app's name, if it gave one. */
  appName: string | undefined;
  /** App connections accepted since start. */
  appConnects: number;
  /** App connections lost since start (crash, close, heartbeat, replaced). */
  appDisconnects: number;
  /** Apps replaced under `appPolicy: "replace"`. */
  appReplacements: number;
  /** Users connected since start. */
  sessionsOpened: number;
  /** Lines received from users. */
  inputLines: number;
  /** Bytes of lines received from users (end of line excluded). */
  inputBytes: number;
  /** Texts written to users. */
  outputWrites: number;
  /** Bytes written to users. */
  outputBytes: number;
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet (including those kept for redelivery). */
  unacked: number;
  /** Inputs delivered again to a new app since start. */
  redelivered: number;
  /** App messages waiting for `dep_txns`. */
  heldMessages: number;
  /** Dropped inputs by reason. */
  dropped: Record<DropReason, number>;
  /** Users refused by a connection limit, by limit. */
  refused: Record<AdmissionRefusal, number>;
  /** Reported errors by code. */
  errors: Record<ImiErrorCode, number>;
  /** Limit hits by option name. */
  limits: Record<string, number>;
  /** How long the last resync took, in ms: from taking the app on to `synced` queued (what was queued past each 64 KiB is already written by then). */
  lastResyncMs: number | undefined;
  /**
   * How many users the last resync announced with `connect`: every user online, unless the app named those it
   * holds in `hello.known` (then only the others; see docs/protocol.md).
   */
  lastResyncAnnounced: number | undefined;
}

/** Events for code that only observes (logging, metrics). Hooks are for code that changes things. */
export interface IntermediaryEvents {
  /** Both ports are listening. */
  listening: (ports: ListeningPorts) => void;
  /** A user was let in (after the `connect` hook). */
  sessionOpen: (session: Session) => void;
  /** A user's connection ended. */
  sessionClose: (session: Session, reason: string) => void;
  /** A user's line (after the `input` hook), before it is delivered or queued. */
  input: (session: Session, line: string) => void;
  /** The app's `output` for a user was written (after the `output` hook). Used for the round-trip latency metric. */
  appOutput: (session: Session, text: string) => void;
  /** An app was accepted. */
  appConnect: (app: AppInfo) => void;
  /** An app was resynced: `count` users online (announced, or held by the app as it said in `hello.known`), in `durationMs`. */
  synced: (app: AppInfo, count: number, durationMs: number) => void;
  /** The app's connection ended. */
  appDisconnect: (app: AppInfo, reason: string) => void;
  /** Something was reported (bad frame, limit, plugin error, …); it has been logged and counted. */
  error: (error: ImiError) => void;
  /** `close()` finished. */
  close: () => void;
}

/**
 * The intermediary as plugins, the admin API and the metrics use it: its
 * hooks, events, logger, sessions and numbers. {@link Intermediary}
 * implements it; a plugin typed against the class keeps working.
 */
export interface IntermediaryApi extends EventEmitter<IntermediaryEvents> {
  /** The lifecycle hooks; plugins tap them. */
  readonly hooks: IntermediaryHooks;
  /** The logger (silent unless one was given). */
  readonly logger: Logger;
  /** Whether an app is connected and has been resynced. */
  readonly appConnected: boolean;
  /** The connected app, if any. */
  readonly currentApp: AppInfo | undefined;
  /** The live sessions (let in by the `connect` hook). */
  sessions(): IterableIterator<Session>;
  /** A live session by id. */
  session(id: string): Session | undefined;
  /** The queue depths of a live session; undefined for an unknown id. */
  sessionQueues(id: string): SessionQueues | undefined;
  /**
   * Sends text to every live user but those in `except`.
   *
   * @returns how many users it was written to
   */
  broadcast(text: string, except?: ReadonlySet<string>): number;
  /** A snapshot of the counters (a new object each call). */
  stats(): IntermediaryStats;
}

/**
 * A plugin: an object with `apply(intermediary)` that taps hooks under its
 * own name. Passed in `options.plugins`, applied in order in the constructor.
 */
export interface IntermediaryPlugin {
  /** Taps the intermediary's hooks (and may listen to its events). It is given the {@link Intermediary} itself. */
  apply(intermediary: IntermediaryApi): void;
}
