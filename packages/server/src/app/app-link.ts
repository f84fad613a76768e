/**
 * One app connection: its frame decoder, its coalesced writes, its
 * handshake state and its `dep_txns` tracker.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { FrameDecoder, type MemorySocket, validateAppMessage, type AppMessage, type ImiErrorCode, type ProtocolError, type RemoteAddress } from '@imi/core';
import { DependencyTracker } from '../delivery/dep-tracker.js';
import type { AppInfo } from '../hooks.js';
import { ErrorBudget, summaryText } from '../ops/error-budget.js';
import { inWriteBatch } from '../users/write-batch.js';
import { frame } from './frames.js';

/**
 * Queued bytes past which an app link writes at once rather than at the end
 * of the event-loop turn (64 KiB: what the app's socket reads at a time).
 */
const WRITE_EARLY_BYTES = 64 * 1024;

/** A message queued as an object ({@link AppLink.sendMessage}), with what it weighs. */
interface QueuedMessage {
  readonly message: object;
  readonly weight: number;
}

/** Where an app connection is in its life. */
export type AppLinkPhase = 'handshake' | 'active' | 'retired' | 'closed';

/** What an {@link AppLink} tells its owner. */
export interface AppLinkHandlers {
  /** A valid message arrived. */
  onMessage(link: AppLink, message: AppMessage): void;
  /** A frame or message was rejected. */
  onProtocolError(link: AppLink, error: ProtocolError): void;
  /** The socket closed (for whatever reason). */
  onClose(link: AppLink, hadError: boolean): void;
  /** More than `maxBufferBytes` wait to be written: the app is not reading. */
  onOverflow(link: AppLink): void;
}

/** Per-link settings. */
export interface AppLinkSettings {
  /** Largest frame accepted. */
  maxFrameBytes: number;
  /** Most bytes allowed to wait in the socket's write buffer. */
  maxBufferBytes: number;
  /** Processed txn ids remembered. */
  processedTxnMemory: number;
  /** Messages held for `dep_txns` at most. */
  maxHeldMessages: number;
  /** `error` frames a second (`maxErrorFramesPerSecond`). */
  maxErrorFramesPerSecond: number;
  /** `error` frames at once (`errorFrameBurst`). */
  errorFrameBurst: number;
  /** When the summary of suppressed `error` frames comes, in ms after the first (`errorSummaryIntervalMs`). */
  errorSummaryIntervalMs: number;
}

/** An app connection. Exposed to hooks as {@link AppInfo}. */
export class AppLink implements AppInfo {
  readonly connectionId: number;
  readonly remote: RemoteAddress;
  name: string | undefined;
  acks = false;
  /** The `instance` the app gave in `hello` (a per-process id), if any. */
  instance: string | undefined;
  /** The session ids the app said it knows in `hello` (`known`), if it did: its resync leaves them out. */
  known: ReadonlySet<string> | undefined = undefined;
  phase: AppLinkPhase = 'handshake';
  /** When the app last sent anything (ms). */
  lastHeardAt: number;
  /** Set while waiting for `hello`. */
  handshakeTimer: NodeJS.Timeout | undefined;
  readonly deps: DependencyTracker<AppMessage>;

  /** The app's socket (a handover stops reading it while frozen). */
  readonly socket: Socket;
  private readonly decoder: FrameDecoder<AppMessage>;
  private readonly handlers: AppLinkHandlers;
  private readonly maxBufferBytes: number;
  private readonly errorBudget: ErrorBudget;
  /** `error` frames not sent because of `maxErrorFramesPerSecond` (each was told in a summary). */
  errorFramesSuppressed = 0;
  private pending: Array<string | QueuedMessage> = [];
  /** About the bytes in {@link pending} (a string's length, a message's weight). */
  private pendingBytes = 0;
  /**
   * The socket takes messages as objects (a `MemorySocket` of `@imi/core`:
   * the in-process link of a cluster holder): the hot events go without
   * JSON ({@link sendMessage}).
   */
  readonly takesMessages: boolean;
  private flushScheduled = false;
  private resolveClosed!: () => void;
  /** Resolves once the socket has closed. */
  readonly closed = new Promise<void>((resolve) => {
    this.resolveClosed = resolve;
  });

