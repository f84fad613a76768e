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
 * hash) for each of its announced users, then its pending entries list —
 * what the predecessor read and did not ack — claimed with `XAUTOCLAIM`
 * (`redelivered: true`), then new entries with `XREADGROUP … >`: in stream
 * order, so in order per user.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CLUSTER_CONSUMER_GROUP, ImiError, clusterKeys, type JsonObject } from '@imi/core';
import type { Gateway } from './gateway.js';
import { newWorkerStats, type ClusterWorkerStats, type CommitOp, type EventMeta, type ResolvedClusterWorkerOptions, type WorkerSession } from './worker-options.js';
import { runWorkerScript } from './worker-scripts.js';
import { DeliveredMemory, fields, fnv, parseObject } from './entries.js';

/** A stream entry: its id and fields; null fields when a pending entry was trimmed from the stream. */
type Entry = [string, string[] | null];

/** What the fenced read (worker-scripts.ts READ) says of one partition: entries, nothing new (where the group stands, when asked), or lease lost. */
type ReadReply = ['e', Entry[]] | ['n'] | ['w', string] | ['x'];

/** Partitions per fenced read: its arguments stay far below what Lua's `unpack` takes (about 8,000), and its reply bounded. */
const READ_PARTITIONS = 256;

interface Owned {
  readonly part: number;
  /** The lease's value while this worker holds it: worker id and the number of this taking. */
  readonly token: string;
  /** Its stream's key and its lease's, made once. */
  readonly key: string;
  readonly leaseKey: string;
  readonly sessions: Set<string>;
  /** The last entry handed on from the stream: after a lost read, entries after it are read again from the pending entries list. */
  lastId: string;
  /** Reading new entries (after the takeover), and not being handed over. */
  reading: boolean;
  releasing: boolean;
  /** Where the group's reads of this partition stand (the last id it handed to this worker), once known: the `XREAD` waits after it. */
  waitId: string | undefined;
  /** The last `XREAD` saw entries past {@link waitId}: read it next. */
  woken: boolean;
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
   * handler that never finishes holds back the worker's cumulative ack anyway); past `releaseTimeoutMs`, reported once.
   */
  private readonly cooling = new Map<number, number>();
  /** A read failed: its reply (entries now pending for this worker) may be lost. */
  private recheck = false;
  /** The `XREADGROUP` under way: a takeover waits for it, so no entry of the partition is handed on before the claimed ones. */
  private inflightRead: Promise<unknown> | undefined;
  /** What this worker counted (see {@link ClusterWorkerStats}). */
  readonly counters: ClusterWorkerStats = newWorkerStats();

  /**
   * @param options - the worker's options
   * @param cmd - the connection for commands
   * @param reader - the connection for blocking reads
   * @param gateway - the app's side
   * @param report - where problems go
   */
  constructor(
    private readonly options: ResolvedClusterWorkerOptions,
    private readonly cmd: Redis,
    private readonly reader: Redis,
    private readonly gateway: Gateway,
    private readonly report: (error: ImiError) => void,
  ) {}

