/**
 * Cluster mode, the holder side: an intermediary whose users' events go to
 * Redis Streams instead of one app, and whose output comes from Redis.
 *
 * The holder is the intermediary plus this bridge, which connects to the
 * intermediary's own app port as an app (holder-link.ts) and relays:
 * `connect`/`input`/`disconnect`/`telnet`/`gmcp` go to the user's partition
 * stream (idempotent Lua scripts, holder-scripts.ts) and are acked to the
 * intermediary once Redis has them; the frames workers write for this
 * holder's users (its output stream) and broadcasts are written to the
 * intermediary. A heartbeat keeps the holder in the holders sorted set, so
 * workers can tell when it is lost. docs/cluster.md has the whole design.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ImiError, clusterKeys, encodeFrame, partitionOf, type IntermediaryMessage } from '@imi/core';
import { HolderLink } from './holder-link.js';
import { resolveClusterHolderOptions, type ClusterHolderOptions, type ResolvedClusterHolderOptions } from './holder-options.js';
import { defineHolderScripts, runHolderScript } from './holder-scripts.js';

/** What the holder wrote to a user whose holder had been declared lost (it was only paused): they must reconnect. */
const HOLDER_LOST_FAREWELL = '*** Lost contact with the cluster; please reconnect. ***\r\n';

/** Events sent to Redis in one script call at most (512): more in one turn go in several, in order. */
const MAX_BATCH_EVENTS = 512;

/** The output stream's read entries are trimmed at least this often (50 ms) while output flows. */
const TRIM_EVERY_MS = 50;

/** Counters of a holder. */
export interface ClusterHolderStats {
  /** Events (connect, input, disconnect, telnet, gmcp) published: added to their partition stream. */
  events: number;
  /** Script calls that carried events to Redis (one per turn of the event loop with events, at most 512 events each). */
  batches: number;
  /** Frames read from Redis and relayed to users (outputs, broadcasts, kicks, state). */
  frames: number;
  /** `XREAD`s of the output and broadcast streams that returned entries. */
  outputReads: number;
  /** Times Redis became unreachable. */
  redisDown: number;
  /** Redis commands that failed (event batches, output reads, heartbeats). */
  redisErrors: number;
  /** Lines the intermediary sent again that Redis already had (skipped, not doubled). */
  duplicatesSkipped: number;
}

/** The bridge between one intermediary and the cluster's Redis. */
export class ClusterHolder {
  /** The options in force. */
  readonly options: ResolvedClusterHolderOptions;
  private readonly counters: ClusterHolderStats = { events: 0, batches: 0, frames: 0, outputReads: 0, redisDown: 0, redisErrors: 0, duplicatesSkipped: 0 };
  private readonly instance = randomUUID();
  private readonly cmd: Redis;
  private readonly reader: Redis;
  private link: HolderLink | undefined;
  private linkGeneration = 0;
  private linkFailed = false;
  private synced = false;
  private redisUp = false;
  private stopped = false;
  private beatTimer: NodeJS.Timeout | undefined;
  private relinkTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Sessions this holder announced, with the number of their last line (see holder-scripts.ts INPUT). */
  private readonly lineNumbers = new Map<string, number>();
  /**
   * Lines not yet acked to the intermediary, by txn id, with their number:
   * sent again (a reply or the ack was lost), they keep it and the INPUT
   * script skips them. Bounded by the intermediary's unacked bounds.
   */
  private readonly unconfirmed = new Map<string, number>();
  /** Stored lines in `seq` order, forgotten from {@link unconfirmed} once their ack is written. */
  private readonly storedLines: Array<{ seq: number; txn: string }> = [];
  /** Events waiting for this turn's batch (at most {@link MAX_BATCH_EVENTS}). */
  private batch: Array<{ generation: number; seq: number | undefined; fields: Array<string | number>; id: string }> = [];
  private batchScheduled = false;
  private lastOutput = '0-0';
  private untrimmed = 0;
  private trimmedAt = 0;
  private lastBroadcast: string | undefined;

