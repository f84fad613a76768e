/**
 * One WebSocket user. The session outlives its connection when the client
 * speaks `imi.v1` and resumes are on: a connection that drops without a
 * normal close (a network change, a dead link, a TLS connection an upgrade
 * cannot pass) *parks* the session for `wsResumeWindowMs` — the app hears
 * nothing — and a new connection presenting the session's token takes its
 * place: the output the client missed is replayed from a bounded log, and
 * the client is told how many of its lines arrived so it resends the rest.
 *
 * @module
 */
import type { Duplex } from 'node:stream';
import { ImiError, LimitError, type RemoteAddress } from '@imi/core';
import type { RawData, WebSocket } from 'ws';
import type { SnapshotWs } from '../session/snapshot.js';
import { NULL_SINK, type ChannelSink, type UserChannel } from './transport.js';
import { OutputLog, WS_CLOSE_CODES, type WsResumeSettings } from './ws-resume.js';

/**
 * The WebSocket subprotocol a client offers (`new WebSocket(url, 'imi.v1')`)
 * to get control messages: binary frames holding one UTF-8 JSON object
 * each, e.g. `{"type":"echo","visible":false}`. Output stays text frames;
 * clients must ignore control messages of a `type` they do not know.
 */
export const WS_CONTROL_PROTOCOL = 'imi.v1';
const LF = 0x0a;
const LINE_END = Buffer.from('\n');
/** The close code of a normal close: the user meant to leave, the session ends. */
const NORMAL_CLOSURE = 1000;
/** Sent to users whose connection an upgrade cannot pass (TLS): they resume on the successor. */
const SERVICE_RESTART = 1012;

/** What a channel is made with. */
export interface WsChannelInfo {
  /** `ws` or `ws+tls`. */
  transport: string;
  remote: RemoteAddress;
  /** The negotiated subprotocol (`''`: none). */
  protocol: string;
  /** The listener's `maxPayloadBytes` (kept for a successor). */
  maxPayload: number;
  /** The listener's `pingIntervalMs`; 0: no pings. */
  pingIntervalMs: number;
}

/** The outcome of {@link WsChannel.reattach}. */
export type ReattachOutcome = 'resumed' | 'bad-count' | 'output-lost';

/** A WebSocket user: one text message is one line; output is text messages; control messages are binary. */
export class WsChannel implements UserChannel {
  readonly transport: string;
  readonly remote: RemoteAddress;
  readonly telnet = undefined;
  /** The negotiated subprotocol. */
  readonly protocol: string;
  /** The listener's `maxPayloadBytes`. */
  readonly maxPayload: number;
  /** The listener's `pingIntervalMs`. */
  readonly pingIntervalMs: number;
  /** Whether the peer answered (or sent anything) since the last ping. */
  alive = true;
  /** Whether the app shows what the user types (echo on). */
  echoVisible = true;
  /** Input (line) messages received in the session, over every connection: a resuming client resends what came after. */
  received = 0;
  /** Whether the peer negotiated {@link WS_CONTROL_PROTOCOL} (it understands control messages). */
  readonly control: boolean;
  /** The current connection (undefined while parked). */
  ws: WebSocket | undefined;
  /** The stream under {@link ws} (a TCP or TLS socket). */
  socket: Duplex | undefined;
  /** When the parked session ends, in ms since the epoch (undefined while connected). */
  parkedUntil: number | undefined;
  /** The hash of the session's current token. */
  tokenHash: string | undefined;
  /**
   * Called when what a crash journal keeps of the session changed: `count`
   * when only {@link received} moved (a line arrived), `state` for the
   * token, parking or echo. Set by `--supervise`'s worker journal.
   */
  onResumeStateChange: ((what: 'count' | 'state') => void) | undefined;
  /** Restored after a crash: the first resume takes the client's output count as the start of the log. */
  private rebaseOnResume = false;
  private readonly resumeSettings: WsResumeSettings | undefined;
  private readonly log: OutputLog | undefined;
  /** Whether we stopped reading: the peer's pongs then wait unread, so its silence proves nothing. */
  private paused = false;
  private sink: ChannelSink = NULL_SINK;
  /** The intermediary asked for the close: a drop now ends the session. */
  private ending = false;
  /** The close code of {@link end}: 1000, or 1012 after {@link endForRestart}. */
  private endCode = NORMAL_CLOSURE;
  /** The connection broke the protocol (too big a message, bad UTF-8): no resume. */
  private failed = false;
  /** onClose was reported. */
  private finished = false;
  /** An upgrade froze the session: no expiry, no pings. */
  private held = false;
  private parkTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private corkedSocket: Duplex | undefined;

