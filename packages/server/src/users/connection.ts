/**
 * One user connection on the intermediary: the channel its transport gives
 * (a socket, a telnet session, a WebSocket), its line splitter, and what the
 * input rate holds back. Its pending input lives in the input ledger
 * (`delivery/`), keyed by its id.
 *
 * @module
 */
import type { ImiError, JsonObject, RemoteAddress, SessionRecord, TelnetInfo } from '@imi/core';
import { Fifo } from '../delivery/fifo.js';
import type { Session } from '../hooks.js';
import type { TokenBucket } from './admission.js';
import { LineSplitter, type LineSink, type LineState } from './line-splitter.js';
import type { ChannelSink, UserChannel } from './transport.js';
import { uncorkSoon } from './write-batch.js';

/** A line held back by the input rate limit. */
export interface DelayedLine {
  /** The line. */
  readonly line: string;
  /** Whether it was cut at `maxLineBytes`. */
  readonly truncated: boolean;
  /** Its size on the wire. */
  readonly bytes: number;
}

/** What a {@link Connection} asks of its owner. */
export interface ConnectionOwner {
  /** A line arrived. */
  onLine(connection: Connection, line: string, truncated: boolean, bytes: number): void;
  /** The channel closed. */
  onConnectionClosed(connection: Connection): void;
  /** Close was asked for: the user is gone for the app from now on, while the socket flushes. */
  onConnectionClosing(connection: Connection): void;
  /** The user's input ended (a half-close); their unfinished line was just delivered. */
  onInputEnded(connection: Connection): void;
  /** How long a closing connection may take to flush before it is destroyed, in ms (`closeTimeoutMs`). */
  readonly closeTimeoutMs: number;
  /** Text is about to be written: returns what to write (the `output` hook). */
  transformOutput(connection: Connection, text: string): string;
  /** The user is not reading and their buffer passed the limit. */
  onSlowReader(connection: Connection): void;
  /** The channel's telnet info changed. */
  onTelnetChanged(connection: Connection): void;
  /** A GMCP message (or, with `protocol` `"msdp"`, an MSDP variable) arrived from the user's client. */
  onGmcp(connection: Connection, packageName: string, json: string, protocol?: 'msdp'): void;
  /** The user's client broke its protocol; the channel recovered (count and log it). */
  onFault(connection: Connection, error: ImiError): void;
}

/** Connections keep their input time relative to this (ms since the epoch when the module loaded). */
const INPUT_TIME_BASE = Date.now();

/** The bits of {@link Connection}'s `flags`. */
const enum Flag {
  Accepted = 1,
  Closing = 2,
  ToldQueueFull = 4,
  ToldRateLimit = 8,
  InputEnded = 16,
  AwaitingReply = 32,
  Admitted = 64,
  TelnetNotifyScheduled = 128,
  Corked = 256,
  Forgotten = 512,
}

/**
 * A user connection. Hooks see it as a {@link Session}; its channel reports
 * to it (it is the channel's {@link ChannelSink}), and so does its line
 * splitter (it is its {@link LineSink}: no closure per user).
 */
export class Connection implements Session, ChannelSink, LineSink {
  readonly record: SessionRecord;
  /** The reason the app will be told when the connection ends. */
  closeReason = 'closed';
  /** The app connection id this user was last announced to (0: none). */
  announcedTo = 0;
  /** The input rate bucket, when `inputRatePerSession` applies to this user (not loopback, unless `limitLoopback`). */
  inputBucket: TokenBucket | undefined;
  /** Lines held back by the input rate, oldest first (reading is paused while any wait). Made on first use: most users are never held back. */
  private delayed: Fifo<DelayedLine> | undefined;
  /** Fires when the next delayed line may go. */
  delayTimer: NodeJS.Timeout | undefined;
  /**
   * When the user last sent a line, in ms after {@link INPUT_TIME_BASE}: a small integer, stored in the object,
   * where ms since the epoch (past 2^31) would be a 16-byte heap number per user.
   */
  private inputAt: number;
  /** The telnet info as last told to the app (JSON), so only real changes are sent. */
  telnetSent: string | undefined;
  /**
   * Resolves once the channel's opening negotiation is over (telnet), when
   * the user must not be announced before; undefined otherwise.
   */
  readonly negotiation: Promise<void> | undefined;

  private readonly channel: UserChannel;
  private readonly owner: ConnectionOwner;
  /** Made at the first byte the user sends: an idle user costs no splitter (see {@link lines}). */
  private splitter: LineSplitter | undefined;
  private readonly maxLineBytes: number;
  private readonly maxOutputBufferBytes: number;
  private closeTimer: NodeJS.Timeout | undefined;
  /** Made only when someone waits for the close (`close()` of the intermediary): an idle user then costs no promise and no resolver. */
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  /** The yes/no state, one bit each ({@link Flag}): ten boolean fields cost 72 B more per user. */
  private flags = 0;

  private has(flag: Flag): boolean {
    return (this.flags & flag) !== 0;
  }

  private put(flag: Flag, value: boolean): void {
    this.flags = value ? this.flags | flag : this.flags & ~flag;
  }

