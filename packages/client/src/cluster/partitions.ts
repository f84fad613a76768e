/**
 * Which partitions this worker serves, and reading them.
 *
 * Leases: each partition has a lease key (`SET NX PX`), renewed every third of its TTL by compare-and-renew;
 * workers heartbeat a sorted set, and each partition belongs to the live worker that wins rendezvous hashing
 * (highest hash of worker id and partition), so when a worker comes or goes only its share moves. A worker gives
 * back (after its events there are acked, bounded by `releaseTimeoutMs`) what is not its share, and takes its share
 * as soon as the lease is free (released, or expired after a crash) — but a partition it lost or gave back only
 * once its app acked every event it was handed there (see `cooling`).
 *
 * Taking a partition: `connect` (`resumed: true`, state from the session
 * hash) for each of its announced users, then every entry of its stream —
 * what is not acked yet: the predecessor's unacked ones first
 * (`redelivered: true`), then new ones — read with this worker's own
 * consumer group, made afresh at the stream's start (worker-scripts.ts
 * TAKE): in stream order, so in order per user.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ImiError, clusterKeys, type JsonObject } from '@imi/core';
import type { Gateway } from './gateway.js';
import { newWorkerStats, type ClusterWorkerStats, type CommitOp, type EventMeta, type ResolvedClusterWorkerOptions, type WorkerSession } from './worker-options.js';
import { runWorkerScript } from './worker-scripts.js';
import { DeliveredMemory, fields, idAfter, parseObject, shareOf } from './entries.js';

/** A stream entry: its id and fields; null fields when a pending entry was trimmed from the stream. */
type Entry = [string, string[] | null];

/** What `XREADGROUP` returns: per stream with entries, its key and the entries. */
type ReadReply = Array<[string, Entry[]]> | null;

/** How long one read waits for new entries (ms) before it is made again (with the partitions held then). */
const READ_BLOCK_MS = 200;


interface Owned {
  readonly part: number;
  /** The lease's value while this worker holds it: this process's group and the number of this taking. */
  readonly token: string;
  /** Its stream's key and its lease's, made once. */
  readonly key: string;
  readonly leaseKey: string;
  readonly sessions: Set<string>;
  /** The last entry handed on from the stream: after a lost read, entries after it are read again from the pending entries list. */
  lastId: string;
  /** Reading entries (the takeover announced its users), and not being handed over. */
  reading: boolean;
  releasing: boolean;
  /** Entries up to this id were read by a predecessor's group (they may have been handled): `redelivered`. Undefined once past it. */
  redeliverTo: string | undefined;
}

/** The partitions of one worker. */
export class Partitions {
  /** The sessions of the partitions this worker holds, by id. */
  readonly sessions = new Map<string, WorkerSession>();
  private readonly owned = new Map<number, Owned>();
  private readonly acquiring = new Set<number>();
  private beats = 0;
  private running = false;
  private beatTimer: NodeJS.Timeout | undefined;
  private readySince = 0;
  private lostReported = new Set<number>();
  private readonly delivered = new DeliveredMemory();
  private takings = 0;
  /**
   * Partitions lost or given back, until the app acked every event handed to it there, mapped to when that began
   * (ms; -1 once reported): not taken again meanwhile. A handler still running from before replies by session id;
   * under a new lease its reply would pass the fence and the input, read again, be answered twice. No time bound (a
   * handler that never finishes holds back the worker's reading anyway, past `maxOutstanding` events); past `releaseTimeoutMs`, reported once.
   */
  private readonly cooling = new Map<number, number>();
  /** A read failed: its reply (entries now pending for this worker) may be lost. */
  private recheck = false;
  /** The `XREADGROUP` under way: a takeover waits for it (unblocked), so no read made under an earlier taking brings entries of the new one. */
  private inflightRead: Promise<unknown> | undefined;
  /** The reader connection's `CLIENT ID`, to unblock its read (`CLIENT UNBLOCK`) when a takeover waits for it; null: Redis refused to say (a takeover then waits out the read). */
  private readerId: number | null | undefined;
  /** What this worker counted (see {@link ClusterWorkerStats}). */
  readonly counters: ClusterWorkerStats = newWorkerStats();

