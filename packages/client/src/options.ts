/**
 * Every option of the client, its default, and the check that turns an
 * impossible value into a clear `IMI_CONFIG` error in the constructor rather
 * than a strange failure later.
 *
 * @module
 */
import { DEFAULT_MAX_FRAME_BYTES, ImiError } from '@imi/core';
import type { ClusterWorkerOptions } from './cluster/worker-options.js';
import { exponentialBackoff, type BackoffOptions, type ReconnectPolicy } from './reconnect-policy.js';

/** Default {@link ClientOptions.host}: the intermediary's app port is loopback-only by default. */
export const DEFAULT_HOST = '127.0.0.1';
/** Default {@link ClientOptions.port}: the intermediary's default app port. */
export const DEFAULT_PORT = 9000;
/** Default {@link ClientOptions.name}, shown in the intermediary's logs. */
export const DEFAULT_NAME = 'imi-app';
/** Default {@link ClientOptions.tickIntervalMs}: 1 s, the original client's fixed tick. */
export const DEFAULT_TICK_INTERVAL_MS = 1_000;
/**
 * Default {@link ClientOptions.maxPendingOutgoing}: messages kept while the
 * link is down, to be sent after the resync.
 */
export const DEFAULT_MAX_PENDING_OUTGOING = 10_000;
/**
 * Default {@link ClientOptions.maxOutgoingBytes}: 16 MiB of frames not yet
 * handed to the socket (kept while the link is down, waiting for `drain`, or
 * held with a reply until its ack can go too).
 */
export const DEFAULT_MAX_OUTGOING_BYTES = 16 * 1024 * 1024;
/**
 * Default {@link ClientOptions.maxInFlightEvents}: events received and not
 * yet handled; past it the client stops reading from the intermediary until
 * half of them are done.
 */
export const DEFAULT_MAX_IN_FLIGHT_EVENTS = 1_024;
/**
 * Default {@link ClientOptions.maxReplyHoldMs}: how long a finished reply may
 * wait for slower handlers of earlier input so that it can travel with its
 * ack.
 */
export const DEFAULT_MAX_REPLY_HOLD_MS = 1_000;
/** Default {@link ClientOptions.connectTimeoutMs}: one TCP connection attempt. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Default {@link ClientOptions.closeTimeoutMs}: how long `close()` lets running handlers finish. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * Default {@link ClientOptions.linkTimeoutMs}: 0, off. The intermediary pings
 * every few seconds; set this above its heartbeat interval to notice an
 * intermediary that hangs without closing the connection.
 */
export const DEFAULT_LINK_TIMEOUT_MS = 0;
/**
 * Default {@link ClientOptions.legacySyncWaitMs}: 1 s. An imi intermediary
 * sends `synced` within milliseconds of `hello`; the original Perl one
 * sends its whole resync in one write and never `synced`.
 */
export const DEFAULT_LEGACY_SYNC_WAIT_MS = 1_000;
/**
 * How many recently handled input `txn_id`s are remembered so that input
 * redelivered after a short link outage is acknowledged without being
 * handled twice. Sized well above {@link DEFAULT_MAX_IN_FLIGHT_EVENTS}.
 */
export const REDELIVERY_MEMORY = 8_192;

/**
 * Bytes of replies kept after they were written, so that if the link breaks
 * before the intermediary read them (it then redelivers their input) they
 * are sent again instead of being lost: 1 MiB, per link and for the replies
 * waiting to be replayed.
 */
export const REPLAY_MEMORY_BYTES = 1024 * 1024;

/** What to do when the intermediary already serves another app (`IMI_APP_BUSY`). */
export type AppBusyPolicy = 'reject' | 'retry';

