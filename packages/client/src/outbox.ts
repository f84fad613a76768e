/**
 * Everything on its way to the intermediary: the frames the app sends
 * (bounded in count while the link is down and in bytes always), one
 * coalesced socket write per event-loop turn, acks added to the last frame
 * of a reply, and the replies kept after writing so they can be sent again
 * if their link broke before the intermediary read them.
 *
 * @module
 */
import { ImiError, LimitError, encodeFrame, isJsonObject } from '@imi/core';
import type { AckRelease } from './ack-tracker.js';
import { REDELIVERY_MEMORY, REPLAY_MEMORY_BYTES } from './options.js';
import type { SendOptions } from './send-options.js';
import type { ClientState } from './state.js';
import type { Batch, Link, OutRecord, SentReply } from './types.js';

/** Room kept in each frame for the `,"ack":N` added when it is written. */
const ACK_ROOM = 32;

function withAck(frame: string, ack: number): string {
  // Every frame is a JSON object followed by "\n": put the field before the closing brace.
  return `${frame.slice(0, -2)},"ack":${ack}}\n`;
}

/**
 * Turns `after`/`except` arguments into a list of ids.
 *
 * @throws ImiError `IMI_BAD_MESSAGE` when an item is not a string
 */
export function toIdList(value: string | Iterable<string> | undefined, option: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : [...value];
  for (const item of list) {
    if (typeof item !== 'string') throw new ImiError('IMI_BAD_MESSAGE', `${option} must list strings (txn or session ids)`);
  }
  return list;
}

/** The outgoing side of the client: one per client, across links. */
export class Outbox {
  /** Frames accepted while no link is up, sent after the next resync. */
  pending: OutRecord[] = [];
  /** Bytes of `app` frames accepted and not yet handed to a socket. */
  bytes = 0;
  /**
   * Replies written on a link that then broke, by the `txn_id` of the input
   * they answer: if the intermediary redelivers that input it never read
   * them (the ack travels on their last frame), so they are sent again
   * rather than lost, without running the handlers twice.
   */
  private readonly replayable = new Map<string, SentReply>();
  private replayableBytes = 0;

  /**
   * @param state - what the parts share
   * @param onDrained - called when the socket took everything after asking to wait
   */
  constructor(
    private readonly state: ClientState,
    private readonly onDrained: () => void,
  ) {}

  /** Encodes an app message as an `app` record, or throws when it is over `maxFrameBytes`. */
  appRecord(message: { param: string; data: object }, txnId: string, userId: string | undefined, options: SendOptions | undefined): OutRecord {
    const after = toIdList(options?.after, 'after');
    const hasDeps = after !== undefined && after.length > 0;
    let frame: string;
    if (message.param === 'output' && !hasDeps && options?.updates === undefined) {
      // The common case, written directly: the same bytes as encodeFrame() of
      // { param, data: { id, value[, prompt: true] }, txn_id } (send() and multisend() make that data).
      const data = message.data as { id: string; value: string; prompt?: true };
      const prompt = data.prompt === true ? ',"prompt":true' : '';
      frame = `{"param":"output","data":{"id":${JSON.stringify(data.id)},"value":${JSON.stringify(data.value)}${prompt}},"txn_id":${JSON.stringify(txnId)}}\n`;
    } else {
      const full: Record<string, unknown> = { param: message.param, data: message.data, txn_id: txnId };
      if (hasDeps) full['dep_txns'] = after;
      if (options?.updates !== undefined) {
        if (!isJsonObject(options.updates)) throw new ImiError('IMI_BAD_MESSAGE', 'updates must be an object');
        full['updates'] = options.updates;
      }
      frame = encodeFrame(full);
    }
    const bytes = Buffer.byteLength(frame);
    const maxFrameBytes = this.state.options.maxFrameBytes;
    if (bytes + ACK_ROOM > maxFrameBytes) {
      throw new LimitError('maxFrameBytes', maxFrameBytes, `a ${message.param} frame of ${bytes} bytes is over maxFrameBytes (${maxFrameBytes})`, {
        txnId,
        ...(userId === undefined ? {} : { sessionId: userId }),
      });
    }
    return { kind: 'app', frame, bytes, userId, hasDeps, ack: undefined, written: false };
  }

