/**
 * The worker's face towards its own `Client`: the intermediary side of the
 * protocol (docs/protocol.md), over an in-process connection
 * (`memorySocketPair` of `@imi/core`: the bytes do not cross the kernel). So
 * a worker is the unchanged `Client` — same events, hooks, acks, per-user
 * order, replay — linked to this gateway instead of an intermediary. What
 * the gateway sends goes over as the message objects themselves
 * (`MemorySocket.writeMessage`: no JSON encoding and decoding per line; the
 * `Client` still checks each as it checks a frame); what the app sends
 * comes as bytes and is decoded and validated here, once, as an
 * intermediary does.
 *
 * Events from the partitions get a `seq` here; the app's cumulative `ack`
 * turns into `XACK`s of the entries they came from. What the app sends
 * (replies, state updates, kicks, broadcasts) becomes commit ops, and
 * everything that arrived in one turn of the event loop (a reply and the
 * ack of the input it answers travel in one write, so they always arrive
 * together) is committed in one atomic script: reply + state update + ack,
 * effectively once.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  FrameDecoder,
  ImiError,
  isJsonObject,
  memorySocketPair,
  type MemorySocket,
  validateAppMessage,
  type AppMessage,
  type JsonObject,
} from '@imi/core';
import type { CommitOp, EventMeta, WorkerSession } from './worker-options.js';

/** What a message handed to the app counts for in the socket's backlog besides its input text, in bytes (about an input frame without its text). */
const MESSAGE_OVERHEAD_BYTES = 160;

/** Interval of the gateway's `ping` to its app, in ms (the app's `linkTimeoutMs` may watch it). */
const PING_INTERVAL_MS = 5_000;

/** What the gateway needs from the rest of the worker. */
export interface GatewayPeer {
  /** A session this worker serves, by id. */
  session(id: string): WorkerSession | undefined;
  /** The app said hello: start taking partitions. */
  onAppUp(): void;
  /** The app's link closed: give everything back. */
  onAppDown(): void;
  /** Ops to commit, in order (one atomic commit). */
  commit(ops: CommitOp[]): void;
  /** Acks released these events: how many each partition still has outstanding changed. */
  onReleased(parts: Iterable<number>): void;
}

interface Outstanding {
  readonly seq: number;
  readonly meta: EventMeta;
  /** Acked alone (`done`) before the cumulative ack reached it: its entry's ack is committed already. */
  done: boolean;
}