  /**
   * @param ws - the connection, or undefined for a session restored parked
   * @param socket - the stream under it
   * @param resume - resume settings; undefined or a 0 window: the session ends with its connection
   */
  constructor(ws: WebSocket | undefined, socket: Duplex | undefined, info: WsChannelInfo, resume: WsResumeSettings | undefined) {
    this.transport = info.transport;
    this.remote = info.remote;
    this.protocol = info.protocol;
    this.maxPayload = info.maxPayload;
    this.pingIntervalMs = info.pingIntervalMs;
    this.control = info.protocol === WS_CONTROL_PROTOCOL;
    this.resumeSettings = this.control && resume !== undefined && resume.windowMs > 0 ? resume : undefined;
    this.log = this.resumeSettings === undefined ? undefined : new OutputLog(this.resumeSettings.bufferBytes);
    if (ws !== undefined) this.bind(ws, socket!);
    if (this.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.keepAlive(), this.pingIntervalMs);
      this.pingTimer.unref();
    }
  }

  /** Whether the session can be resumed with a token. */
  get resumable(): boolean {
    return this.resumeSettings !== undefined;
  }

  get writableLength(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  get destroyed(): boolean {
    return this.finished || (this.ws !== undefined && this.ws.readyState === this.ws.CLOSED && !this.resumable);
  }

  attach(sink: ChannelSink): void {
    this.sink = sink;
    // A restored session has its token already; a new one gets its first.
    if (this.resumeSettings !== undefined && this.tokenHash === undefined) this.sendSession(false);
  }

  write(text: string): void {
    if (this.finished) return;
    if (this.log !== undefined && !this.log.push(text) && this.ws === undefined) {
      // Parked, and what the client has not seen no longer fits: it could not be replayed whole.
      const settings = this.resumeSettings!;
      settings.report(new LimitError('wsResumeBufferBytes', settings.bufferBytes, 'output for a disconnected WebSocket user overflowed the resume buffer; the session is closed'));
      process.nextTick(() => this.finish());
      return;
    }
    this.ws?.send(text);
  }

  cork(): void {
    this.corkedSocket = this.socket;
    this.corkedSocket?.cork();
  }

  uncork(): void {
    this.corkedSocket?.uncork();
    this.corkedSocket = undefined;
  }

  pause(): void {
    this.paused = true;
    this.ws?.pause();
  }

  resume(): void {
    this.paused = false;
    this.ws?.resume();
  }

  /**
   * Hides (`false`) or shows (`true`) what the user types: a control message
   * `{"type":"echo","visible":…}` in a binary frame, for a peer that
   * negotiated {@link WS_CONTROL_PROTOCOL} (the browser page does). Kept
   * and sent again after a resume.
   *
   * @returns false when the peer did not negotiate it (nothing is sent)
   */
  setEcho(visible: boolean): boolean {
    if (!this.control || this.finished) return false;
    this.echoVisible = visible;
    this.onResumeStateChange?.('state');
    this.sendControl({ type: 'echo', visible });
    return true;
  }

  /**
   * A handover froze this socket (it is not read any more), so the client's
   * answering close frame, which `ws` waits for, would never be seen: the
   * close is done once ours is in the kernel.
   */
  private terminateWhenFlushed(ws: WebSocket): void {
    const socket = this.socket as (Duplex & { writableLength?: number }) | undefined;
    if (socket === undefined || (socket.writableLength ?? 0) === 0) setImmediate(() => ws.terminate());
    else socket.once('drain', () => ws.terminate());
  }

  /**
   * Ends with close code 1012 (service restart: the IANA WebSocket
   * close-code registry, RFC 6455 section 7.4.2) instead of 1000: the user
   * cannot be kept across an upgrade or a planned restart (TLS, or a plain
   * client that cannot resume), and the server will be back.
   */
  endForRestart(): void {
    this.endCode = SERVICE_RESTART;
  }

  end(): void {
    this.ending = true;
    if (this.ws !== undefined) {
      this.ws.close(this.endCode);
      if (this.endCode === SERVICE_RESTART) this.terminateWhenFlushed(this.ws);
    }
    else process.nextTick(() => this.finish());
  }

  destroy(): void {
    this.ending = true;
    if (this.ws !== undefined) this.ws.terminate();
    else process.nextTick(() => this.finish());
  }

  /** Pings, or drops a connection that did not answer the previous ping (the session parks when it can, else ends as `timeout`). */
  keepAlive(): void {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== ws.OPEN || this.held) return;
    if (this.paused) {
      // Reading is stopped (the connect hook, the input rate): a pong would
      // sit unread. Judge the peer again once we read.
      this.alive = true;
      return;
    }
    if (!this.alive) {
      if (this.resumeSettings === undefined) this.sink.onError('timeout');
      ws.terminate();
      return;
    }
    this.alive = false;
    ws.ping();
  }

  /**
   * A resuming client's connection takes the session's place: a live one
   * is dropped (its client moved on), the client gets a new token and the
   * count of its lines that arrived, then the echo state and the output it
   * missed.
   *
   * @param received - output messages the client has
   */
  reattach(ws: WebSocket, socket: Duplex, received: number): ReattachOutcome {
    if (this.rebaseOnResume) {
      // What the dead process sent past the journal is lost; what came since the restart is all unseen.
      this.rebaseOnResume = false;
      this.log!.rebase(received);
    }
    const missed = this.log!.since(received);
    if (missed === undefined) return received > this.log!.sent ? 'bad-count' : 'output-lost';
    this.detach()?.terminate();
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    this.parkTimer = undefined;
    this.parkedUntil = undefined;
    this.alive = true;
    this.bind(ws, socket);
    this.onResumeStateChange?.('state');
    this.sendSession(true);
    // Always: the app may have changed it while the client was away.
    this.sendControl({ type: 'echo', visible: this.echoVisible });
    this.log!.ack(received);
    for (const text of missed) ws.send(text);
    return 'resumed';
  }

  /** The session's resume state, for a snapshot. */
  snapshot(): SnapshotWs {
    return {
      protocol: this.protocol,
      maxPayload: this.maxPayload,
      pingIntervalMs: this.pingIntervalMs,
      alive: this.alive,
      echoVisible: this.echoVisible,
      received: this.received,
      sent: this.log?.sent ?? 0,
      kept: this.log?.all() ?? [],
      tokenHash: this.tokenHash ?? null,
      parkedUntil: this.parkedUntil ?? null,
      ...(this.rebaseOnResume ? { rebase: true } : {}),
    };
  }

  /**
   * The resume state a crash journal keeps: {@link snapshot} without the
   * output log (`kept` empty, `sent` 0), which the journal does not hold.
   */
  journalState(): SnapshotWs {
    return {
      protocol: this.protocol,
      maxPayload: this.maxPayload,
      pingIntervalMs: this.pingIntervalMs,
      alive: true,
      echoVisible: this.echoVisible,
      received: this.received,
      sent: 0,
      kept: [],
      tokenHash: this.tokenHash ?? null,
      parkedUntil: this.parkedUntil ?? null,
    };
  }

  /**
   * The session was restored from a crash journal (no output log): the
   * client's output count at its next resume becomes the log's start, so
   * output kept since the restart is replayed and the count never refused.
   */
  restoredAfterCrash(): void {
    this.rebaseOnResume = this.log !== undefined;
  }

  /** Puts back a snapshot's resume state (a restored session, before it is attached). */
  load(state: SnapshotWs): void {
    this.alive = state.alive;
    this.echoVisible = state.echoVisible;
    this.received = state.received;
    this.log?.load(state.sent, state.kept);
    if (state.rebase === true) this.restoredAfterCrash();
    if (this.resumeSettings !== undefined && state.tokenHash !== null) {
      this.tokenHash = state.tokenHash;
      this.resumeSettings.tokens.restore(state.tokenHash, this);
    }
    if (this.ws === undefined) {
      if (this.resumeSettings === undefined || this.tokenHash === undefined) process.nextTick(() => this.finish());
      else this.park(state.parkedUntil ?? Date.now() + this.resumeSettings.windowMs);
    }
  }

  /** An upgrade is under way: no expiry, no pings, until {@link unhold} (or {@link release}). */
  hold(): void {
    this.held = true;
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    this.parkTimer = undefined;
  }

  /** The upgrade did not happen. */
  unhold(): void {
    this.held = false;
    if (this.parkedUntil !== undefined) this.park(this.parkedUntil);
  }

  /**
   * The session now lives in a successor process: let go of it without a
   * word to the sink. With `closeConnection` the connection is closed with
   * 1012 (service restart), so the client resumes on the successor;
   * otherwise its socket is simply let go (the successor holds its own copy
   * of the descriptor: no FIN).
   */
  release(closeConnection: boolean): void {
    this.finished = true;
    this.held = true;
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    if (this.tokenHash !== undefined) this.resumeSettings?.tokens.revoke(this.tokenHash, this);
    const socket = this.socket;
    const ws = this.detach();
    if (ws === undefined || socket === undefined) return;
    if (closeConnection) {
      ws.close(SERVICE_RESTART);
      setTimeout(() => ws.terminate(), 1_000).unref();
      return;
    }
    for (const event of ['data', 'end', 'close', 'error', 'drain', 'timeout']) socket.removeAllListeners(event);
    socket.on('error', () => {});
    socket.destroy();
  }

  private bind(ws: WebSocket, socket: Duplex): void {
    this.ws = ws;
    this.socket = socket;
    this.failed = false;
    ws.on('error', (error: Error & { code?: string }) => {
      this.failed = true;
      this.sink.onError(error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'limit' : 'error', error);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.alive = true;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary && this.control) {
        this.onControl(bytes);
        return;
      }
      this.received++;
      this.onResumeStateChange?.('count');
      // One message, one line: it ends the line even without a line end of its own.
      this.sink.onData(bytes);
      if (bytes.length === 0 || bytes[bytes.length - 1] !== LF) this.sink.onData(LINE_END);
    });
    ws.on('close', (code: number) => {
      if (this.ws !== ws) return;
      this.detach();
      if (this.resumeSettings !== undefined && !this.ending && !this.failed && code !== NORMAL_CLOSURE && this.tokenHash !== undefined) this.park(Date.now() + this.resumeSettings.windowMs);
      else this.finish();
    });
    if (this.paused) ws.pause();
  }

  /** Forgets the current connection (its events no longer reach the session); returns it. */
  private detach(): WebSocket | undefined {
    const ws = this.ws;
    if (ws === undefined) return undefined;
    for (const event of ['error', 'pong', 'message', 'close']) ws.removeAllListeners(event);
    ws.on('error', () => {});
    this.ws = undefined;
    this.socket = undefined;
    return ws;
  }

  /** Keeps the session without a connection until `until`, then ends it as `timeout`. */
  private park(until: number): void {
    this.parkedUntil = until;
    this.onResumeStateChange?.('state');
    if (this.held) return;
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    this.parkTimer = setTimeout(
      () => {
        this.sink.onError('timeout');
        this.finish();
      },
      Math.max(0, until - Date.now()),
    );
  }

  /** Ends the session: the sink hears it is closed (once). */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    if (this.tokenHash !== undefined) this.resumeSettings?.tokens.revoke(this.tokenHash, this);
    this.detach()?.terminate();
    this.sink.onClose();
  }

  /** A control message from the client: `ack` trims the output log; unknown types are ignored. */
  private onControl(bytes: Buffer): void {
    let message: unknown;
    try {
      message = JSON.parse(bytes.toString('utf8'));
    } catch {
      message = undefined;
    }
    if (typeof message !== 'object' || message === null || typeof (message as { type?: unknown }).type !== 'string') {
      this.sink.onFault?.(new ImiError('IMI_WS_BAD_CONTROL', `a WebSocket client speaking ${WS_CONTROL_PROTOCOL} sent a binary message that is not a JSON control message (${bytes.length} bytes); ignored`));
      return;
    }
    const { type, received } = message as { type: string; received?: unknown };
    if (type === 'ack' && typeof received === 'number' && Number.isSafeInteger(received) && received >= 0) this.log?.ack(Math.min(received, this.log.sent));
  }

  private sendSession(resumed: boolean): void {
    const settings = this.resumeSettings!;
    const { token, hash } = settings.tokens.issue(this, this.tokenHash);
    this.tokenHash = hash;
    this.onResumeStateChange?.('state');
    const message: Record<string, unknown> = { type: 'session', token, resumeWindowMs: settings.windowMs };
    if (resumed) Object.assign(message, { resumed: true, received: this.received });
    this.sendControl(message);
  }

  private sendControl(message: object): void {
    if (this.ws !== undefined && this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message), { binary: true });
  }
}

export { WS_CLOSE_CODES };