  /** Set once the `connect` hook let the user in. */
  get accepted(): boolean {
    return this.has(Flag.Accepted);
  }
  set accepted(value: boolean) {
    this.put(Flag.Accepted, value);
  }

  /** Set once close was asked for or the socket closed. */
  get closing(): boolean {
    return this.has(Flag.Closing);
  }
  set closing(value: boolean) {
    this.put(Flag.Closing, value);
  }

  /** Whether the user was told their queue overflowed (once per outage). */
  get toldQueueFull(): boolean {
    return this.has(Flag.ToldQueueFull);
  }
  set toldQueueFull(value: boolean) {
    this.put(Flag.ToldQueueFull, value);
  }

  /** Whether the user was told lines were dropped, in the current burst. */
  get toldRateLimit(): boolean {
    return this.has(Flag.ToldRateLimit);
  }
  set toldRateLimit(value: boolean) {
    this.put(Flag.ToldRateLimit, value);
  }

  /** Set once the user half-closed: no more input will come. */
  get inputEnded(): boolean {
    return this.has(Flag.InputEnded);
  }
  set inputEnded(value: boolean) {
    this.put(Flag.InputEnded, value);
  }

  /** Set when a line of this user went to an app (or was queued for one) that has not answered it yet. */
  get awaitingReply(): boolean {
    return this.has(Flag.AwaitingReply);
  }
  set awaitingReply(value: boolean) {
    this.put(Flag.AwaitingReply, value);
  }

  /** Set when the admission counted this connection (so it is released once). */
  get admitted(): boolean {
    return this.has(Flag.Admitted);
  }
  set admitted(value: boolean) {
    this.put(Flag.Admitted, value);
  }

  /** Set while a `telnet` message to the app is scheduled. */
  get telnetNotifyScheduled(): boolean {
    return this.has(Flag.TelnetNotifyScheduled);
  }
  set telnetNotifyScheduled(value: boolean) {
    this.put(Flag.TelnetNotifyScheduled, value);
  }

  private get isCorked(): boolean {
    return this.has(Flag.Corked);
  }
  private set isCorked(value: boolean) {
    this.put(Flag.Corked, value);
  }

  private get isForgotten(): boolean {
    return this.has(Flag.Forgotten);
  }
  private set isForgotten(value: boolean) {
    this.put(Flag.Forgotten, value);
  }

  /** Lines held back by the input rate, oldest first (reading is paused while any wait). */
  get delayedLines(): Fifo<DelayedLine> {
    return (this.delayed ??= new Fifo<DelayedLine>());
  }

  /** How many lines the input rate holds back (makes no queue). */
  get delayedCount(): number {
    return this.delayed === undefined ? 0 : this.delayed.length;
  }

  /** Resolves once the connection is closed and forgotten by the intermediary. */
  get closed(): Promise<void> {
    if (this.closedPromise === undefined) {
      this.closedPromise = this.isForgotten ? Promise.resolve() : new Promise<void>((resolve) => (this.resolveClosed = resolve));
    }
    return this.closedPromise;
  }

  constructor(channel: UserChannel, record: SessionRecord, owner: ConnectionOwner, maxLineBytes: number, maxOutputBufferBytes: number) {
    this.channel = channel;
    this.record = record;
    this.owner = owner;
    this.maxOutputBufferBytes = maxOutputBufferBytes;
    this.inputAt = Date.now() - INPUT_TIME_BASE;
    this.maxLineBytes = maxLineBytes;
    this.negotiation = channel.attach(this) ?? undefined;
  }

  private lines(): LineSplitter {
    return (this.splitter ??= new LineSplitter(this.maxLineBytes, this));
  }

  /** When the user last sent a line (ms since the epoch). */
  get lastInputAt(): number {
    return INPUT_TIME_BASE + this.inputAt;
  }

  set lastInputAt(at: number) {
    this.inputAt = at - INPUT_TIME_BASE;
  }

  /** A line from the splitter. */
  onLine(line: string, truncated: boolean, bytes: number): void {
    if (!this.closing) this.owner.onLine(this, line, truncated, bytes);
  }

  // ------------------------------------------------ what the channel reports

  /** Input bytes from the channel. */
  onData(bytes: Buffer): void {
    this.record.counters.bytesIn += bytes.length;
    this.lines().write(bytes);
  }

  /** The user threw away the line being typed (Ctrl-C under SSH). */
  onDiscardLine(): void {
    this.splitter?.discard();
  }

  /** The user half-closed: their unfinished line is a line; the owner decides when to close. */
  onEnd(): void {
    if (this.closing || this.inputEnded) return;
    this.inputEnded = true;
    this.splitter?.end();
    this.owner.onInputEnded(this);
  }

  /** The channel failed. */
  onError(reason: string): void {
    // After a half-close the user had left already: a failure while we wait for their reply is their going.
    if (!this.closing && !this.inputEnded) this.closeReason = reason;
  }

