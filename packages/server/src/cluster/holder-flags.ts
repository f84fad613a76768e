/**
 * The `imi-server` flags of cluster mode (`--redis` and friends), kept
 * apart from the intermediary's options: they configure the holder bridge,
 * not the intermediary.
 *
 * @module
 */
import { ImiError } from '@imi/core';
import type { ClusterHolderOptions } from './holder-options.js';

export type { ClusterHolderOptions } from './holder-options.js';

/** The flags, as `node:util` `parseArgs` wants them. */
export const CLUSTER_FLAGS = {
  redis: { type: 'string' },
  'holder-id': { type: 'string' },
  'cluster-partitions': { type: 'string' },
  'holder-ttl-ms': { type: 'string' },
  'max-stream-entries': { type: 'string' },
} as const;

/** Their lines in `imi-server --help`. */
export const CLUSTER_USAGE: readonly string[] = [
  '',
  'Cluster mode (docs/cluster.md): this intermediary becomes a holder; apps are workers on Redis Streams:',
  '  --redis <url>               redis://host:port; without it nothing changes (one app, in memory)',
  '  --holder-id <id>            unique per holder (default <hostname>-<pid>)',
  '  --cluster-partitions <n>    partitions users are spread over, the same everywhere (default 64)',
  '  --holder-ttl-ms <ms>        a holder silent this long is declared lost (default 5000)',
  '  --max-stream-entries <n>    bound of each stream this holder adds to (default 100000)',
];

function count(flag: string, raw: string | boolean | undefined): number | undefined {
  if (typeof raw !== 'string') return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value)) throw new ImiError('IMI_CONFIG', `--${flag} must be an integer, got ${JSON.stringify(raw)}`);
  return value;
}

/**
 * The holder's options from the parsed flags.
 *
 * @param values - `parseArgs` values
 * @returns the options, or `undefined` without `--redis` (single-node mode)
 * @throws ImiError `IMI_CONFIG` when a cluster flag is given without `--redis`, or is not a number
 */
export function clusterFromFlags(values: Record<string, string | boolean | undefined>): ClusterHolderOptions | undefined {
  const redis = values['redis'];
  if (typeof redis !== 'string') {
    const stray = Object.keys(CLUSTER_FLAGS).find((flag) => flag !== 'redis' && values[flag] !== undefined);
    if (stray !== undefined) throw new ImiError('IMI_CONFIG', `--${stray} is for cluster mode: give --redis <url> too`);
    return undefined;
  }
  const options: ClusterHolderOptions = { redis };
  const holderId = values['holder-id'];
  if (typeof holderId === 'string') options.holderId = holderId;
  const partitions = count('cluster-partitions', values['cluster-partitions']);
  if (partitions !== undefined) options.partitions = partitions;
  const ttl = count('holder-ttl-ms', values['holder-ttl-ms']);
  if (ttl !== undefined) options.holderTtlMs = ttl;
  const entries = count('max-stream-entries', values['max-stream-entries']);
  if (entries !== undefined) options.maxStreamEntries = entries;
  return options;
}
