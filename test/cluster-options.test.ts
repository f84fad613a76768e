// Cluster mode without Redis: the options' checks and defaults, the
// partition function (stable: changing it would move live users), the CLI
// flags, and the docs listing every option with its default.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CLUSTER_PARTITIONS, ImiError, clusterInteger, clusterKeys, partitionOf } from '@imi/core';
import { DEFAULT_HOLDER_TTL_MS, DEFAULT_MAX_STREAM_ENTRIES, resolveClusterHolderOptions } from '@imi/server';
import { Client, DEFAULT_LEASE_TTL_MS, DEFAULT_MAX_OUTSTANDING, DEFAULT_READ_BATCH, DEFAULT_RELEASE_TIMEOUT_MS } from '@imi/client';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = `${root}packages/server/dist/cli.js`;

function configError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ImiError);
    expect((error as ImiError).code).toBe('IMI_CONFIG');
    return (error as Error).message;
  }
  throw new Error('no IMI_CONFIG');
}

describe('cluster mode options', () => {
  it('one integer check for holder and worker options (clusterInteger): IMI_CONFIG naming the option and its range', () => {
    expect(clusterInteger('partitions', 64, 1, 4096)).toBe(64);
    expect(configError(() => clusterInteger('partitions', 4097, 1, 4096))).toBe('partitions must be an integer from 1 to 4096, got 4097');
    expect(configError(() => clusterInteger('cluster.readBatch', null, 1, 10))).toBe('cluster.readBatch must be an integer from 1 to 10, got null');
  });

  it('the partition of a session is FNV-1a modulo the count, the same for everyone', () => {
    expect(partitionOf('', 64)).toBe(0x811c9dc5 % 64);
    expect(partitionOf('8d1e5f0c-0000-4000-8000-000000000000', 64)).toBe(partitionOf('8d1e5f0c-0000-4000-8000-000000000000', 64));
    const counts = new Array(8).fill(0) as number[];
    for (let i = 0; i < 8_000; i++) counts[partitionOf(`session-${i}`, 8)]!++;
    for (const count of counts) expect(count).toBeGreaterThan(800);
    expect(clusterKeys.partition(3)).toBe('imi:part:3');
    expect(clusterKeys.lease(3)).toBe('imi:lease:3');
  });

  it('holder options: defaults, and IMI_CONFIG for impossible ones', () => {
    const resolved = resolveClusterHolderOptions({ redis: 'redis://127.0.0.1:1', holderId: 'h1' });
    expect(resolved).toMatchObject({ partitions: DEFAULT_CLUSTER_PARTITIONS, holderTtlMs: DEFAULT_HOLDER_TTL_MS, maxStreamEntries: DEFAULT_MAX_STREAM_ENTRIES });
    expect(resolveClusterHolderOptions({ redis: 'redis://x:1' }).holderId).toMatch(/-\d+$/);
    expect(configError(() => resolveClusterHolderOptions({ redis: 'http://x' }))).toMatch(/redis:\/\//);
    expect(configError(() => resolveClusterHolderOptions({ redis: 'redis://x:1', holderId: 'a b' }))).toMatch(/holderId/);
    expect(configError(() => resolveClusterHolderOptions({ redis: 'redis://x:1', partitions: 0 }))).toMatch(/partitions/);
    expect(configError(() => resolveClusterHolderOptions({ redis: 'redis://x:1', holderTtlMs: 1.5 }))).toBe('holderTtlMs must be an integer from 300 to 600000, got 1.5');
  });

  it('worker options are checked when the Client is made', () => {
    expect(configError(() => new Client({ redis: 'localhost:6390' }))).toMatch(/redis:\/\//);
    expect(configError(() => new Client({ redis: 'redis://127.0.0.1:1', cluster: { leaseTtlMs: 10 } }))).toMatch(/leaseTtlMs/);
    expect(configError(() => new Client({ redis: 'redis://127.0.0.1:1', cluster: { partitions: '8' as unknown as number } }))).toBe('cluster.partitions must be an integer from 1 to 4096, got "8"');
    expect(configError(() => new Client({ redis: 'redis://127.0.0.1:1', cluster: { workerId: 'no spaces' } }))).toMatch(/workerId/);
  });

  it('imi-server refuses a cluster flag without --redis, and lists the flags in --help', () => {
    const refused = spawnSync(process.execPath, [cli, '--holder-id', 'h1'], { encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('--holder-id is for cluster mode: give --redis <url> too');
    const badNumber = spawnSync(process.execPath, [cli, '--redis', 'redis://127.0.0.1:1', '--cluster-partitions', 'many'], { encoding: 'utf8' });
    expect(badNumber.status).toBe(2);
    const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' }).stdout;
    for (const flag of ['--redis', '--holder-id', '--cluster-partitions', '--holder-ttl-ms', '--max-stream-entries']) expect(help).toContain(flag);
  });

  it('docs/cluster.md and docs/operations.md give every option with its default', () => {
    const cluster = readFileSync(`${root}docs/cluster.md`, 'utf8');
    const operations = readFileSync(`${root}docs/operations.md`, 'utf8');
    for (const [flag, value] of [['--cluster-partitions', DEFAULT_CLUSTER_PARTITIONS], ['--holder-ttl-ms', DEFAULT_HOLDER_TTL_MS], ['--max-stream-entries', DEFAULT_MAX_STREAM_ENTRIES]] as const) {
      for (const doc of [cluster, operations]) expect(doc).toMatch(new RegExp(`\`${flag}\`[^\\n]*\`${value}\``));
    }
    for (const [name, value] of [['leaseTtlMs', DEFAULT_LEASE_TTL_MS], ['readBatch', DEFAULT_READ_BATCH], ['maxOutstanding', DEFAULT_MAX_OUTSTANDING], ['releaseTimeoutMs', DEFAULT_RELEASE_TIMEOUT_MS]] as const) {
      expect(cluster).toMatch(new RegExp(`\`cluster\\.${name}\`[^\\n]*\`${value}\``));
    }
  });
});