  /** The channel closed. */
  onClose(): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.closing = true;
    this.owner.onConnectionClosed(this);
  }

  /** The channel's metadata changed. */
  onMetadata(): void {
    this.owner.onTelnetChanged(this);
  }

  /** A GMCP message from the user's client. */
  onGmcp(packageName: string, json: string, protocol?: 'msdp'): void {
    if (!this.closing) this.owner.onGmcp(this, packageName, json, protocol);
  }

  /** The user's client broke its protocol; the channel recovered. */
  onFault(error: ImiError): void {
    this.owner.onFault(this, error);
  }

  get id(): string {
    return this.record.id;
  }
  get transport(): string {
    return this.record.transport;
  }
  get remote(): RemoteAddress {
    return this.record.remote;
  }
  get connectedAt(): number {
    return this.record.connectedAt;
  }
  get state(): Readonly<JsonObject> {
    return this.record.state;
  }
  get open(): boolean {
    return !this.closing && !this.channel.destroyed;
  }
  get telnet(): Readonly<TelnetInfo> | undefined {
    return this.channel.telnet;
  }

  /** Bytes waiting in the channel's write buffer. */
  get outputBufferedBytes(): number {
    return this.channel.writableLength;
  }

  /** Bytes held for an unfinished input line. */
  get inputBufferedBytes(): number {
    return this.splitter?.bufferedBytes ?? 0;
  }

  /** The channel the user is on (a snapshot reads its transport state). */
  get userChannel(): UserChannel {
    return this.channel;
  }

  /** The line splitter's unfinished line (for a session snapshot). */
  lineState(): LineState {
    return this.lines().exportState();
  }

  /** Puts back an unfinished line taken from a snapshot (before any byte is read). */
  restoreLineState(state: LineState): void {
    this.lines().importState(state);
  }

  /** Stops reading (while the `connect` hook runs). */
  pause(): void {
    this.channel.pause();
  }

  /** Resumes reading. */
  resume(): void {
    this.channel.resume();
  }

  /**
   * Writes text through the `output` hook.
   *
   * @param prompt - the text is a prompt: telnet users' clients are told
   *   where it ends ({@link UserChannel.markPrompt}), also for an empty text;
   *   not when the hook dropped the text
   */
  write(text: string, prompt = false): void {
    if (!this.open) return;
    if (text.length > 0) {
      const out = this.owner.transformOutput(this, text);
      if (out.length === 0) return;
      this.writeRaw(out);
    }
    if (prompt && this.channel.markPrompt !== undefined) {
      if (!this.isCorked) this.cork();
      this.channel.markPrompt();
    }
  }

  /** Writes without the output hook (notices from the intermediary itself still go through {@link write}). */
  writeRaw(text: string): void {
    if (!this.open) return;
    // Cork so every write to this user in one tick leaves in one packet.
    if (!this.isCorked) this.cork();
    this.channel.write(text);
    const counters = this.record.counters;
    counters.writesOut++;
    counters.bytesOut += Buffer.byteLength(text);
  }

  /**
   * Telnet: hides (`false`) or shows (`true`) what the user types.
   *
   * @returns false when the user's transport cannot (not telnet)
   */
  setEcho(visible: boolean): boolean {
    if (!this.open || this.channel.setEcho === undefined) return false;
    if (!this.isCorked) this.cork();
    return this.channel.setEcho(visible);
  }

  /**
   * Telnet: sends a GMCP message, in order with the text written in the same tick.
   *
   * @returns false when GMCP is not on for this user
   */
  sendGmcp(packageName: string, json: string | undefined, protocol?: 'gmcp' | 'msdp'): boolean {
    if (!this.open || this.channel.sendGmcp === undefined) return false;
    if (!this.isCorked) this.cork();
    return this.channel.sendGmcp(packageName, json, protocol);
  }

  close(farewell?: string, reason = 'kicked'): void {
    if (this.closing) return;
    if (farewell !== undefined && farewell.length > 0) this.write(farewell);
    this.closing = true;
    this.closeReason = reason;
    this.channel.end();
    // A peer that never closes its side, or never reads, would keep the socket forever.
    this.closeTimer = setTimeout(() => this.channel.destroy(), this.owner.closeTimeoutMs);
    this.closeTimer.unref();
    this.owner.onConnectionClosing(this);
  }

  /** Closes at once, dropping unwritten output. */
  destroy(reason: string): void {
    if (!this.closing) {
      this.closing = true;
      this.closeReason = reason;
    }
    this.channel.destroy();
  }

  /** Called by the intermediary once it has forgotten this connection. */
  markClosed(): void {
    this.isForgotten = true;
    this.resolveClosed?.();
  }

  private cork(): void {
    this.isCorked = true;
    this.channel.cork();
    uncorkSoon(this);
  }

  /** Ends this tick's cork (every write of the tick leaves together), then checks for a slow reader. */
  uncorkNow(): void {
    this.isCorked = false;
    this.channel.uncork();
    // Measured after the kernel took what it could: while corked, writableLength
    // counts this tick's output too, which would cut off a user who reads fine
    // but got a burst bigger than the limit.
    if (!this.closing && this.channel.writableLength > this.maxOutputBufferBytes) this.owner.onSlowReader(this);
  }
}