  /** The partitions held now. */
  get held(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Redis is (back) up: holders get one holder TTL to heartbeat again before any is declared lost. */
  redisReady(): void {
    this.readySince = Date.now();
    // The streams may have been recreated (a restart without data): where reads stand is read again.
    for (const owned of this.owned.values()) owned.waitId = undefined;
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

  /** The partitions rendezvous hashing gives this worker among `live`. */
  private share(live: string[]): Set<number> {
    const mine = new Set<number>();
    for (let part = 0; part < this.options.partitions; part++) {
      let best = '';
      let bestHash = -1;
      for (const worker of live) {
        const hash = fnv(`${worker}#${part}`);
        if (hash > bestHash || (hash === bestHash && worker > best)) {
          best = worker;
          bestHash = hash;
        }
      }
      if (best === this.options.workerId) mine.add(part);
    }
    return mine;
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
    const mine = this.share(live.includes(workerId) ? live : [...live, workerId]);
    for (const part of mine) {
      if (this.owned.has(part) || this.acquiring.has(part)) continue;
      const since = this.cooling.get(part);
      if (since !== undefined) {
        // Replies to its old events, still in the app, must reach the fence before it is taken again.
        const waiting = this.gateway.outstandingOf(part);
        if (waiting > 0) {
          if (since >= 0 && Date.now() - since > this.options.releaseTimeoutMs) {
            this.cooling.set(part, -1);
            this.report(new ImiError('IMI_LEASE_LOST', `worker ${workerId} does not take partition ${part} back yet: its app has not acked ${waiting} events handed to it there before the lease was lost, for over releaseTimeoutMs (${this.options.releaseTimeoutMs} ms); a handler that does not finish holds back every reply of this worker`));
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
    const token = `${this.options.workerId}:${++this.takings}`;
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
    await this.cmd.xgroup('CREATE', stream, CLUSTER_CONSUMER_GROUP, '0', 'MKSTREAM').catch((error: Error) => {
      if (!error.message.includes('BUSYGROUP')) throw error;
    });
    this.counters.leasesGained++;
    const owned: Owned = { part, token, key: stream, leaseKey: clusterKeys.lease(part), sessions: new Set(), lastId: '0-0', reading: false, releasing: false, waitId: undefined, woken: false };
    this.owned.set(part, owned);
    this.lostReported.delete(part);
    // A read issued before (when this worker last held the partition) may still bring its entries:
    // they stay pending (not handed on while `reading` is false) and XAUTOCLAIM below claims them in order.
    await this.inflightRead?.catch(() => {});
    // Every announced user first, with the state stored for them.
    const ids = await this.cmd.smembers(clusterKeys.partitionSessions(part));
    const pipeline = this.cmd.pipeline();
    for (const id of ids) pipeline.hgetall(clusterKeys.session(id));
    const hashes = ids.length === 0 ? [] : ((await pipeline.exec()) ?? []);
    ids.forEach((id, i) => {
      const hash = hashes[i]?.[1] as Record<string, string> | undefined;
      if (hash === undefined || hash['ann'] !== '1' || hash['holder'] === undefined) return; // its `connect` entry is still ahead
      this.addSession(owned, id, hash['holder'], parseObject(hash['state']));
      const data = { ...parseObject(hash['data']), id, resumed: true, state: parseObject(hash['state']) } as Record<string, unknown>;
      if (hash['telnet'] !== undefined && hash['telnet'] !== '') data['telnet'] = parseObject(hash['telnet']);
      this.gateway.deliver({ param: 'connect', data, txn_id: randomUUID() }, { part, token });
    });
    // Then what the predecessor read and did not ack, in stream order.
    let cursor = '0-0';
    do {
      const [next, entries, deleted] = (await this.cmd.xautoclaim(stream, CLUSTER_CONSUMER_GROUP, this.options.workerId, 0, cursor, 'COUNT', 500)) as [string, Array<[string, string[]]>, string[]];
      this.counters.eventsClaimed += entries.length;
      for (const [id, list] of entries) this.onEntry(owned, id, list, true);
      // Trimmed while pending (past maxStreamEntries): nothing to deliver, only to forget.
      if (deleted !== undefined && deleted.length > 0) this.gateway.queueOps(deleted.map((id) => ({ k: 'a', p: part, t: token, e: id })));
      cursor = next;
    } while (cursor !== '0-0' && this.owned.get(part) === owned);
    owned.reading = true;
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
   * Reads new entries, only where there are some. A plain `XREAD BLOCK`
   * (which changes nothing) after the id each partition was last read to
   * names the partitions with new entries; only those are read, with the
   * fenced script (worker-scripts.ts READ: entries are read only under a
   * lease that still holds). A partition whose position is not known (just
   * taken, after an error, after Redis reconnected, or after an idle wait)
   * is read with the others: the script says where it stands. Under load
   * (the last read brought entries from more than one partition) every
   * partition is read again at once, without the wake-up.
   */
  private async readLoop(): Promise<void> {
    const { maxOutstanding } = this.options;
    // Entries came from more than one partition in the last read: under load, so every partition is
    // read again at once, without the XREAD wake-up (one round trip to Redis a round instead of two).
    let busy = false;
    while (this.running) {
      const parts = [...this.owned.values()].filter((owned) => owned.reading && !owned.releasing);
      if (parts.length === 0 || this.gateway.outstandingCount >= maxOutstanding || this.gateway.saturated) {
        busy = false;
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      // After a lost reply (this.recheck) every partition is read from the last entry handed on.
      const toRead = this.recheck || busy ? parts : parts.filter((owned) => owned.woken || owned.waitId === undefined);
      busy = false;
      if (toRead.length > 0) {
        const recheck = this.recheck;
        let replies: ReadReply[];
        try {
          replies = await this.read(toRead, recheck);
        } catch (error) {
          this.recheck = true;
          this.counters.redisErrors++;
          for (const owned of parts) owned.waitId = undefined;
          if ((error as Error).message.includes('NOGROUP')) {
            // Redis lost its data (restarted without persistence): the groups come back empty.
            for (const owned of parts) await this.cmd.xgroup('CREATE', clusterKeys.partition(owned.part), CLUSTER_CONSUMER_GROUP, '0', 'MKSTREAM').catch(() => 0);
          } else {
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
          continue;
        }
        let got = 0;
        let from = 0;
        replies.forEach((reply, i) => {
          const owned = toRead[i]!;
          owned.woken = false;
          const current = this.owned.get(owned.part) === owned;
          if (reply[0] === 'x') {
            if (current) this.lose(owned.part);
          } else if (reply[0] === 'n') {
            // Nothing new: it still waits after owned.waitId.
          } else if (reply[0] === 'w') {
            owned.waitId = reply[1];
          } else {
            const entries = reply[1];
            got += entries.length;
            if (entries.length > 0) from++;
            // A recheck read pending entries: where '>' stands is not known yet.
            owned.waitId = recheck ? undefined : entries.length > 0 ? entries[entries.length - 1]![0] : undefined;
            // A partition let go meanwhile: these entries wait in the pending entries list for its next owner.
            if (!current || owned.releasing || !owned.reading) return;
            this.counters.eventsRead += entries.length;
            for (const [id, list] of entries) this.onEntry(owned, id, list, false);
          }
        });
        if (recheck) {
          if (got > 0) continue;
          this.recheck = false;
        } else if (from > 1) {
          busy = true;
          continue;
        }
      }
      // Wait (at most 200 ms) for an entry past where each partition was read to; a plain XREAD changes nothing.
      const waiting = parts.filter((owned) => owned.waitId !== undefined && this.owned.get(owned.part) === owned);
      if (waiting.length === 0) continue;
      const byKey = new Map(waiting.map((owned) => [owned.key, owned]));
      let woke: Array<[string, unknown[]]> | null;
      try {
        woke = (await this.reader.xread('COUNT', 1, 'BLOCK', 200, 'STREAMS', ...byKey.keys(), ...waiting.map((owned) => owned.waitId!))) as typeof woke;
      } catch {
        woke = null;
        this.counters.redisErrors++;
      }
      this.counters.wakeups++;
      if (woke === null) {
        // Idle (or an error): read every partition once more, which also catches a stream Redis recreated (restart without data).
        for (const owned of waiting) owned.waitId = undefined;
        continue;
      }
      for (const [key] of woke) {
        const owned = byKey.get(key);
        if (owned !== undefined) owned.woken = true;
      }
    }
  }

  /**
   * One fenced read of these partitions, {@link READ_PARTITIONS} per script call.
   *
   * @param toRead - the partitions
   * @param recheck - after a lost reply: read from the last entry handed on instead of `>`, which
   *   makes `XREADGROUP` return this consumer's pending entries the app never saw
   * @returns one reply per partition, in order
   */
  private async read(toRead: Owned[], recheck: boolean): Promise<ReadReply[]> {
    const { workerId, readBatch } = this.options;
    const calls: Array<Promise<ReadReply[]>> = [];
    for (let at = 0; at < toRead.length; at += READ_PARTITIONS) {
      const some = toRead.slice(at, at + READ_PARTITIONS);
      const keys = [...some.map((owned) => owned.key), ...some.map((owned) => owned.leaseKey)];
      const ids = some.map((owned) => (recheck ? owned.lastId : owned.waitId === undefined ? '?' : '>'));
      calls.push(runWorkerScript<ReadReply[]>(this.reader, 'imiRead', keys, [CLUSTER_CONSUMER_GROUP, workerId, readBatch, ...some.map((owned) => owned.token), ...ids]));
    }
    this.counters.reads += calls.length;
    const read = calls.length === 1 ? calls[0]! : Promise.all(calls).then((replies) => replies.flat());
    // A takeover waits for every call, not just until the first fails.
    this.inflightRead = calls.length === 1 ? read : Promise.allSettled(calls);
    return read;
  }

  /** The gateway released acks in these partitions: a hand-over may finish. */
  onReleased(): void {
    // release() polls; nothing to do here but keep the hook for a faster hand-over.
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