  /** Accepts frames from the app, or throws: the only place the outgoing bounds are enforced. */
  submit(records: OutRecord[]): void {
    const state = this.state;
    if (state.status === 'closed') throw new ImiError('IMI_CLOSED', 'the client is closed');
    const options = state.options;
    let bytes = 0;
    for (const record of records) bytes += record.bytes;
    const linkUp = state.link?.state === 'up';
    if (this.bytes + bytes > options.maxOutgoingBytes) {
      const held = `${this.bytes} bytes already wait (maxOutgoingBytes ${options.maxOutgoingBytes})`;
      if (linkUp) throw new LimitError('maxOutgoingBytes', options.maxOutgoingBytes, `the intermediary is not reading fast enough: ${held}`);
      throw new ImiError('IMI_LINK_DOWN', `the link to the intermediary is down and ${held}; wait for linkUp`);
    }
    const batch = state.batchStore.getStore();
    if (batch !== undefined && !batch.closed) {
      batch.records.push(...records);
      this.bytes += bytes;
      return;
    }
    if (!linkUp && this.pending.length + records.length > options.maxPendingOutgoing) {
      throw new ImiError(
        'IMI_LINK_DOWN',
        `the link to the intermediary is down and ${this.pending.length} messages are already kept (maxPendingOutgoing ${options.maxPendingOutgoing}); wait for linkUp`,
      );
    }
    this.bytes += bytes;
    this.deliver(records);
  }

  /** Routes accepted frames: to the socket when the link is up, else kept for the resync. */
  deliver(records: OutRecord[]): void {
    if (records.length === 0) return;
    if (this.state.status === 'closed') {
      this.forget(records);
      return;
    }
    const link = this.state.link;
    const up = link !== undefined && link.state === 'up';
    const queue = up ? link.writeQueue : this.pending;
    for (const record of records) {
      // Acks are cumulative: a lone ack right after another replaces it, so
      // acks cannot pile up while the socket waits for 'drain'.
      if (record.kind === 'ack' && queue.length > 0 && queue[queue.length - 1]!.kind === 'ack') queue[queue.length - 1] = record;
      else queue.push(record);
    }
    if (up) this.scheduleFlush(link);
  }

  /** Stops counting frames that will never be written. */
  forget(records: Iterable<OutRecord>): void {
    for (const record of records) if (record.kind === 'app') this.bytes -= record.bytes;
  }

  /** Queues a frame that belongs to this link only (`hello`, `pong`). */
  writeDirect(link: Link, message: object): void {
    const frame = encodeFrame(message);
    link.writeQueue.push({ kind: 'direct', frame, bytes: Buffer.byteLength(frame), userId: undefined, hasDeps: false, ack: undefined, written: false });
    this.scheduleFlush(link);
  }

  private scheduleFlush(link: Link): void {
    if (link.flushScheduled) return;
    link.flushScheduled = true;
    setImmediate(() => this.flush(link));
  }

  /** One socket write with everything queued this turn, unless the socket asked us to wait. */
  flush(link: Link): void {
    link.flushScheduled = false;
    if (this.state.link !== link || link.waitingDrain || link.writeQueue.length === 0) return;
    const socket = link.socket;
    if (socket.destroyed || !socket.writable) return;
    let data = '';
    let appBytes = 0;
    for (const record of link.writeQueue) {
      data += record.ack === undefined ? record.frame : withAck(record.frame, record.ack);
      record.written = true;
      if (record.kind === 'app') appBytes += record.bytes;
    }
    link.writeQueue = [];
    this.bytes -= appBytes;
    if (!socket.write(data)) link.waitingDrain = true;
  }