  /**
   * @param options - Redis URL, holder id, partitions, TTL, bounds
   * @param intermediary - where the local intermediary's app port is, and its token
   * @param intermediary.host - the app port's host
   * @param intermediary.port - the app port
   * @param intermediary.token - the intermediary's token, if it has one
   * @param intermediary.connect - when given, the bridge links with it (`() => intermediary.connectApp()`: in process) instead of over TCP to host and port
   * @param logger - where problems are logged (once per outage)
   * @throws ImiError `IMI_CONFIG` when an option is impossible
   */
  constructor(
    options: ClusterHolderOptions,
    private readonly intermediary: { host: string; port: number; token: string | undefined; connect?: () => Socket },
    private readonly logger?: Logger,
  ) {
    this.options = resolveClusterHolderOptions(options);
    // Commands fail at once while Redis is away (no offline queue, no resend):
    // a line is acked to the intermediary only on a real reply.
    const common = { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: (attempt: number) => Math.min(50 * attempt, 1_000) };
    this.cmd = new Redis(this.options.redis, { ...common, connectionName: `imi-holder-${this.options.holderId}` });
    this.reader = new Redis(this.options.redis, { ...common, connectionName: `imi-holder-${this.options.holderId}-reader` });
    defineHolderScripts(this.cmd);
    this.cmd.on('error', () => {
      // 'close' reports it; ioredis retries.
    });
    this.reader.on('error', () => {});
    this.cmd.on('ready', () => void this.onRedisReady());
    this.cmd.on('close', () => this.onRedisLost());
  }

  /** The counters. */
  stats(): ClusterHolderStats {
    return { ...this.counters };
  }

  /** Starts: connects to Redis, then to the intermediary. Resolves once Redis answered the first time, or failed to. */
  async start(): Promise<void> {
    void this.pump();
    // Redis may be down at start: the holder serves users meanwhile (app-down mode) and ioredis keeps trying.
    await Promise.all([this.cmd.connect(), this.reader.connect()]).catch((error: unknown) => {
      this.report(new ImiError('IMI_REDIS_DOWN', `Redis at ${this.options.redis} is unreachable at start: ${(error as Error).message}; retrying`, { cause: error }));
    });
  }

