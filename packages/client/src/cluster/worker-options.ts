/**
 * The options of a cluster worker (`new Client({ redis })`), their defaults
 * and their checks, and the small types the worker's parts share.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { DEFAULT_CLUSTER_PARTITIONS, ImiError, clusterInteger, type JsonObject } from '@imi/core';

/** Default {@link ClusterWorkerOptions.leaseTtlMs}: a partition's lease lasts 5 s unless renewed (every third of it). */
export const DEFAULT_LEASE_TTL_MS = 5_000;
/** Default {@link ClusterWorkerOptions.holderTtlMs}: as the holders' `--holder-ttl-ms` (5 s). */
export const DEFAULT_WORKER_HOLDER_TTL_MS = 5_000;
/** Default {@link ClusterWorkerOptions.readBatch}: entries per `XREADGROUP` (256). */
export const DEFAULT_READ_BATCH = 256;
/** Default {@link ClusterWorkerOptions.maxOutstanding}: events handed to the app and not acked before reading pauses (4,096). */
export const DEFAULT_MAX_OUTSTANDING = 4_096;
/** Default {@link ClusterWorkerOptions.releaseTimeoutMs}: how long a partition being handed over waits for its events to be acked (2 s). */
export const DEFAULT_RELEASE_TIMEOUT_MS = 2_000;
/** Default {@link ClusterWorkerOptions.maxStreamEntries}: bound of the output streams a worker adds to (100,000 entries, each one commit's frames for one holder: at most 16 KiB of them, or one larger frame). */
export const DEFAULT_WORKER_MAX_STREAM_ENTRIES = 100_000;

/** Cluster mode's knobs of a worker; every one has a default. */
export interface ClusterWorkerOptions {
  /** This worker's id, its consumer name in the partitions' consumer group. Default `<hostname>-<pid>-<random>`. */
  workerId?: string;
  /** Partitions users are spread over; the same as the holders'. Default {@link DEFAULT_CLUSTER_PARTITIONS}. */
  partitions?: number;
  /** Lease of a partition, in ms. Default {@link DEFAULT_LEASE_TTL_MS}. */
  leaseTtlMs?: number;
  /** The holders' TTL, in ms: how long a silent holder lives before its users are declared gone. Default {@link DEFAULT_WORKER_HOLDER_TTL_MS}. */
  holderTtlMs?: number;
  /** Entries read per `XREADGROUP`. Default {@link DEFAULT_READ_BATCH}. */
  readBatch?: number;
  /** Events given to the app and not yet acked before reading pauses. Default {@link DEFAULT_MAX_OUTSTANDING}. */
  maxOutstanding?: number;
  /**
   * Ms a partition being handed over waits for its events to be acked before it is given back anyway: the next owner answers
   * what is still unacked, and this worker does not take that partition again until its app has acked them. Default
   * {@link DEFAULT_RELEASE_TIMEOUT_MS}.
   */
  releaseTimeoutMs?: number;
  /** Bound of the output streams this worker adds to, in entries (each at most 16 KiB of frames, or one larger frame). Default {@link DEFAULT_WORKER_MAX_STREAM_ENTRIES}. */
  maxStreamEntries?: number;
}

/** {@link ClusterWorkerOptions} with the defaults applied, and the Redis URL. */
export interface ResolvedClusterWorkerOptions {
  /** The Redis URL. */
  readonly redis: string;
  /** See {@link ClusterWorkerOptions.workerId}. */
  readonly workerId: string;
  /** See {@link ClusterWorkerOptions.partitions}. */
  readonly partitions: number;
  /** See {@link ClusterWorkerOptions.leaseTtlMs}. */
  readonly leaseTtlMs: number;
  /** See {@link ClusterWorkerOptions.holderTtlMs}. */
  readonly holderTtlMs: number;
  /** See {@link ClusterWorkerOptions.readBatch}. */
  readonly readBatch: number;
  /** See {@link ClusterWorkerOptions.maxOutstanding}. */
  readonly maxOutstanding: number;
  /** See {@link ClusterWorkerOptions.releaseTimeoutMs}. */
  readonly releaseTimeoutMs: number;
  /** See {@link ClusterWorkerOptions.maxStreamEntries}. */
  readonly maxStreamEntries: number;
}

/** Worker options are spelled `cluster.<name>` (they sit under the client's `cluster` option). */
function integer(name: string, value: unknown, min: number, max: number): number {
  return clusterInteger(`cluster.${name}`, value, min, max);
}

/**
 * Applies the defaults and checks every option.
 *
 * @param redis - the Redis URL
 * @param options - the cluster knobs given
 * @returns the options in force
 * @throws ImiError `IMI_CONFIG` when one is impossible
 */