/** Options of {@link Client}; every one has a default. */
export interface ClientOptions {
  /** Host of the intermediary's app port. Default {@link DEFAULT_HOST}. */
  host?: string;
  /** The intermediary's app port. Default {@link DEFAULT_PORT}. */
  port?: number;
  /** The shared secret, when the intermediary was started with one. Default: none. */
  token?: string | undefined;
  /** A name for the intermediary's logs and stats. Default {@link DEFAULT_NAME}. */
  name?: string;
  /**
   * Acknowledge each event once its handlers are done, so the intermediary
   * redelivers what a crashed app had not finished. Default `true`.
   */
  acks?: boolean;
  /**
   * When the link to the intermediary breaks (or cannot be made): a
   * {@link ReconnectPolicy}, options for {@link exponentialBackoff}, or
   * `false` never to reconnect (the client closes with `IMI_LINK_DOWN`).
   * After a `shutdown` of reason `handover` (an upgrade: the successor
   * already holds the port) the first attempt goes at once, whatever delay
   * the policy gives; the policy is still asked, and can still give up. The
   * same holds after a `hello.known` list was refused or not understood,
   * and that attempt uses none of the policy's attempts (docs/protocol.md).
   * Default `exponentialBackoff()`.
   */
  reconnect?: ReconnectPolicy | BackoffOptions | false;
  /** Interval of the `tick` event, in ms; 0 turns it off. Default {@link DEFAULT_TICK_INTERVAL_MS}. */
  tickIntervalMs?: number;
  /**
   * Most messages kept while the link is down; past it `send()` and friends
   * throw `IMI_LINK_DOWN`. Default {@link DEFAULT_MAX_PENDING_OUTGOING}.
   */
  maxPendingOutgoing?: number;
  /**
   * Most bytes of frames not yet handed to the socket; past it `send()` and
   * friends throw (`IMI_LIMIT` while the link is up and slow,
   * `IMI_LINK_DOWN` while it is down). Default {@link DEFAULT_MAX_OUTGOING_BYTES}.
   */
  maxOutgoingBytes?: number;
  /** Largest frame, in bytes, both received and sent. Default 1 MiB (`DEFAULT_MAX_FRAME_BYTES` of `@imi/core`). */
  maxFrameBytes?: number;
  /** Events received and not yet handled before reading pauses. Default {@link DEFAULT_MAX_IN_FLIGHT_EVENTS}. */
  maxInFlightEvents?: number;
  /**
   * How long a finished reply may wait for slower handlers of earlier events
   * (of other users) so that it travels in one write with its ack; after
   * that it is sent and its ack follows later. `Infinity` always waits.
   * Default {@link DEFAULT_MAX_REPLY_HOLD_MS}. Not used in cluster mode
   * (`redis`): the worker acks per event, so such a reply goes at once
   * with its own ack (`done`, docs/protocol.md).
   */
  maxReplyHoldMs?: number;
  /** Timeout of one TCP connection attempt, in ms. Default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  /** How long `close()` waits for running handlers, in ms. Default {@link DEFAULT_CLOSE_TIMEOUT_MS}. */
  closeTimeoutMs?: number;
  /**
   * Treat the link as dead after this long without receiving anything, in ms; 0 is off. Not applied in cluster mode
   * (`redis`), whose link to the worker's gateway is in process. Default {@link DEFAULT_LINK_TIMEOUT_MS}.
   */
  linkTimeoutMs?: number;
  /**
   * On `IMI_APP_BUSY` (another app is connected and the intermediary's
   * policy is `refuse`): `"reject"` fails `connect()` at once; `"retry"`
   * keeps trying with the reconnect policy, e.g. for a deploy that starts the
   * new app before the old one exits. Default `"reject"`.
   */
  onAppBusy?: AppBusyPolicy;
  /**
   * For the original Perl IO::Multiplex::Intermediary, which never sends
   * `synced`: when no `synced` arrives within this many ms of the link
   * opening, or of the last message of the resync, the resync is taken as
   * done (the users announced so far are the live ones) and `connect()`
   * resolves. A `connect` in imi's format (it has `connectedAt`) shows an imi
   * intermediary, which always sends `synced`: the wait is then off for that
   * link; so is it for the links after a `shutdown` of reason `handover`
   * (imi's upgrade), until one is synced. 0 turns it off (wait for `synced`
   * forever). Default {@link DEFAULT_LEGACY_SYNC_WAIT_MS}.
   */
  legacySyncWaitMs?: number;
  /**
   * Cluster mode: a Redis URL (`redis://host:port`). The client is then a
   * *worker*: instead of linking to one intermediary (`host`/`port` are not
   * used) it serves the partitions of users it is given, from Redis Streams
   * fed by any number of holders (`imi-server --redis`), with the same
   * events, hooks and methods. A user whose partition moves to another
   * worker leaves `sessions` with a `disconnect` of reason `moved` (they are
   * still connected). See docs/cluster.md. Default: none (one intermediary).
   */
  redis?: string;
  /** Cluster mode's knobs (partitions, lease TTL, bounds); used only with {@link redis}. Default: every knob's default. */
  cluster?: ClusterWorkerOptions;
}

