/**
 * `@imi/client`: the imi application SDK. Connect to an intermediary, get
 * typed events and tapable hooks for your users' connections and lines,
 * with acks, resync and automatic reconnection.
 *
 * @example
 * ```ts
 * import { Client } from '@imi/client';
 *
 * const app = new Client({ port: 9000, token: process.env.IMI_TOKEN });
 * app.on('connect', (session) => session.send('Welcome!\r\n'));
 * app.hooks.buildResponse.tap('Shout', (reply, session, line) => line.toUpperCase() + '\r\n');
 * await app.connect();
 * ```
 *
 * @packageDocumentation
 */
export { Client, type SendOptions, type OutputOptions, type BroadcastOptions, type ClientStatus } from './client.js';
export { Session, type SessionSnapshot } from './session.js';
export type { ClientEvents } from './events.js';
export type { ClientHooks } from './hooks.js';
export { HandlerError, type HandlerKind } from './errors.js';
export {
  resolveClientOptions,
  DEFAULT_HOST,
  DEFAULT_PORT,
  DEFAULT_NAME,
  DEFAULT_TICK_INTERVAL_MS,
  DEFAULT_MAX_PENDING_OUTGOING,
  DEFAULT_MAX_OUTGOING_BYTES,
  DEFAULT_MAX_IN_FLIGHT_EVENTS,
  DEFAULT_MAX_REPLY_HOLD_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_LINK_TIMEOUT_MS,
  DEFAULT_LEGACY_SYNC_WAIT_MS,
  REDELIVERY_MEMORY,
  REPLAY_MEMORY_BYTES,
  type ClientOptions,
  type ResolvedClientOptions,
  type AppBusyPolicy,
} from './options.js';
export {
  exponentialBackoff,
  DEFAULT_INITIAL_DELAY_MS,
  DEFAULT_MAX_DELAY_MS,
  DEFAULT_BACKOFF_FACTOR,
  DEFAULT_JITTER,
  type ReconnectPolicy,
  type BackoffOptions,
} from './reconnect-policy.js';
export {
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_WORKER_HOLDER_TTL_MS,
  DEFAULT_READ_BATCH,
  DEFAULT_MAX_OUTSTANDING,
  DEFAULT_RELEASE_TIMEOUT_MS,
  DEFAULT_WORKER_MAX_STREAM_ENTRIES,
  type ClusterWorkerOptions,
  type ClusterWorkerStats,
} from './cluster/worker-options.js';