  private async onRedisReady(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.checkPartitions();
      await this.beat();
      if (this.lastBroadcast === undefined) {
        const last = (await this.cmd.xrevrange(clusterKeys.broadcast, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
        this.lastBroadcast = last[0]?.[0] ?? '0-0';
      }
    } catch (error) {
      this.report(error instanceof ImiError ? error : new ImiError('IMI_REDIS_DOWN', `Redis refused the holder's start: ${(error as Error).message}`, { cause: error }));
      if (error instanceof ImiError && error.code === 'IMI_CONFIG') void this.stop();
      return;
    }
    if (!this.redisUp) {
      this.redisUp = true;
      this.downReported = false;
      if (this.counters.redisDown > 0) this.logger?.info({ holder: this.options.holderId }, 'Redis is back: relinking to the intermediary');
    }
    clearInterval(this.beatTimer);
    this.beatTimer = setInterval(() => void this.beat().catch(() => this.counters.redisErrors++), Math.max(100, Math.floor(this.options.holderTtlMs / 3))).unref();
    this.openLink();
  }

  private onRedisLost(): void {
    if (this.stopped || !this.redisUp) return;
    this.redisUp = false;
    this.counters.redisDown++;
    clearInterval(this.beatTimer);
    this.report(new ImiError('IMI_REDIS_DOWN', `Redis at ${this.options.redis} is unreachable: users stay connected, their input waits in the intermediary`));
    // The intermediary keeps what was not acked and tells users once.
    this.link?.close();
  }

  private async checkPartitions(): Promise<void> {
    await this.cmd.hsetnx(clusterKeys.config, 'partitions', this.options.partitions);
    const agreed = Number(await this.cmd.hget(clusterKeys.config, 'partitions'));
    if (agreed !== this.options.partitions) {
      throw new ImiError('IMI_CONFIG', `this holder has ${this.options.partitions} partitions but the cluster at ${this.options.redis} has ${agreed}: every holder and worker must use the same --cluster-partitions`);
    }
  }

  private async beat(): Promise<void> {
    const fine = await runHolderScript(this.cmd, 'imiHolderBeat', [clusterKeys.holders, clusterKeys.holderReaped(this.options.holderId)], [this.options.holderId, this.options.holderTtlMs]);
    if (fine === 0) {
      // Workers declared this holder lost (it was paused past holderTtlMs) and
      // told the app its users left: those sockets must not live on unknown.
      this.report(new ImiError('IMI_REDIS_DOWN', `holder ${this.options.holderId} was declared lost while paused; closing its ${this.lineNumbers.size} users`));
      let frames = '';
      for (const id of this.lineNumbers.keys()) frames += encodeFrame({ param: 'disconnect', data: { id, value: HOLDER_LOST_FAREWELL } });
      this.link?.write(frames);
    }
  }

  private openLink(): void {
    if (this.stopped || !this.redisUp || (this.link !== undefined && !this.link.isClosed)) return;
    const generation = ++this.linkGeneration;
    this.linkFailed = false;
    // What was not acked on the old link comes again on this one, and is listed again as it is stored.
    this.storedLines.length = 0;
    this.synced = false;
    const host = this.intermediary.host === '::' || this.intermediary.host === '0.0.0.0' ? '127.0.0.1' : this.intermediary.host;
    this.link = new HolderLink({ host, port: this.intermediary.port, connect: this.intermediary.connect }, { instance: this.instance, token: this.intermediary.token }, {
      onEvent: (message) => this.onEvent(generation, message),
      onSynced: () => {
        this.synced = true;
        this.wake?.();
      },
      onClosed: () => {
        this.synced = false;
        if (this.stopped || generation !== this.linkGeneration) return;
        clearTimeout(this.relinkTimer);
        this.relinkTimer = setTimeout(() => this.openLink(), 100).unref();
      },
      onProblem: (error) => this.report(error),
      onAckWritten: (seq) => {
        if (generation !== this.linkGeneration) return;
        let done = 0;
        while (done < this.storedLines.length && this.storedLines[done]!.seq <= seq) this.unconfirmed.delete(this.storedLines[done++]!.txn);
        this.storedLines.splice(0, done);
      },
    });
  }

  /** One event from the intermediary: queued for the next batch (this turn of the event loop), acked once Redis has it. */
  private onEvent(generation: number, message: IntermediaryMessage): void {
    const fields = this.eventFields(message);
    if (fields === undefined) return;
    const seq = (message as { seq?: number }).seq;
    if (message.param === 'input' && seq !== undefined) this.storedLines.push({ seq, txn: message.txn_id });
    this.batch.push({ generation, seq, fields, id: (message.data as { id: string }).id });
    if (this.batch.length >= MAX_BATCH_EVENTS) this.flushBatch();
    else if (!this.batchScheduled) {
      this.batchScheduled = true;
      setImmediate(() => this.flushBatch());
    }
  }

  /** Sends the queued events as one script call; acks them when Redis replied. */
  private flushBatch(): void {
    this.batchScheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const args: Array<string | number> = [this.options.maxStreamEntries, this.options.holderId];
    for (const event of batch) args.push(...event.fields);
    this.counters.batches++;
    runHolderScript<number[]>(this.cmd, 'imiEvents', [], args).then(
      (results) => {
        let seq: number | undefined;
        batch.forEach((event, i) => {
          const result = results[i];
          if (result === 1) this.counters.events++;
          else if (result === 0 && event.fields[0] === 'i') this.counters.duplicatesSkipped++;
          else if (result === -1) this.report(new ImiError('IMI_UNKNOWN_ID', `a line of session ${event.id} was dropped: Redis has no such session (it lost its data?)`, { sessionId: event.id }));
          if (event.seq !== undefined && event.generation === this.linkGeneration) seq = event.seq;
        });
        if (seq !== undefined && !this.linkFailed) this.link?.ack(seq);
      },
      (error: unknown) => {
        this.counters.redisErrors++;
        if (batch.every((event) => event.generation !== this.linkGeneration) || this.linkFailed) return;
        // Nothing after this is acked on this link: the intermediary sends it all again on the next one.
        this.linkFailed = true;
        this.report(new ImiError('IMI_REDIS_DOWN', `Redis did not take an event: ${(error as Error).message}`, { cause: error }));
        this.link?.close();
      },
    );
  }

  /** The batch script's fields of one event (holder-scripts.ts EVENTS), or undefined for what is not stored. */
  private eventFields(message: IntermediaryMessage): Array<string | number> | undefined {
    const { partitions } = this.options;
    switch (message.param) {
      case 'connect': {
        const { id, state, resumed: _resumed, ...data } = message.data;
        if (!this.lineNumbers.has(id)) this.lineNumbers.set(id, 0);
        return ['c', id, partitionOf(id, partitions), JSON.stringify(data), JSON.stringify(state), message.data.resumed === true ? 1 : 0, ''];
      }
      case 'input': {
        const { id, value } = message.data;
        const txn = message.txn_id;
        let n = this.unconfirmed.get(txn);
        if (n === undefined) {
          n = (this.lineNumbers.get(id) ?? 0) + 1;
          this.lineNumbers.set(id, n);
          this.unconfirmed.set(txn, n);
        }
        return ['i', id, partitionOf(id, partitions), n, value, txn, ''];
      }
      case 'disconnect': {
        const { id, reason } = message.data;
        this.lineNumbers.delete(id);
        return ['d', id, partitionOf(id, partitions), reason, '', '', ''];
      }
      case 'telnet':
      case 'gmcp': {
        const id = message.data.id;
        const { seq: _seq, ...frame } = message as IntermediaryMessage & { seq?: number };
        const telnet = message.param === 'telnet' ? JSON.stringify(message.data.telnet) : '';
        return ['f', id, partitionOf(id, partitions), JSON.stringify(frame), telnet, '', ''];
      }
      default:
        return undefined;
    }
  }

  /** Relays this holder's output stream and the broadcast stream to the intermediary while the link is synced. */
  private async pump(): Promise<void> {
    const { holderId, outputBatch } = this.options;
    const outKey = clusterKeys.holderOutput(holderId);
    while (!this.stopped) {
      const link = this.link;
      if (!this.synced || link === undefined || link.isClosed || this.lastBroadcast === undefined) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 200).unref();
        });
        continue;
      }
      let result: Array<[string, Array<[string, string[]]>]> | null;
      try {
        result = (await this.reader.xread('COUNT', outputBatch, 'BLOCK', 500, 'STREAMS', outKey, clusterKeys.broadcast, this.lastOutput, this.lastBroadcast)) as typeof result;
      } catch {
        this.counters.redisErrors++;
        await new Promise((resolve) => setTimeout(resolve, 200).unref());
        continue;
      }
      if (result === null || link.isClosed) continue;
      this.counters.outputReads++;
      let frames = '';
      let count = 0;
      let trimTo: string | undefined;
      for (const [key, entries] of result) {
        for (const [id, fields] of entries) {
          const frame = fields[1];
          if (fields[0] === 'f' && frame !== undefined) {
            // One entry may carry several frames, newline-separated (a worker joins one commit's replies).
            frames += frame + '\n';
            for (let at = frame.indexOf('\n'); at !== -1; at = frame.indexOf('\n', at + 1)) count++;
            count++;
          }
          if (key === outKey) trimTo = this.lastOutput = id;
          else this.lastBroadcast = id;
        }
      }
      this.counters.frames += count;
      if (!link.write(frames)) await new Promise<void>((resolve) => link.onDrain(resolve));
      // What was read is written: it need not stay in Redis (MINID keeps the last one, harmless).
      // Trimmed every TRIM_EVERY_MS or outputBatch frames, not per read: one command less per read under load.
      if (trimTo !== undefined) {
        this.untrimmed += count;
        const now = Date.now();
        if (this.untrimmed >= outputBatch || now - this.trimmedAt >= TRIM_EVERY_MS) {
          this.untrimmed = 0;
          this.trimmedAt = now;
          this.cmd.xtrim(outKey, 'MINID', trimTo).catch(() => {});
        }
      }
    }
  }

  private downReported = false;

  private report(error: ImiError): void {
    // An outage is one report, not one per line: IMI_REDIS_DOWN once until Redis is back.
    if (error.code === 'IMI_REDIS_DOWN') {
      if (this.downReported) return;
      this.downReported = true;
    }
    this.logger?.warn({ code: error.code, holder: this.options.holderId }, error.message);
  }

  /** Stops: no more heartbeats (workers declare this holder lost after holderTtlMs unless it left cleanly), closes Redis and the link. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.beatTimer);
    clearTimeout(this.relinkTimer);
    this.wake?.();
    this.link?.close();
    this.reader.disconnect();
    await this.cmd.quit().catch(() => {});
  }
}