  /**
   * @param options - the worker's options
   * @param cmd - the connection for commands
   * @param reader - the connection for blocking reads
   * @param gateway - the app's side
   * @param report - where problems go
   * @param group - this worker process's consumer group (worker id and an instance id: see worker-scripts.ts TAKE)
   */
  constructor(
    private readonly options: ResolvedClusterWorkerOptions,
    private readonly cmd: Redis,
    private readonly reader: Redis,
    private readonly gateway: Gateway,
    private readonly report: (error: ImiError) => void,
    private readonly group: string,
  ) {
    reader.on('ready', () => (this.readerId = undefined));
  }

  /** The partitions held now. */
  get held(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Redis is (back) up: holders get one holder TTL to heartbeat again before any is declared lost. */
  redisReady(): void {
    this.readySince = Date.now();
  }

  /** Starts the heartbeat and the reading (the app is up). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.beats = 0;
    const every = Math.max(100, Math.floor(this.options.leaseTtlMs / 3));
    this.beatTimer = setInterval(() => void this.beat(), every);
    void this.beat();
    void this.readLoop();
  }

  /** Stops and gives every lease back (their pending entries go to the next owner). */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.beatTimer);
    const parts = [...this.owned.values()];
    this.counters.leasesReleased += parts.length;
    this.owned.clear();
    this.sessions.clear();
    await Promise.all(parts.map((owned) => runWorkerScript(this.cmd, 'imiRelease', [clusterKeys.lease(owned.part)], [owned.token]).catch(() => 0)));
    await this.cmd.zrem(clusterKeys.workers, this.options.workerId).catch(() => 0);
  }

  private async beat(): Promise<void> {
    if (!this.running) return;
    const { workerId, leaseTtlMs } = this.options;
    let live: string[];
    try {
      live = await runWorkerScript<string[]>(this.cmd, 'imiWorkerBeat', [clusterKeys.workers], [workerId, leaseTtlMs]);
      const renewals = await Promise.all([...this.owned.values()].map(async (owned) => [owned, await runWorkerScript(this.cmd, 'imiRenew', [clusterKeys.lease(owned.part)], [owned.token, leaseTtlMs])] as const));
      for (const [owned, renewed] of renewals) if (renewed === 0 && this.owned.get(owned.part) === owned) this.lose(owned.part);
    } catch {
      this.counters.redisErrors++;
      return; // Redis is away: the worker reports it; leases are renewed on the next beat or lost
    }
    // The first beat only registers: workers already running see this one before it takes anything.
    if (++this.beats < 2 || !this.running) return;
    const mine = shareOf(workerId, live.includes(workerId) ? live : [...live, workerId], this.options.partitions);
    for (const part of mine) {
      if (this.owned.has(part) || this.acquiring.has(part)) continue;
      const since = this.cooling.get(part);
      if (since !== undefined) {
        // Replies to its old events, still in the app, must reach the fence before it is taken again.
        const waiting = this.gateway.outstandingOf(part);
        if (waiting > 0) {
          if (since >= 0 && Date.now() - since > this.options.releaseTimeoutMs) {
            this.cooling.set(part, -1);
            this.report(new ImiError('IMI_LEASE_LOST', `worker ${workerId} does not take partition ${part} back yet: its app has not acked ${waiting} events handed to it there before the lease was lost, for over releaseTimeoutMs (${this.options.releaseTimeoutMs} ms); a handler that does not finish keeps the partition from this worker, and past maxOutstanding events stops its reading`));
          }
          continue;
        }
        this.cooling.delete(part);
      }
      void this.acquire(part);
    }
    for (const [part, owned] of this.owned) if (!mine.has(part) && !owned.releasing) void this.release(owned);
    if (this.readySince > 0 && Date.now() - this.readySince > this.options.holderTtlMs + leaseTtlMs) {
      runWorkerScript(this.cmd, 'imiReap', [clusterKeys.holders], [this.options.maxStreamEntries]).catch(() => 0);
    }
  }

  private async acquire(part: number): Promise<void> {
    this.acquiring.add(part);
    // This process's instance (not just the worker id: a restarted worker with the same id counts from 1 again) and the taking.
    const token = `${this.group}:${++this.takings}`;
    try {
      const taken = await this.cmd.set(clusterKeys.lease(part), token, 'PX', this.options.leaseTtlMs, 'NX');
      if (taken !== 'OK' || !this.running) return;
      await this.takeOver(part, token);
    } catch (error) {
      const owned = this.owned.get(part);
      if (owned !== undefined && owned.token === token) this.forget(owned);
      this.counters.redisErrors++;
      this.report(new ImiError('IMI_REDIS_DOWN', `taking partition ${part} failed: ${(error as Error).message}`, { cause: error }));
      await runWorkerScript(this.cmd, 'imiRelease', [clusterKeys.lease(part)], [token]).catch(() => 0);
    } finally {
      this.acquiring.delete(part);
    }
  }

  private async takeOver(part: number, token: string): Promise<void> {
    const stream = clusterKeys.partition(part);
    this.counters.leasesGained++;
    const owned: Owned = { part, token, key: stream, leaseKey: clusterKeys.lease(part), sessions: new Set(), lastId: '0-0', reading: false, releasing: false, redeliverTo: undefined };
    this.owned.set(part, owned);
    this.lostReported.delete(part);
    // A read made before (when this worker last held the partition, with the group TAKE makes
    // again) could otherwise bring entries of the new group that no one hands on.
    await this.settleRead();
    const last = await runWorkerScript<string | null>(this.cmd, 'imiTake', [stream, owned.leaseKey, clusterKeys.partitionDelivered(part)], [this.group, token]);
    if (last === null) {
      this.lose(part); // the lease ran out while it was being taken
      return;
    }
    if (last !== '0-0') owned.redeliverTo = last;
    // Every announced user first, with the state stored for them.
    const ids = await this.cmd.smembers(clusterKeys.partitionSessions(part));
    const pipeline = this.cmd.pipeline();
    for (const id of ids) pipeline.hgetall(clusterKeys.session(id));
    const hashes = ids.length === 0 ? [] : ((await pipeline.exec()) ?? []);
    if (this.owned.get(part) !== owned) return;
    ids.forEach((id, i) => {
      const hash = hashes[i]?.[1] as Record<string, string> | undefined;
      if (hash === undefined || hash['ann'] !== '1' || hash['holder'] === undefined) return; // its `connect` entry is still ahead
      this.addSession(owned, id, hash['holder'], parseObject(hash['state']));
      const data = { ...parseObject(hash['data']), id, resumed: true, state: parseObject(hash['state']) } as Record<string, unknown>;
      if (hash['telnet'] !== undefined && hash['telnet'] !== '') data['telnet'] = parseObject(hash['telnet']);
      this.gateway.deliver({ param: 'connect', data, txn_id: randomUUID() }, { part, token });
    });
    // Then the stream from its start, with the other partitions' new entries (readLoop).
    owned.reading = true;
    this.unblockRead();
  }

  /** Waits for the read under way, unblocking it first (it may wait up to {@link READ_BLOCK_MS}). */
  private async settleRead(): Promise<void> {
    const read = this.inflightRead;
    if (read === undefined) return;
    this.unblockRead();
    await read.catch(() => {});
  }

  /** Ends the reader's blocking wait now (as if it timed out), so the next read covers the partitions held now. */
  private unblockRead(): void {
    if (this.inflightRead === undefined || typeof this.readerId !== 'number') return;
    this.cmd.client('UNBLOCK', this.readerId).catch(() => 0);
  }

  private addSession(owned: Owned, id: string, holder: string, state: JsonObject): void {
    owned.sessions.add(id);
    this.sessions.set(id, { part: owned.part, token: owned.token, holder, state });
  }

  private dropSession(owned: Owned, id: string): void {
    owned.sessions.delete(id);
    this.sessions.delete(id);
  }

  /**
   * One stream entry: an event for the app (with what acking it does), or an ack-only op (no session id; a pending
   * entry trimmed from the stream past maxStreamEntries, which a reread returns with `null` fields, is one).
   */
  private onEntry(owned: Owned, entryId: string, list: string[] | null, redelivered: boolean): void {
    const entry = fields(list ?? []);
    const id = entry['id'];
    const { part, token } = owned;
    owned.lastId = entryId;
    if (id === undefined) {
      this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId }]);
      return;
    }
    const known = owned.sessions.has(id);
    switch (entry['t']) {
      case 'connect': {
        if (known) {
          // Announced by the takeover already: only ack it (and mark it announced).
          this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId, c: id }]);
          return;
        }
        this.addSession(owned, id, entry['h'] ?? '', parseObject(entry['s']));
        // The app gets the message object itself (gateway.ts): its own copy of the state, not the session's.
        const data = { ...parseObject(entry['d']), id, resumed: entry['r'] === '1', state: parseObject(entry['s']) };
        this.gateway.deliver({ param: 'connect', data, txn_id: randomUUID() }, { part, token, entry: entryId, announced: id });
        return;
      }
      case 'input': {
        if (!known) {
          this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId }]);
          return;
        }
        const message: Record<string, unknown> = { param: 'input', data: { id, value: entry['v'] ?? '' }, txn_id: entry['x'] ?? randomUUID() };
        // `redelivered` only for input another worker may have handled: the Client skips a redelivered
        // txn it remembers handling, and this process's own earlier reply was fenced (its lease was lost).
        const key = `${part}/${entryId}`;
        if (redelivered && !this.delivered.has(key)) {
          message['redelivered'] = true;
          this.counters.eventsRedelivered++;
        }
        this.delivered.remember(key);
        this.gateway.deliver(message, { part, token, entry: entryId });
        return;
      }
      case 'disconnect': {
        const meta: EventMeta = { part, token, entry: entryId, gone: id };
        if (!known) {
          this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId, g: id }]);
          return;
        }
        this.dropSession(owned, id);
        this.gateway.deliver({ param: 'disconnect', data: { id, reason: entry['r'] ?? 'closed' }, txn_id: randomUUID() }, meta);
        return;
      }
      case 'frame': {
        // telnet / gmcp: no seq, not acked by the app; relayed, then done.
        if (known && entry['f'] !== undefined) this.gateway.deliver(parseObject(entry['f']), undefined);
        this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId }]);
        return;
      }
      default:
        this.gateway.queueOps([{ k: 'a', p: part, t: token, e: entryId }]);
    }
  }

  /**
   * Reads every partition held with one blocking `XREADGROUP` of this
   * worker's group (`>`: entries not read yet, from the stream's start after
   * a takeover), waiting at most {@link READ_BLOCK_MS} for one; made again
   * as soon as it returns (at once when entries wait). After a lost reply
   * (`recheck`) the pending entries after the last one handed on are read
   * first. `NOGROUP`: another worker took a partition and destroyed this
   * worker's group there; the leases say which.
   */
  private async readLoop(): Promise<void> {
    const { maxOutstanding } = this.options;
    while (this.running) {
      const parts = [...this.owned.values()].filter((owned) => owned.reading && !owned.releasing);
      if (parts.length === 0 || this.gateway.outstandingCount >= maxOutstanding || this.gateway.saturated) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const recheck = this.recheck;
      let reply: ReadReply;
      try {
        reply = await this.read(parts, recheck);
      } catch (error) {
        this.counters.redisErrors++;
        if ((error as Error).message.includes('NOGROUP')) await this.checkLeases(parts);
        else {
          this.recheck = true;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        continue;
      }
      if (reply === null) {
        this.counters.wakeups++;
        if (recheck) this.recheck = false;
        continue;
      }
      let got = 0;
      const byKey = new Map(parts.map((owned) => [owned.key, owned]));
      for (const [key, entries] of reply) {
        const owned = byKey.get(key);
        if (owned === undefined) continue;
        got += entries.length;
        // A partition let go meanwhile: these entries stay pending in this worker's group, which
        // its next owner destroys (it reads them again from the stream).
        if (this.owned.get(owned.part) !== owned || owned.releasing || !owned.reading) continue;
        this.counters.eventsRead += entries.length;
        for (const [id, list] of entries) {
          let redelivered = false;
          if (owned.redeliverTo !== undefined) {
            if (idAfter(id, owned.redeliverTo)) owned.redeliverTo = undefined;
            else {
              redelivered = true;
              this.counters.eventsClaimed++;
            }
          }
          this.onEntry(owned, id, list, redelivered);
        }
      }
      if (recheck && got === 0) this.recheck = false;
    }
  }

  /**
   * One `XREADGROUP` of these partitions: new entries (blocking), or after
   * a lost reply this worker's pending entries after the last one handed
   * on, which the app never saw.
   *
   * @param parts - the partitions
   * @param recheck - read the pending entries instead of `>`
   * @returns the entries per stream, or null when none came
   */
  private async read(parts: Owned[], recheck: boolean): Promise<ReadReply> {
    // The whole read is what a takeover waits for, asking for the client id included.
    const read = this.readOnce(parts, recheck);
    this.inflightRead = read;
    try {
      return await read;
    } finally {
      if (this.inflightRead === read) this.inflightRead = undefined;
    }
  }

  private async readOnce(parts: Owned[], recheck: boolean): Promise<ReadReply> {
    const { workerId, readBatch } = this.options;
    if (this.readerId === undefined) {
      try {
        this.readerId = Number(await this.reader.client('ID'));
      } catch (error) {
        // An ACL without CLIENT ID, or a server without it: reads go on, a takeover waits out the one under way.
        this.readerId = null;
        this.report(new ImiError('IMI_REDIS_DOWN', `Redis refused CLIENT ID (${(error as Error).message}): taking a partition may wait up to ${READ_BLOCK_MS} ms for the read under way`, { cause: error }));
      }
    }
    const args: Array<string | number> = ['GROUP', this.group, workerId, 'COUNT', readBatch];
    if (!recheck) args.push('BLOCK', READ_BLOCK_MS);
    args.push('STREAMS');
    for (const owned of parts) args.push(owned.key);
    for (const owned of parts) args.push(recheck ? owned.lastId : '>');
    this.counters.reads++;
    return (this.reader as unknown as { xreadgroup(...parts: Array<string | number>): Promise<ReadReply> }).xreadgroup(...args);
  }

  /**
   * A read met `NOGROUP`: a successor took a partition and destroyed this worker's group there. The partitions
   * whose lease is not this worker's are lost. If every lease of the read still holds (not something imi does),
   * all of them are let go and their leases given back, to be taken again from their stream's start once the
   * app acked what it was handed there (cooling).
   */
  private async checkLeases(parts: Owned[]): Promise<void> {
    let leases: Array<string | null>;
    try {
      leases = await this.cmd.mget(parts.map((owned) => owned.leaseKey));
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
      return;
    }
    // Counted whether or not the partition is still held: the beat may have let it go before this read failed.
    let moved = 0;
    parts.forEach((owned, i) => {
      if (leases[i] === owned.token) return;
      moved++;
      if (this.owned.get(owned.part) === owned) this.lose(owned.part);
    });
    if (moved > 0) return;
    for (const owned of parts) {
      if (this.owned.get(owned.part) !== owned) continue;
      this.lose(owned.part);
      await runWorkerScript(this.cmd, 'imiRelease', [owned.leaseKey], [owned.token]).catch(() => 0);
    }
  }

  /** Gives a partition to its rightful owner: stop reading, wait for its acks (bounded), `moved`, release. */
  private async release(owned: Owned): Promise<void> {
    owned.releasing = true;
    const deadline = Date.now() + this.options.releaseTimeoutMs;
    while (this.gateway.outstandingOf(owned.part) > 0 && Date.now() < deadline && this.running) await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.owned.get(owned.part) !== owned) return;
    this.counters.leasesReleased++;
    this.forget(owned);
    await runWorkerScript(this.cmd, 'imiRelease', [clusterKeys.lease(owned.part)], [owned.token]).catch(() => 0);
  }

  /** The lease ran out or went to another worker: forget the partition at once. */
  private lose(part: number): void {
    const owned = this.owned.get(part);
    if (owned === undefined) return;
    this.counters.leasesLost++;
    if (!this.lostReported.has(part)) {
      this.lostReported.add(part);
      this.report(new ImiError('IMI_LEASE_LOST', `worker ${this.options.workerId} lost the lease of partition ${part}; its unacked input goes to the next owner`));
    }
    this.forget(owned);
  }

  /** The app forgets a partition's users: `disconnect` with reason `moved` (they stay connected, served elsewhere); the partition cools (see {@link cooling}). */
  private forget(owned: Owned): void {
    this.owned.delete(owned.part);
    this.cooling.set(owned.part, Date.now());
    for (const id of owned.sessions) {
      this.sessions.delete(id);
      this.gateway.deliver({ param: 'disconnect', data: { id, reason: 'moved' }, txn_id: randomUUID() }, { part: owned.part, token: owned.token });
    }
    owned.sessions.clear();
  }

  /**
   * Ops the commit skipped because a lease was lost: reported once per partition.
   *
   * @param ops - the ops sent
   */
  noteSkipped(ops: CommitOp[]): void {
    const parts = new Set<number>();
    for (const op of ops) if ('p' in op && !this.owned.has(op.p)) parts.add(op.p);
    for (const part of parts) {
      if (this.lostReported.has(part)) continue;
      this.lostReported.add(part);
      this.report(new ImiError('IMI_LEASE_LOST', `partition ${part} is no longer this worker's: what was sent for it was dropped`));
    }
  }
}