export function resolveClusterWorkerOptions(redis: string, options: ClusterWorkerOptions = {}): ResolvedClusterWorkerOptions {
  if (typeof redis !== 'string' || !/^rediss?:\/\//.test(redis)) throw new ImiError('IMI_CONFIG', `redis must be a redis:// or rediss:// URL, got ${JSON.stringify(redis)}`);
  const workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  if (typeof workerId !== 'string' || !/^[A-Za-z0-9._-]{1,80}$/.test(workerId)) {
    throw new ImiError('IMI_CONFIG', `cluster.workerId must be 1-80 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(workerId)}`);
  }
  return {
    redis,
    workerId,
    partitions: integer('partitions', options.partitions ?? DEFAULT_CLUSTER_PARTITIONS, 1, 4096),
    leaseTtlMs: integer('leaseTtlMs', options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS, 300, 600_000),
    holderTtlMs: integer('holderTtlMs', options.holderTtlMs ?? DEFAULT_WORKER_HOLDER_TTL_MS, 300, 600_000),
    readBatch: integer('readBatch', options.readBatch ?? DEFAULT_READ_BATCH, 1, 100_000),
    maxOutstanding: integer('maxOutstanding', options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING, 1, 10_000_000),
    releaseTimeoutMs: integer('releaseTimeoutMs', options.releaseTimeoutMs ?? DEFAULT_RELEASE_TIMEOUT_MS, 0, 600_000),
    maxStreamEntries: integer('maxStreamEntries', options.maxStreamEntries ?? DEFAULT_WORKER_MAX_STREAM_ENTRIES, 100, 100_000_000),
  };
}

/** A user this worker serves: where their socket is, and the state stored for them. */
export interface WorkerSession {
  /** The partition. */
  readonly part: number;
  /** The holder with the socket: output goes to its stream. */
  readonly holder: string;
  /** The lease token of the partition when this worker took it: what it sends is fenced with it. */
  readonly token: string;
  /** The state (`updates` merged), written whole to the session hash on change. */
  state: JsonObject;
}

/** What acking an event does in Redis: `XACK` its entry, and mark or end the session. */
export interface EventMeta {
  /** The partition. */
  readonly part: number;
  /** The lease token the event was read under: its ack is fenced with it. */
  readonly token: string;
  /** The stream entry id, when the event came from one (not a resumed `connect` nor a `moved` disconnect). */
  readonly entry?: string;
  /** A `connect` entry: the session is then announced (a later takeover sends `connect` `resumed: true`). */
  readonly announced?: string;
  /** A `disconnect` entry: the session hash and its partition set membership go. */
  readonly gone?: string;
}

/**
 * One write to Redis, run by the commit script (worker-scripts.ts): `p` and
 * `t` are the partition and the lease token it is fenced with (the op is
 * skipped unless the lease still holds that token).
 */
export type CommitOp =
  | { k: 'o'; p: number; t: string; h: string; f: string }
  | { k: 'b'; f: string }
  | { k: 's'; p: number; t: string; id: string; s: string }
  | { k: 'a'; p: number; t: string; e: string; c?: string; g?: string };

/**
 * Counters of a cluster worker since it started (`Client.clusterStats`).
 * Every field counts up; none is ever reset.
 */
export interface ClusterWorkerStats {
  /** `XREADGROUP` calls (each reads every partition held, waiting at most 200 ms for entries). */
  reads: number;
  /** Reads that came back empty (their 200 ms wait ran out, or a takeover cut it short to read the new partition too). */
  wakeups: number;
  /** Stream entries read with `XREADGROUP` and handed on (not those of a partition let go meanwhile). */
  eventsRead: number;
  /** Of those, entries a predecessor's consumer group had read and not acked, read again after taking their partition. */
  eventsClaimed: number;
  /** Inputs handed to the app with `redelivered: true` (another process may have handled them). */
  eventsRedelivered: number;
  /** Entry acks (`XACK` + `XDEL`) in commits Redis applied (including any the fence skipped: see {@link opsFenced}). */
  eventsAcked: number;
  /** Output frames (replies, kicks, state, telnet, gmcp) and broadcasts in commits Redis applied (including any the fence skipped). */
  framesPublished: number;
  /** Commit scripts Redis applied. */
  commits: number;
  /** Commit ops skipped by the fence (their partition's lease had moved on). */
  opsFenced: number;
  /** Partitions taken (lease gained). */
  leasesGained: number;
  /** Partitions lost (lease expired or taken by another worker). */
  leasesLost: number;
  /** Partitions given back (not this worker's share any more, or stopping). */
  leasesReleased: number;
  /** Redis commands that failed (reads, commits, heartbeats, takeovers). */
  redisErrors: number;
}

/**
 * A zeroed {@link ClusterWorkerStats}.
 *
 * @returns the counters, all 0
 */
export function newWorkerStats(): ClusterWorkerStats {
  return { reads: 0, wakeups: 0, eventsRead: 0, eventsClaimed: 0, eventsRedelivered: 0, eventsAcked: 0, framesPublished: 0, commits: 0, opsFenced: 0, leasesGained: 0, leasesLost: 0, leasesReleased: 0, redisErrors: 0 };
}
