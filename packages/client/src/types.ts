/**
 * The records the client's parts pass to one another: frames on their way
 * out, the batch an event's handlers fill, and one connection to the
 * intermediary. Plain data, no behaviour, so every part can depend on this
 * file without depending on another part.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { FrameDecoder, ImiError, IntermediaryMessage } from '@imi/core';
import type { AckTracker } from './ack-tracker.js';

/**
 * A frame on its way out. `app` frames are what the app sends (counted in
 * `maxOutgoingBytes`, kept across a link outage); `ack` frames are lone
 * acks and `direct` ones are `hello`/`pong`: both belong to one link only.
 */
export interface OutRecord {
  readonly kind: 'app' | 'ack' | 'direct';
  /** Encoded, `\n`-terminated, without `ack`. */
  readonly frame: string;
  readonly bytes: number;
  /** The user the frame is for (`output`, `disconnect`, `state`), so frames for users gone meanwhile can be dropped. */
  readonly userId: string | undefined;
  /** Has `dep_txns`: the intermediary may hold it, so it never carries an ack. */
  readonly hasDeps: boolean;
  /** The cumulative ack to add when writing, set only for the link it was computed on. */
  ack: number | undefined;
  /** Handed to a socket (so possibly lost if that link broke). */
  written: boolean;
}

/** What an event's handlers sent while it was being handled: written together with its ack. */
export interface Batch {
  readonly generation: number;
  readonly records: OutRecord[];
  closed: boolean;
  /** The `txn_id` of the input it answers, if it answers one. */
  readonly inputTxn: string | undefined;
  /** The event's `seq` (acks on), for a per-event ack (`done`) on a link that takes them. */
  readonly seq: number | undefined;
}

/** Replies written on a link, kept in case that link breaks before the intermediary read them. */
export interface SentReply {
  readonly inputTxn: string;
  readonly records: OutRecord[];
  readonly bytes: number;
}

/** One TCP connection to the intermediary. */
export interface Link {
  readonly generation: number;
  readonly socket: Socket;
  readonly decoder: FrameDecoder<IntermediaryMessage>;
  readonly tracker: AckTracker<Batch>;
  state: 'connecting' | 'resyncing' | 'up';
  /** Users announced by this link's resync (cleared once it is done). */
  announced: Set<string>;
  /** Of those, the ones this process did not know: `synced` waits for their `connect` handlers. */
  announcedNew: Set<string>;
  /** The session ids this link's `hello` said the app knows (`known`), if it listed them, less those told gone during the resync: a resync with `known: true` keeps them. */
  knownSent: Set<string> | undefined;
  /** The link ends for a reason the next one avoids (its hello named users and was refused or not answered): reconnect without delay. */
  retryAtOnce: boolean;
  /** Set once `linkUp` was emitted, so `linkDown` pairs with it. */
  announcedUp: boolean;
  writeQueue: OutRecord[];
  /** Replies released on this link, newest last, bounded by `REPLAY_MEMORY_BYTES` and `REDELIVERY_MEMORY`. */
  sentReplies: SentReply[];
  sentRepliesBytes: number;
  flushScheduled: boolean;
  waitingDrain: boolean;
  paused: boolean;
  /** An `error` frame that ends this client (auth, replaced, busy): no reconnect. */
  fatal: ImiError | undefined;
  /** Why the link is going down, when known before the socket closes. */
  downReason: ImiError | undefined;
  lastSocketError: Error | undefined;
  shutdownReason: string | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  holdTimer: NodeJS.Timeout | undefined;
  /** The peer said `eventAcks` in `synced` (the cluster worker's gateway): a reply finished behind a slower event goes at once with `done`. */
  eventAcks: boolean;
  /** Ends a resync that never gets `synced` (an original Perl intermediary); see `legacySyncWaitMs`. */
  syncTimer: NodeJS.Timeout | undefined;
}