function mergeState(state: JsonObject, updates: JsonObject): JsonObject {
  const next: JsonObject = { ...state };
  for (const [key, value] of Object.entries(updates)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next;
}

/** The gateway and its one app connection. */
export class Gateway {
  private socket: MemorySocket | undefined;
  private seq = 0;
  private flushScheduled = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly outstanding: Outstanding[] = [];
  private head = 0;
  private readonly perPart = new Map<number, number>();
  private ops: CommitOp[] = [];
  /** Bytes the socket holds unsent: reading from Redis waits while it is above this. */
  readonly highWaterBytes = 4 * 1024 * 1024;

  /**
   * @param peer - the rest of the worker
   * @param report - where problems go (the client's `error` event)
   */
  constructor(
    private readonly peer: GatewayPeer,
    private readonly report: (error: ImiError) => void,
  ) {}

  /**
   * A new in-process connection for the app's `Client` (the previous one, if any, is closed first:
   * a `Client` links again only after its link closed).
   *
   * @returns the `Client`'s end: a `MemorySocket`, which has every part of `net.Socket` the `Client` uses
   */
  connect(): Socket {
    const [appEnd, gatewayEnd] = memorySocketPair();
    this.socket?.destroy();
    this.onConnection(gatewayEnd);
    return appEnd as unknown as Socket;
  }

  /** Events handed to the app and not acked yet. */
  get outstandingCount(): number {
    return this.outstanding.length - this.head;
  }

  /**
   * Outstanding events of one partition.
   *
   * @param part - the partition
   * @returns how many
   */
  outstandingOf(part: number): number {
    return this.perPart.get(part) ?? 0;
  }

  /** Whether the app's socket is behind (reading should wait). */
  get saturated(): boolean {
    return this.socket !== undefined && this.socket.writableLength > this.highWaterBytes;
  }

  private onConnection(socket: MemorySocket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder<AppMessage>(
      { validate: validateAppMessage },
      { onMessage: (message) => this.onMessage(message), onError: (error) => this.report(error) },
    );
    socket.on('data', (chunk: Buffer) => {
      decoder.write(chunk);
      // Everything this read brought goes in one commit (replies with the ack of their input). It is
      // everything the Client wrote this turn (its outbox writes once a turn, and this in-process
      // socket hands it over in one piece), so the commit goes now: waiting for the next turn would
      // let the next read's entries be handled first, and their replies wait behind them.
      this.flushOps();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket !== socket) return;
      // What the app sent last is committed before its partitions are given back.
      this.flushOps();
      this.socket = undefined;
      clearInterval(this.pingTimer);
      this.outstanding.length = 0;
      this.head = 0;
      this.perPart.clear();
      this.peer.onAppDown();
    });
  }

  private onMessage(message: AppMessage): void {
    switch (message.param) {
      case 'hello':
        // eventAcks: a reply that finished behind a slower event goes at once with its own
        // event's ack (`done`), as Redis acks entry by entry: never without one, never held.
        this.write({ param: 'synced', data: { count: 0, eventAcks: true }, txn_id: randomUUID() });
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.write({ param: 'ping', data: { ts: Date.now() }, txn_id: randomUUID() }), PING_INTERVAL_MS).unref();
        this.peer.onAppUp();
        break;
      case 'output':
      case 'disconnect':
      case 'telnet':
      case 'gmcp':
      case 'state':
        this.toHolder(message);
        break;
      case 'broadcast': {
        const frame: Record<string, unknown> = { param: 'broadcast', data: message.data };
        if (message.txn_id !== undefined) frame['txn_id'] = message.txn_id;
        this.ops.push({ k: 'b', f: JSON.stringify(frame) });
        break;
      }
      default:
        break; // ack, pong, null: nothing to relay
    }
    if (message.param === 'ack') this.acked(message.data.seq);
    else if (message.ack !== undefined) this.acked(message.ack);
    if (message.done !== undefined) this.doneOne(message.done);
  }

  /** A frame for one user: to the stream of the holder with their socket, with the state update it carries. */
  private toHolder(message: AppMessage): void {
    const data = message.data as { id?: string };
    const id = data.id;
    if (id === undefined) return; // the Perl client's disconnect acknowledgement
    const session = this.peer.session(id);
    if (session === undefined) {
      // As the intermediary answers a message for a user who left: the user may have moved to another worker.
      const error: Record<string, unknown> = { code: 'IMI_UNKNOWN_ID', message: `no user ${id} in this worker's partitions (left, or moved to another worker)` };
      if (message.txn_id !== undefined) error['txn_id'] = message.txn_id;
      this.write({ param: 'error', data: error, txn_id: randomUUID() });
      return;
    }
    const frame: Record<string, unknown> = { param: message.param, data: message.data };
    if (message.txn_id !== undefined) frame['txn_id'] = message.txn_id;
    if (message.updates !== undefined && isJsonObject(message.updates)) {
      frame['updates'] = message.updates;
      session.state = mergeState(session.state, message.updates);
      this.ops.push({ k: 's', p: session.part, t: session.token, id, s: JSON.stringify(session.state) });
    }
    // A bare `state` message only stores; the holder's intermediary keeps its copy too.
    this.ops.push({ k: 'o', p: session.part, t: session.token, h: session.holder, f: JSON.stringify(frame) });
  }

  /** A cumulative ack: the entries of every event up to `seq` are done. */
  private acked(seq: number): void {
    const parts = new Set<number>();
    while (this.head < this.outstanding.length && this.outstanding[this.head]!.seq <= seq) {
      const event = this.outstanding[this.head++]!;
      if (event.done) continue;
      parts.add(event.meta.part);
      this.ackOne(event.meta);
    }
    if (this.head > 1024 && this.head * 2 > this.outstanding.length) {
      this.outstanding.splice(0, this.head);
      this.head = 0;
    }
    if (parts.size > 0) this.peer.onReleased(parts);
  }

  /** A per-event ack (`done`, see synced's `eventAcks`): that event alone is done; the cumulative ack skips it later. */
  private doneOne(seq: number): void {
    const first = this.outstanding[this.head];
    // Seqs are handed out one by one and queued in order: the event's place follows from the first one's.
    const event = first === undefined ? undefined : this.outstanding[this.head + seq - first.seq];
    // Not below the first outstanding one: the cumulative ack took those (they may not be compacted away yet).
    if (first === undefined || seq < first.seq || event === undefined || event.seq !== seq || event.done) return;
    event.done = true;
    this.ackOne(event.meta);
    this.peer.onReleased([event.meta.part]);
  }

  private ackOne(meta: EventMeta): void {
    this.perPart.set(meta.part, (this.perPart.get(meta.part) ?? 1) - 1);
    if (meta.entry === undefined) return;
    const op: CommitOp = { k: 'a', p: meta.part, t: meta.token, e: meta.entry };
    if (meta.announced !== undefined) op.c = meta.announced;
    if (meta.gone !== undefined) op.g = meta.gone;
    this.ops.push(op);
  }

  /**
   * Queues ops to commit with the next flush (entries acked without reaching the app).
   *
   * @param ops - the ops
   */
  queueOps(ops: CommitOp[]): void {
    this.ops.push(...ops);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flushOps(): void {
    if (this.ops.length === 0) return;
    const ops = this.ops;
    this.ops = [];
    this.peer.commit(ops);
  }

  /**
   * Hands an event to the app: with a `seq` (acked like the intermediary's) when `meta` is given.
   *
   * @param message - the event (`param`, `data`, `txn_id`, `redelivered`)
   * @param meta - what acking it does, for `connect`, `input`, `disconnect`
   */
  deliver(message: Record<string, unknown>, meta: EventMeta | undefined): void {
    if (this.socket === undefined) return;
    if (meta !== undefined) {
      const seq = ++this.seq;
      message['seq'] = seq;
      this.outstanding.push({ seq, meta, done: false });
      this.perPart.set(meta.part, (this.perPart.get(meta.part) ?? 0) + 1);
    }
    this.write(message);
  }

  /** To the app, as the object itself (the `Client` gets it once this turn's code has run, in order). */
  private write(message: Record<string, unknown>): void {
    if (this.socket === undefined) return;
    // Weighed as about its frame's length (for `saturated`); only input carries user-sized text.
    const data = message['data'] as { value?: unknown } | undefined;
    const value = data?.value;
    this.socket.writeMessage(message, typeof value === 'string' ? MESSAGE_OVERHEAD_BYTES + value.length : MESSAGE_OVERHEAD_BYTES);
  }

  private flush(): void {
    this.flushScheduled = false;
    this.flushOps();
  }

  /**
   * Stops (`true`) or resumes reading the app's socket: while commits cannot
   * reach Redis the app's own outbox bound (`maxOutgoingBytes`) then applies.
   *
   * @param paused - whether to stop reading
   */
  setPaused(paused: boolean): void {
    if (paused) this.socket?.pause();
    else this.socket?.resume();
  }

  /** Closes the app's connection. */
  close(): void {
    clearInterval(this.pingTimer);
    this.socket?.destroy();
  }
}