/** {@link ClientOptions} with every default applied and checked. */
export interface ResolvedClientOptions {
  /** See {@link ClientOptions.host}. */
  readonly host: string;
  /** See {@link ClientOptions.port}. */
  readonly port: number;
  /** See {@link ClientOptions.token}. */
  readonly token: string | undefined;
  /** See {@link ClientOptions.name}. */
  readonly name: string;
  /** See {@link ClientOptions.acks}. */
  readonly acks: boolean;
  /** The reconnect schedule; `undefined` when reconnecting is off. */
  readonly reconnect: ReconnectPolicy | undefined;
  /** See {@link ClientOptions.tickIntervalMs}. */
  readonly tickIntervalMs: number;
  /** See {@link ClientOptions.maxPendingOutgoing}. */
  readonly maxPendingOutgoing: number;
  /** See {@link ClientOptions.maxOutgoingBytes}. */
  readonly maxOutgoingBytes: number;
  /** See {@link ClientOptions.maxFrameBytes}. */
  readonly maxFrameBytes: number;
  /** See {@link ClientOptions.maxInFlightEvents}. */
  readonly maxInFlightEvents: number;
  /** See {@link ClientOptions.maxReplyHoldMs}. */
  readonly maxReplyHoldMs: number;
  /** See {@link ClientOptions.connectTimeoutMs}. */
  readonly connectTimeoutMs: number;
  /** See {@link ClientOptions.closeTimeoutMs}. */
  readonly closeTimeoutMs: number;
  /** See {@link ClientOptions.linkTimeoutMs}. */
  readonly linkTimeoutMs: number;
  /** See {@link ClientOptions.onAppBusy}. */
  readonly onAppBusy: AppBusyPolicy;
  /** See {@link ClientOptions.legacySyncWaitMs}. */
  readonly legacySyncWaitMs: number;
}

function config(option: string, expected: string, got: unknown): ImiError {
  return new ImiError('IMI_CONFIG', `${option} must be ${expected}, got ${typeof got === 'string' ? JSON.stringify(got) : String(got)}`);
}

function integer(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw config(option, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/**
 * Applies the defaults and checks every option.
 *
 * @param options - what the app gave
 * @returns the complete options
 * @throws ImiError `IMI_CONFIG` naming the first impossible option
 */
export function resolveClientOptions(options: ClientOptions = {}): ResolvedClientOptions {
  const host = options.host ?? DEFAULT_HOST;
  if (typeof host !== 'string' || host === '') throw config('host', 'a non-empty string', host);
  const token = options.token;
  if (token !== undefined && typeof token !== 'string') throw config('token', 'a string', token);
  const name = options.name ?? DEFAULT_NAME;
  if (typeof name !== 'string') throw config('name', 'a string', name);
  const acks = options.acks ?? true;
  if (typeof acks !== 'boolean') throw config('acks', 'a boolean', acks);
  const onAppBusy = options.onAppBusy ?? 'reject';
  if (onAppBusy !== 'reject' && onAppBusy !== 'retry') throw config('onAppBusy', '"reject" or "retry"', onAppBusy);

  let reconnect: ReconnectPolicy | undefined;
  const given = options.reconnect;
  if (given === false) reconnect = undefined;
  else if (typeof given === 'function') reconnect = given;
  else if (given === undefined || (typeof given === 'object' && given !== null)) reconnect = exponentialBackoff(given ?? {});
  else throw config('reconnect', 'a policy function, backoff options or false', given);

  const maxReplyHoldMs = options.maxReplyHoldMs ?? DEFAULT_MAX_REPLY_HOLD_MS;
  if (typeof maxReplyHoldMs !== 'number' || Number.isNaN(maxReplyHoldMs) || maxReplyHoldMs < 0) {
    throw config('maxReplyHoldMs', 'a number ≥ 0 (Infinity allowed)', maxReplyHoldMs);
  }

  return {
    host,
    port: integer('port', options.port ?? DEFAULT_PORT, 1, 65_535),
    token,
    name,
    acks,
    reconnect,
    // setInterval's delay is a signed 32-bit integer: bigger values silently become 1 ms.
    tickIntervalMs: integer('tickIntervalMs', options.tickIntervalMs ?? DEFAULT_TICK_INTERVAL_MS, 0, 2 ** 31 - 1),
    maxPendingOutgoing: integer('maxPendingOutgoing', options.maxPendingOutgoing ?? DEFAULT_MAX_PENDING_OUTGOING, 0),
    maxOutgoingBytes: integer('maxOutgoingBytes', options.maxOutgoingBytes ?? DEFAULT_MAX_OUTGOING_BYTES, 1),
    maxFrameBytes: integer('maxFrameBytes', options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, 64),
    maxInFlightEvents: integer('maxInFlightEvents', options.maxInFlightEvents ?? DEFAULT_MAX_IN_FLIGHT_EVENTS, 1),
    maxReplyHoldMs,
    connectTimeoutMs: integer('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 1, 2 ** 31 - 1),
    closeTimeoutMs: integer('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, 0, 2 ** 31 - 1),
    linkTimeoutMs: integer('linkTimeoutMs', options.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS, 0, 2 ** 31 - 1),
    onAppBusy,
    legacySyncWaitMs: integer('legacySyncWaitMs', options.legacySyncWaitMs ?? DEFAULT_LEGACY_SYNC_WAIT_MS, 0, 2 ** 31 - 1),
  };
}