  /** The socket's `drain`. */
  onDrain(link: Link): void {
    if (this.state.link !== link || !link.waitingDrain) return;
    link.waitingDrain = false;
    this.flush(link);
    if (!link.waitingDrain) this.onDrained();
  }

  /**
   * Sends what the ack tracker released, in arrival order, with the ack on
   * the last frame (or in a lone `ack` frame when that one cannot carry it).
   */
  release(link: Link, release: AckRelease<Batch>): void {
    const records: OutRecord[] = [];
    for (const batch of release.payloads) {
      for (const record of batch.records) records.push(record);
      this.rememberSent(link, batch);
    }
    if (release.ack !== undefined) {
      const last = records[records.length - 1];
      if (last !== undefined && last.kind === 'app' && !last.hasDeps) {
        last.ack = release.ack;
      } else {
        // A template: the bytes of encodeFrame({param: 'ack', data: {seq}}) (a number prints the same
        // in both), all ASCII. One per event released (a resync releases thousands, one by one).
        const frame = `{"param":"ack","data":{"seq":${release.ack}}}\n`;
        records.push({ kind: 'ack', frame, bytes: frame.length, userId: undefined, hasDeps: false, ack: undefined, written: false });
      }
    }
    if (link === this.state.link) this.deliver(records);
  }

  /**
   * Sends one finished event's replies now, ahead of a slower earlier
   * event, with its own ack: a lone `null` frame carrying `done` after them,
   * in the same write (on a link whose peer said `eventAcks`).
   */
  releaseDone(link: Link, batch: Batch): void {
    this.rememberSent(link, batch);
    if (link !== this.state.link) return;
    if (batch.seq === undefined) {
      this.deliver(batch.records);
      return;
    }
    // A template: what encodeFrame({param: 'null', done}) gives, all ASCII. 'direct': it means
    // something on this link only, and unlike a lone cumulative ack it replaces no other.
    const frame = `{"param":"null","done":${batch.seq}}\n`;
    this.deliver([...batch.records, { kind: 'direct', frame, bytes: frame.length, userId: undefined, hasDeps: false, ack: undefined, written: false }]);
  }

  /** Keeps the replies of an input as they go to the socket, bounded, in case the link breaks. */
  rememberSent(link: Link, batch: Batch): void {
    if (batch.inputTxn === undefined || batch.records.length === 0 || !this.state.options.acks) return;
    let bytes = 0;
    for (const record of batch.records) bytes += record.bytes;
    if (bytes > REPLAY_MEMORY_BYTES) return;
    link.sentReplies.push({ inputTxn: batch.inputTxn, records: batch.records, bytes });
    link.sentRepliesBytes += bytes;
    while (link.sentRepliesBytes > REPLAY_MEMORY_BYTES || link.sentReplies.length > REDELIVERY_MEMORY) {
      link.sentRepliesBytes -= link.sentReplies.shift()!.bytes;
    }
  }

