/**
 * The options of a cluster holder (`imi-server --redis …`), their defaults
 * and their checks.
 *
 * @module
 */
import { hostname } from 'node:os';
import { DEFAULT_CLUSTER_PARTITIONS, ImiError, clusterInteger as integer } from '@imi/core';

/** Default {@link ClusterHolderOptions.holderTtlMs}: a holder silent this long (5 s) is declared lost. */
export const DEFAULT_HOLDER_TTL_MS = 5_000;
/**
 * Default {@link ClusterHolderOptions.maxStreamEntries}: 100,000 entries per
 * partition stream (`XADD … MAXLEN ~`). Past it the oldest entries go, as
 * `maxQueuedLinesPerSession` drops the oldest lines of a single
 * intermediary. (A holder's output stream is bounded by the workers'
 * `maxStreamEntries`; each of its entries holds up to 16 KiB of frames.)
 */
export const DEFAULT_MAX_STREAM_ENTRIES = 100_000;
/** Default {@link ClusterHolderOptions.outputBatch}: entries read from the output streams per `XREAD` (512). */
export const DEFAULT_OUTPUT_BATCH = 512;

/** What a holder needs to know. */
export interface ClusterHolderOptions {
  /** The Redis URL, e.g. `redis://127.0.0.1:6390` (`--redis`). */
  redis: string;
  /** This holder's id, unique in the cluster (`--holder-id`). Default `<hostname>-<pid>`. */
  holderId?: string;
  /** Partitions users are spread over (`--cluster-partitions`); every holder and worker must agree. Default {@link DEFAULT_CLUSTER_PARTITIONS}. */
  partitions?: number;
  /** Ms after its last heartbeat a holder is declared lost (`--holder-ttl-ms`). Default {@link DEFAULT_HOLDER_TTL_MS}. */
  holderTtlMs?: number;
  /** Bound of each stream this holder adds to, in entries. Default {@link DEFAULT_MAX_STREAM_ENTRIES}. */
  maxStreamEntries?: number;
  /** Entries read per `XREAD` of the output streams. Default {@link DEFAULT_OUTPUT_BATCH}. */
  outputBatch?: number;
}

/** {@link ClusterHolderOptions} with the defaults applied. */
export interface ResolvedClusterHolderOptions {
  /** See {@link ClusterHolderOptions.redis}. */
  readonly redis: string;
  /** See {@link ClusterHolderOptions.holderId}. */
  readonly holderId: string;
  /** See {@link ClusterHolderOptions.partitions}. */
  readonly partitions: number;
  /** See {@link ClusterHolderOptions.holderTtlMs}. */
  readonly holderTtlMs: number;
  /** See {@link ClusterHolderOptions.maxStreamEntries}. */
  readonly maxStreamEntries: number;
  /** See {@link ClusterHolderOptions.outputBatch}. */
  readonly outputBatch: number;
}

/**
 * Applies the defaults and checks every option.
 *
 * @param options - what was given
 * @returns the options in force
 * @throws ImiError `IMI_CONFIG` when one is impossible
 */
export function resolveClusterHolderOptions(options: ClusterHolderOptions): ResolvedClusterHolderOptions {
  if (typeof options.redis !== 'string' || !/^rediss?:\/\//.test(options.redis)) {
    throw new ImiError('IMI_CONFIG', `redis must be a redis:// or rediss:// URL, got ${JSON.stringify(options.redis)}`);
  }
  const holderId = options.holderId ?? `${hostname()}-${process.pid}`;
  // The id is part of key names: keep it to characters that need no quoting anywhere.
  if (typeof holderId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(holderId)) {
    throw new ImiError('IMI_CONFIG', `holderId must be 1-64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(holderId)}`);
  }
  return {
    redis: options.redis,
    holderId,
    partitions: integer('partitions', options.partitions ?? DEFAULT_CLUSTER_PARTITIONS, 1, 4096),
    holderTtlMs: integer('holderTtlMs', options.holderTtlMs ?? DEFAULT_HOLDER_TTL_MS, 300, 600_000),
    maxStreamEntries: integer('maxStreamEntries', options.maxStreamEntries ?? DEFAULT_MAX_STREAM_ENTRIES, 100, 100_000_000),
    outputBatch: integer('outputBatch', options.outputBatch ?? DEFAULT_OUTPUT_BATCH, 1, 100_000),
  };
}
