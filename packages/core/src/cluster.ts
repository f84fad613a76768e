/**
 * Cluster mode's shared vocabulary: the Redis keys and streams that holders
 * (intermediaries that keep users' sockets) and workers (apps on
 * `@imi/client`) both use, and the partition of a session. Both sides must
 * agree on every name here, so it lives in the package they share. See
 * docs/cluster.md for what each key holds and who writes it.
 *
 * @module
 */
import { ImiError } from './errors.js';

/** Default number of partitions users are spread over: each is served by one worker at a time. */
export const DEFAULT_CLUSTER_PARTITIONS = 64;

/** The Redis keys of cluster mode, all under the `imi:` prefix (one Redis per cluster). */
export const clusterKeys = {
  /** Hash: `partitions`, the partition count every holder and worker must agree on. */
  config: 'imi:config',
  /** Sorted set: holder id → the time (Redis `TIME`, ms) its heartbeat runs out. */
  holders: 'imi:holders',
  /** Sorted set: worker id → the time (ms) its heartbeat runs out. */
  workers: 'imi:workers',
  /** Stream every holder reads: `broadcast` frames. */
  broadcast: 'imi:bcast',
  /**
   * Set: ids of the sessions whose socket a holder has.
   *
   * @param holder - the holder id
   * @returns the key
   */
  holderSessions: (holder: string): string => `imi:holder:${holder}:sessions`,
  /**
   * Stream: frames for the users of one holder (`output`, `disconnect`, `state`, `telnet`, `gmcp`).
   *
   * @param holder - the holder id
   * @returns the key
   */
  holderOutput: (holder: string): string => `imi:out:${holder}`,
  /**
   * String, set when a holder was declared lost (its users were announced
   * gone with reason `holder-lost`): if that holder was only paused, its next
   * heartbeat finds it and closes those users' sockets.
   *
   * @param holder - the holder id
   * @returns the key
   */
  holderReaped: (holder: string): string => `imi:holder:${holder}:reaped`,
  /**
   * Hash: one session (`holder`, `part`, `data` JSON, `state` JSON, `telnet` JSON, `inN`, `ann`).
   *
   * @param id - the session id
   * @returns the key
   */
  session: (id: string): string => `imi:session:${id}`,
  /**
   * Stream: the events (`connect`, `input`, `disconnect`, `frame`) of one partition's users, in order.
   *
   * @param part - the partition number
   * @returns the key
   */
  partition: (part: number): string => `imi:part:${part}`,
  /**
   * Set: the session ids of a partition.
   *
   * @param part - the partition number
   * @returns the key
   */
  partitionSessions: (part: number): string => `imi:part:${part}:sessions`,
  /**
   * String: the highest stream id any worker's consumer group delivered from a partition (kept by the takeover
   * script): entries up to it that are still in the stream were read and not acked, so they come `redelivered`.
   *
   * @param part - the partition number
   * @returns the key
   */
  partitionDelivered: (part: number): string => `imi:part:${part}:delivered`,
  /**
   * String: the lease token of the worker process holding a partition (set with `NX PX`).
   *
   * @param part - the partition number
   * @returns the key
   */
  lease: (part: number): string => `imi:lease:${part}`,
} as const;

/**
 * The partition of a session: FNV-1a (32 bits) of its id, modulo the
 * partition count. Stable across processes and versions: changing it would
 * move live users between partitions.
 *
 * @param sessionId - the session id
 * @param partitions - the partition count
 * @returns a partition number in `[0, partitions)`
 */
export function partitionOf(sessionId: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sessionId.length; i++) {
    hash ^= sessionId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

/**
 * Checks one whole-number option of cluster mode (a holder's or a worker's).
 *
 * @param name - the option as the user spells it (`partitions`, `cluster.leaseTtlMs`), for the message
 * @param value - what was given
 * @param min - the smallest allowed value
 * @param max - the largest allowed value
 * @returns the value
 * @throws ImiError `IMI_CONFIG` naming the option and its range when it is not an integer from `min` to `max`
 */
export function clusterInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ImiError('IMI_CONFIG', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}
