/**
 * Cluster mode, the worker side (`new Client({ redis })`): composes the
 * gateway the `Client` links to (gateway.ts), the partitions it serves
 * (partitions.ts), and the commits to Redis.
 *
 * Commits are sent in order and numbered: a commit that got no reply (Redis
 * went away) is sent again once Redis is back, and the commit script skips a
 * number it already applied, so a reply is never doubled nor dropped by an
 * outage.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { ImiError, clusterKeys } from '@imi/core';
import { Gateway } from './gateway.js';
import { Partitions } from './partitions.js';
import { resolveClusterWorkerOptions, type ClusterWorkerStats, type ClusterWorkerOptions, type CommitOp, type ResolvedClusterWorkerOptions } from './worker-options.js';
import { commitArgs, defineWorkerScripts, runWorkerScript } from './worker-scripts.js';

/**
 * Commits waiting for Redis (1,000) before the gateway stops reading the
 * app: past it, the app's `send()` meets its own `maxOutgoingBytes` bound.
 */
const MAX_PENDING_COMMITS = 1_000;

interface PendingCommit {
  readonly n: number;
  readonly ops: CommitOp[];
  /** The script's arguments after the group and the number (kept to send it again after an outage). */
  readonly args: string[];
}

/** One worker: a gateway for the app and the partitions it serves. */
export class ClusterWorker {
  /** The options in force. */
  readonly options: ResolvedClusterWorkerOptions;
  private readonly cmd: Redis;
  private readonly reader: Redis;
  private readonly gateway: Gateway;
  private readonly partitions: Partitions;
  private readonly commits: PendingCommit[] = [];
  private commitNumber = 0;
  /** Worker id and a random suffix: this process's consumer group, and the name of its commit counter. */
  private readonly instance: string;
  private redisUp = false;
  private downReported = false;
  private stopped = false;

  /**
   * @param redis - the Redis URL
   * @param options - the cluster knobs
   * @param report - where problems go (the client's `error` event)
   * @throws ImiError `IMI_CONFIG` when an option is impossible
   */
  constructor(
    redis: string,
    options: ClusterWorkerOptions | undefined,
    private readonly report: (error: ImiError) => void,
  ) {
    this.options = resolveClusterWorkerOptions(redis, options);
    // Required here, not imported: an app that is not a cluster worker never loads ioredis (its
    // command table alone cost about 140 ms of an app's start-up on a 2 GHz Xeon).
    const { Redis: RedisClient } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
    const common = { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: (attempt: number) => Math.min(50 * attempt, 1_000) };
    this.cmd = new RedisClient(redis, { ...common, connectionName: `imi-worker-${this.options.workerId}` });
    this.reader = new RedisClient(redis, { ...common, connectionName: `imi-worker-${this.options.workerId}-reader` });
    defineWorkerScripts(this.cmd);
    defineWorkerScripts(this.reader);
    this.cmd.on('error', () => {});
    this.reader.on('error', () => {});
    this.gateway = new Gateway(
      {
        session: (id) => this.partitions.sessions.get(id),
        onAppUp: () => this.partitions.start(),
        onAppDown: () => void this.partitions.stop(),
        commit: (ops) => this.commit(ops),
        onReleased: () => {}, // a hand-over (partitions.ts release) polls what is outstanding
      },
      report,
    );
    // Its consumer group and commit counter are this process's own: another process with the same
    // worker id (a restart) starts afresh, and a stale one cannot read or commit in its place.
    this.instance = `${this.options.workerId}.${randomUUID().slice(0, 8)}`;
    this.partitions = new Partitions(this.options, this.cmd, this.reader, this.gateway, report, this.instance);
    this.cmd.on('ready', () => this.onReady());
    this.cmd.on('close', () => {
      if (!this.redisUp || this.stopped) return;
      this.redisUp = false;
      if (!this.downReported) {
        this.downReported = true;
        report(new ImiError('IMI_REDIS_DOWN', `Redis at ${this.options.redis} is unreachable: the worker waits for it`));
      }
    });
  }