  /**
   * The link broke: keeps what was not written for the next link, minus
   * what only meant something on this one (acks of its seqs, hello, pong),
   * and sets aside every reply to an input it did not get the ack of —
   * written to it, still queued, or finished but held behind a slower
   * event — to go out when that input is redelivered.
   *
   * Why not send the unwritten ones first thing on the next link: the
   * written ones can only go out at their input's redelivery (the
   * intermediary may have read them, ack included, and then it does not
   * redeliver), which comes after the resync and waits for the next link's
   * earlier events. Unwritten replies are replies to *later* input of the
   * same users, so sent at the resync they would overtake them: a user got
   * the answer to line 59 before those to lines 45-58. Every reply to
   * unacked input now leaves at its input's place in the redelivery, which
   * is in the order typed.
   */
  keepForNextLink(link: Link): void {
    const acks = this.state.options.acks;
    const aside: SentReply[] = [];
    const asideRecords = new Set<OutRecord>();
    for (const reply of link.sentReplies) {
      const written = reply.records.filter((record) => record.written).length;
      if (written === reply.records.length) aside.push(reply);
      else if (written === 0) {
        aside.push(reply);
        for (const record of reply.records) asideRecords.add(record);
      }
    }
    const held: OutRecord[] = [];
    for (const batch of link.tracker.takeHeld()) {
      if (batch.inputTxn === undefined || !acks) held.push(...batch.records);
      else if (batch.records.length > 0) aside.push(toReply(batch.inputTxn, batch.records));
    }
    const kept: OutRecord[] = [];
    for (const record of [...link.writeQueue, ...this.pending, ...held]) {
      record.ack = undefined;
      if (record.kind === 'app' && !asideRecords.has(record)) kept.push(record);
    }
    link.writeQueue = [];
    this.pending = kept;
    link.sentReplies = [];
    link.sentRepliesBytes = 0;
    for (const reply of aside) this.keepReplayable(reply);
  }

  /**
   * Replies of an input whose handlers finished after their link broke:
   * kept for its redelivery (see {@link keepForNextLink} for why not sent now).
   */
  setAside(batch: Batch): void {
    if (batch.inputTxn !== undefined && batch.records.length > 0) this.keepReplayable(toReply(batch.inputTxn, batch.records));
  }

  /**
   * After a resync: drops kept frames for users found gone, and hands the
   * rest to the link.
   */
  sendPending(goneIds: ReadonlySet<string>): void {
    const kept: OutRecord[] = [];
    const dropped: OutRecord[] = [];
    for (const record of this.pending) {
      if (record.userId !== undefined && goneIds.has(record.userId) && record.ack === undefined) dropped.push(record);
      else kept.push(record);
    }
    this.forget(dropped);
    this.pending = [];
    this.deliver(kept);
  }

  /** Drops everything not written (the client closed). */
  discard(link: Link | undefined): void {
    this.forget(this.pending);
    this.pending = [];
    if (link !== undefined) {
      this.forget(link.writeQueue);
      link.writeQueue = [];
    }
  }

  private keepReplayable(reply: SentReply): void {
    // Replies never written are no longer counted in `bytes` (like written
    // ones); a replay counts them again.
    this.forget(reply.records.filter((record) => !record.written));
    const previous = this.replayable.get(reply.inputTxn);
    if (previous !== undefined) {
      this.replayable.delete(reply.inputTxn);
      this.replayableBytes -= previous.bytes;
    }
    this.replayable.set(reply.inputTxn, reply);
    this.replayableBytes += reply.bytes;
    for (const [txn, oldest] of this.replayable) {
      if (this.replayableBytes <= REPLAY_MEMORY_BYTES && this.replayable.size <= REDELIVERY_MEMORY) break;
      this.replayable.delete(txn);
      this.replayableBytes -= oldest.bytes;
      // Never written: better out of order than lost.
      const unwritten = oldest.records.filter((record) => !record.written);
      for (const record of unwritten) this.bytes += record.bytes;
      this.deliver(unwritten);
    }
  }

  /** Whether replies of this input are set aside for its redelivery. */
  hasReplayable(inputTxn: string): boolean {
    return this.replayable.has(inputTxn);
  }

  /** The replies of a redelivered input that the intermediary did not take from a link that broke. */
  takeReplayable(inputTxn: string): SentReply | undefined {
    const reply = this.replayable.get(inputTxn);
    if (reply !== undefined) {
      this.replayable.delete(inputTxn);
      this.replayableBytes -= reply.bytes;
    }
    return reply;
  }
}

function toReply(inputTxn: string, records: OutRecord[]): SentReply {
  let bytes = 0;
  for (const record of records) bytes += record.bytes;
  return { inputTxn, records, bytes };
}