  constructor(connectionId: number, socket: Socket, settings: AppLinkSettings, handlers: AppLinkHandlers) {
    this.connectionId = connectionId;
    this.socket = socket;
    this.takesMessages = typeof (socket as unknown as Partial<MemorySocket>).writeMessage === 'function';
    this.handlers = handlers;
    this.maxBufferBytes = settings.maxBufferBytes;
    this.remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    this.lastHeardAt = Date.now();
    this.deps = new DependencyTracker(settings.processedTxnMemory, settings.maxHeldMessages);
    this.errorBudget = new ErrorBudget(
      { perSecond: settings.maxErrorFramesPerSecond, burst: settings.errorFrameBurst, summaryIntervalMs: settings.errorSummaryIntervalMs, perCode: false },
      (code, suppressed, windowMs) => {
        // An `error` like any other (code, message) for an app that knows
        // nothing of summaries; `suppressed` for one that does.
        if (this.phase === 'closed' || this.phase === 'retired') return;
        this.send(frame({ param: 'error', data: { code, message: summaryText(code, suppressed, windowMs), suppressed } }));
      },
    );
    this.decoder = new FrameDecoder<AppMessage>(
      { validate: validateAppMessage, maxFrameBytes: settings.maxFrameBytes },
      {
        onMessage: (message) => {
          if (this.phase === 'closed' || this.phase === 'retired') return;
          this.handlers.onMessage(this, message);
        },
        onError: (error) => {
          if (this.phase === 'closed' || this.phase === 'retired') return;
          this.handlers.onProtocolError(this, error);
        },
      },
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.lastHeardAt = Date.now();
      // The users written to by this chunk's frames are uncorked once it is handled (see write-batch.ts).
      inWriteBatch(this.decodeChunk, chunk);
    });
    socket.on('error', () => {
      // 'close' follows with hadError; the owner reports it there.
    });
    socket.on('close', (hadError) => {
      const wasOpen = this.phase !== 'closed';
      this.phase = 'closed';
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      this.errorBudget.stop();
      if (wasOpen || hadError) this.handlers.onClose(this, hadError);
      this.resolveClosed();
    });
  }

  private readonly decodeChunk = (chunk: Buffer): void => {
    this.decoder.write(chunk);
  };

  /** Whether a frame from the app has begun and not ended (the handshake waits for a first frame that has begun). */
  get midFrame(): boolean {
    return this.decoder.inFrame;
  }

  /** Whether the frame under way is already over `maxFrameBytes` (a first one is refused before it ends). */
  get midOversizedFrame(): boolean {
    return this.decoder.inOversizedFrame;
  }

  /** Whether the socket can still be written to. */
  get writable(): boolean {
    return this.phase !== 'closed' && !this.socket.destroyed && this.socket.writable;
  }

  /** Bytes waiting to be written (queued this turn plus the socket's buffer). */
  get bufferedBytes(): number {
    return this.pendingBytes + this.socket.writableLength;
  }

  /**
   * Queues a frame; every frame queued in one event-loop turn goes out in a
   * single write (no Nagle delay, no write per message).
   */
  send(frame: string): void {
    if (!this.writable) return;
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    this.queued();
  }

  /**
   * Schedules the turn's write, or writes now once {@link WRITE_EARLY_BYTES}
   * are queued: a resync of 10,000 users queues megabytes in one turn, and the
   * app (another process, on another core) can parse the first frames while
   * the rest are built, instead of waiting for the whole resync.
   */
  private queued(): void {
    if (this.pendingBytes >= WRITE_EARLY_BYTES) {
      this.flush();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Queues a message as the object itself, in order with the frames, for a
   * socket that {@link takesMessages} (the caller checks).
   *
   * @param message - the message (not touched afterwards)
   * @param weight - about its frame's length, in bytes
   */
  sendMessage(message: object, weight: number): void {
    if (!this.writable) return;
    this.pending.push({ message, weight });
    this.pendingBytes += weight;
    this.queued();
  }

  /**
   * Queues an `error` frame, within `maxErrorFramesPerSecond`: past it the
   * frame is only counted, and a summary per code follows after
   * `errorSummaryIntervalMs`. The caller has reported the error already.
   */
  sendError(code: ImiErrorCode, message: string, txnId?: string): void {
    if (!this.writable) return;
    if (!this.errorBudget.take(code)) {
      this.errorFramesSuppressed++;
      return;
    }
    const data: { code: ImiErrorCode; message: string; txn_id?: string } = { code, message };
    if (txnId !== undefined) data.txn_id = txnId;
    this.send(frame({ param: 'error', data }));
  }

  /** Writes what is queued now. */
  readonly flush = (): void => {
    this.flushScheduled = false;
    this.pendingBytes = 0;
    if (this.pending.length === 0 || !this.writable) {
      this.pending = [];
      return;
    }
    if (this.takesMessages) {
      this.flushMixed();
    } else {
      const data = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
      this.pending = [];
      this.socket.write(data as string);
    }
    if (this.socket.writableLength > this.maxBufferBytes) this.handlers.onOverflow(this);
  };

  /** Writes frames and message objects in the order they were queued. */
  private flushMixed(): void {
    const socket = this.socket as unknown as MemorySocket;
    const pending = this.pending;
    this.pending = [];
    let frames = '';
    for (const item of pending) {
      if (typeof item === 'string') {
        frames += item;
        continue;
      }
      if (frames !== '') socket.write(frames);
      frames = '';
      socket.writeMessage(item.message, item.weight);
    }
    if (frames !== '') socket.write(frames);
  }

  /** Flushes, then closes the connection gracefully. */
  end(lastFrame?: string): void {
    if (lastFrame !== undefined) this.send(lastFrame);
    this.flush();
    if (this.phase !== 'closed') this.socket.end();
  }

  /** Closes the connection at once, dropping anything unwritten. */
  destroy(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.socket.destroy();
  }

  /** Stops reading and listening; used on replace before the close. */
  retire(): void {
    if (this.phase !== 'closed') this.phase = 'retired';
    this.errorBudget.stop();
  }
}