  /** The worker's counters (a copy). */
  stats(): ClusterWorkerStats {
    return { ...this.partitions.counters };
  }

  /** The partitions this worker holds now. */
  get partitionsHeld(): number[] {
    return this.partitions.held;
  }

  /**
   * Connects to Redis.
   *
   * @throws ImiError `IMI_CONFIG` when the cluster has another partition count
   */
  async start(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.reader.connect()]).catch((error: unknown) => {
      this.report(new ImiError('IMI_REDIS_DOWN', `Redis at ${this.options.redis} is unreachable at start: ${(error as Error).message}; retrying`, { cause: error }));
    });
    if (this.redisUp) await this.checkPartitions();
  }

  /**
   * A connection to the gateway, for the `Client`'s link (in process).
   *
   * @returns the `Client`'s end
   */
  connect(): Socket {
    return this.gateway.connect();
  }

  private onReady(): void {
    this.redisUp = true;
    this.downReported = false;
    this.partitions.redisReady();
    void this.checkPartitions().catch((error: unknown) => this.report(error as ImiError));
    // Commits that got no reply go again, in order (the script skips applied ones).
    for (const commit of this.commits) this.send(commit);
  }

  private async checkPartitions(): Promise<void> {
    await this.cmd.hsetnx(clusterKeys.config, 'partitions', this.options.partitions);
    const agreed = Number(await this.cmd.hget(clusterKeys.config, 'partitions'));
    if (agreed !== this.options.partitions) {
      throw new ImiError('IMI_CONFIG', `this worker has ${this.options.partitions} partitions but the cluster at ${this.options.redis} has ${agreed}: every holder and worker must use the same count`);
    }
  }

  private commit(ops: CommitOp[]): void {
    const commit: PendingCommit = { n: ++this.commitNumber, ops, args: commitArgs(ops, this.options.maxStreamEntries) };
    this.commits.push(commit);
    if (this.commits.length === MAX_PENDING_COMMITS) this.gateway.setPaused(true);
    if (this.redisUp) this.send(commit);
  }

  private send(commit: PendingCommit): void {
    const key = `imi:worker:${this.instance}:commit`;
    runWorkerScript(this.cmd, 'imiCommit', [key], [this.instance, commit.n, commit.args]).then(
      (skipped) => {
        this.settle(commit);
        const counters = this.partitions.counters;
        if (skipped === -1) return; // applied before (sent again after an outage)
        counters.commits++;
        counters.opsFenced += skipped;
        // The script counts fenced ops but does not name them: these counts include them (see opsFenced).
        for (const op of commit.ops) {
          if (op.k === 'a') counters.eventsAcked++;
          else if (op.k === 'o' || op.k === 'b') counters.framesPublished++;
        }
        if (skipped > 0) this.partitions.noteSkipped(commit.ops);
      },
      (error: Error) => {
        this.partitions.counters.redisErrors++;
        // A script error will not heal: drop it. A connection error: kept, sent again on 'ready'.
        if (error.name === 'ReplyError' && !/LOADING|BUSY|MASTERDOWN|READONLY/.test(error.message)) {
          this.settle(commit);
          this.report(new ImiError('IMI_REDIS_DOWN', `Redis refused a commit: ${error.message}`, { cause: error }));
        }
      },
    );
  }

  private settle(commit: PendingCommit): void {
    const at = this.commits.indexOf(commit);
    if (at !== -1) this.commits.splice(at, 1);
    if (this.commits.length === MAX_PENDING_COMMITS - 1) this.gateway.setPaused(false);
  }

  /** Gives every lease back, closes the gateway and Redis. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Last commits (replies of handlers that finished while closing) land before the leases go.
    const deadline = Date.now() + 1_000;
    while (this.commits.length > 0 && this.redisUp && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.partitions.stop();
    this.gateway.close();
    this.reader.disconnect();
    await this.cmd.quit().catch(() => {});
  }
}
