/**
 * A telnet user's channel: a socket (TCP or TLS) with a {@link TelnetSession}
 * between it and the connection, so input lines never contain protocol
 * bytes, and an optional MCCP2 compressor on the way out.
 *
 * @module
 */
import type { Socket } from 'node:net';
import zlib from 'node:zlib';
import type { RemoteAddress, TelnetInfo } from '@imi/core';
import { MSDP_OPTION, MsdpOption, encodeMsdp } from './msdp.js';
import { MsspOption, type MsspTable } from './mssp.js';
import type { SnapshotTelnet } from '../../session/snapshot.js';
import { TELNET, TELNET_OPTION, TelnetSession, type TelnetSink } from './telnet.js';
import type { TelnetExtension } from './telnet-extension.js';
import type { TelnetParserState } from './telnet-parser.js';
import { NULL_SINK, socketErrorReason, type ChannelSink, type UserChannel } from '../transport.js';

/** Options of {@link TelnetChannel}. */
export interface TelnetChannelOptions {
  /** Offer MCCP2. */
  mccp2: boolean;
  /** Offer GMCP. */
  gmcp: boolean;
  /** Longest wait for the opening negotiation, in ms (0: do not wait). */
  negotiationMs: number;
  /** Write the app's text as NVT output (bare LF → CR LF, bare CR → CR NUL). */
  nvtOutput: boolean;
  /** Offer EOR, so prompts can end with `IAC EOR`. */
  eor: boolean;
  /** The user's address when it is not the socket's peer (from a PROXY header). */
  remote?: RemoteAddress;
  /** Offer MSDP. Default false. */
  msdp?: boolean;
  /** Offer MSSP, answering with these variables. Default: not offered. */
  mssp?: () => MsspTable;
}

/**
 * Input held while the channel is paused, before reading stops: a paused
 * telnet channel keeps reading so negotiation goes on (the opening one runs
 * while the user is paused), up to this many bytes of held input.
 */
const MAX_HELD_BYTES = 64 * 1024;

/**
 * zlib settings of MCCP2: a 4 KiB window and small hash tables (about 32 KiB
 * per compressing user rather than 256 KiB); text compresses about as well.
 */
const DEFLATE_OPTIONS: zlib.ZlibOptions = { windowBits: 12, memLevel: 5, level: 6 };

/**
 * What a telnet channel holds beyond its negotiated state, for a handover
 * between processes: where the parser is inside a command, and what was
 * read while the channel was paused.
 */
export interface TelnetChannelState {
  /** The parser's position. */
  parser: TelnetParserState;
  /** Input held while paused (protocol already removed), in one buffer. */
  held: Buffer;
  /** GMCP (and MSDP) messages held while paused: package, JSON text. */
  heldGmcp: Array<[string, string]>;
}

type Held = Buffer | { readonly packageName: string; readonly json: string; readonly protocol: 'msdp' | undefined };

/** `IAC NOP`: a command every client ignores, sent as a probe for a dead peer. */
const NOP = Buffer.from([255, 241]);

/** `IAC SB MCCP2 IAC SE`: a compressed stream starts after it. */
const MCCP2_START = Buffer.from([TELNET.IAC, TELNET.SB, TELNET_OPTION.MCCP2, TELNET.IAC, TELNET.SE]);

/** Where a new compressed stream starts, in output queued behind one being finished. */
const START = Symbol('start MCCP2');
/** Where the stream started at the {@link START} before it ends again. */
const STOP = Symbol('stop MCCP2');
type Queued = Buffer | typeof START | typeof STOP;

/** A telnet user (`telnet`, or `telnet+tls` over a TLS socket). */
export class TelnetChannel implements UserChannel {
  readonly transport: string;
  readonly remote: RemoteAddress;
  /** The user's socket (a handover passes its descriptor on). */
  readonly socket: Socket;
  private readonly session: TelnetSession;
  private readonly negotiationMs: number;
  private sink: ChannelSink = NULL_SINK;
  /** The compressor while MCCP2 is on. */
  private deflate: zlib.Deflate | undefined;
  /** A compressed stream being finished (the client asked to stop MCCP2), and what waits behind it. */
  private stopping: zlib.Deflate | undefined;
  private afterStop: Queued[] = [];
  private corked = false;
  private socketCorked = false;
  private ended = false;
  private holding = false;
  private held: Held[] = [];
  private heldBytes = 0;
  private flushScheduled = false;
  private settle: (() => void) | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** The peer's FIN, held back until the input read before it has reached the sink. */
  private endPending = false;
  private probeTimer: NodeJS.Timeout | undefined;
  /** MSSP, when offered: a client that asked for it is not announced before the negotiation window ends. */
  private readonly mssp: MsspOption | undefined;
  /** A crawler sent the plain-text `MSSP-REQUEST`: it was answered and is let go, never announced. */
  private crawler = false;

  /**
   * @param socket - the user's socket (a `tls.TLSSocket` for `telnet+tls`)
   * @param transport - the transport's name
   * @param options - what to offer, how long to wait
   */
  constructor(socket: Socket, transport: string, options: TelnetChannelOptions) {
    this.socket = socket;
    this.transport = transport;
    this.remote = options.remote ?? { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    // A user who half-closes (a scripted client) still reads: their reply must get out.
    socket.allowHalfOpen = true;
    this.negotiationMs = options.negotiationMs;
    const sink: TelnetSink = {
      onData: (bytes) => this.input(bytes),
      onSend: (bytes) => this.writeOut(bytes),
      onInfo: () => this.sink.onMetadata(),
      onGmcp: (packageName, json) => this.gmcp(packageName, json, undefined),
      onStartCompression: () => this.startCompression(),
      onStopCompression: () => this.stopCompression(),
      // A client that asked for MSSP is most likely a listing crawler that
      // reads the variables and hangs up: it waits out the window, so one that
      // leaves within it never reaches the app.
      onSettled: () => {
        if (this.mssp?.requested !== true) this.settled();
      },
      onFault: (error) => this.sink.onFault?.(error),
    };
    const extensions: TelnetExtension[] = [];
    if (options.mssp !== undefined) extensions.push((this.mssp = new MsspOption(options.mssp)));
    if (options.msdp === true) extensions.push(new MsdpOption((name, json) => this.gmcp(name, json, 'msdp'), (error) => this.sink.onFault?.(error)));
    this.session = new TelnetSession(sink, { mccp2: options.mccp2, gmcp: options.gmcp, nvtOutput: options.nvtOutput, eor: options.eor, extensions });
    if (options.msdp === true) this.session.info.msdp = false;
    socket.setNoDelay(true);
    socket.on('error', (error) => this.sink.onError(socketErrorReason(error), error));
    socket.on('close', () => {
      this.settled();
      if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
      this.deflate?.destroy();
      this.stopping?.destroy();
      this.sink.onClose();
    });
  }

  get telnet(): Readonly<TelnetInfo> {
    return this.session.info;
  }

  get writableLength(): number {
    return this.socket.writableLength + (this.deflate?.writableLength ?? 0) + (this.stopping?.writableLength ?? 0);
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  attach(sink: ChannelSink): Promise<void> | void {
    this.sink = sink;
    this.socket.on('data', (chunk: Buffer) => this.session.receive(chunk));
    this.socket.on('end', () => {
      if (this.crawler) return;
      if (this.settle !== undefined && this.held.length === 0) {
        // Gone before being let in, having typed nothing (a listing crawler
        // that read the MSSP variables, a port scanner): never announced.
        this.socket.destroy();
        return;
      }
      if (this.holding || this.held.length > 0) this.endPending = true;
      else sink.onEnd();
      // A peer that has hung up answers no more negotiation: let its typed
      // input through now instead of waiting out the window.
      this.settled();
    });
    this.session.start();
    if (this.negotiationMs === 0 || this.session.isSettled) return;
    return new Promise<void>((resolve) => {
      this.settle = resolve;
      this.settleTimer = setTimeout(() => this.settled(), this.negotiationMs);
      this.settleTimer.unref();
    });
  }

  write(text: string): void {
    this.writeOut(this.session.encodeText(text));
  }

  /** Ends a prompt: `IAC EOR`, `IAC GA`, or nothing with SGA on (see {@link TelnetSession.encodePrompt}). */
  markPrompt(): void {
    const bytes = this.session.encodePrompt();
    if (bytes !== undefined) this.writeOut(bytes);
  }

  cork(): void {
    this.corked = true;
    if (this.deflate === undefined && this.stopping === undefined && !this.socketCorked) {
      this.socketCorked = true;
      this.socket.cork();
    }
  }

  uncork(): void {
    this.corked = false;
    if (this.socketCorked) {
      this.socketCorked = false;
      this.socket.uncork();
    }
    this.deflate?.flush(zlib.constants.Z_SYNC_FLUSH);
  }

  /** Holds input (negotiation goes on) until {@link resume}; reading stops once {@link MAX_HELD_BYTES} are held. */
  pause(): void {
    this.holding = true;
  }

  resume(): void {
    this.holding = false;
    this.socket.resume();
    if ((this.held.length > 0 || this.endPending) && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushHeld, this);
    }
  }

  end(): void {
    if (this.ended) return;
    // A CR the last text ended with gets its NUL before the end.
    const tail = this.session.finish();
    if (tail.length > 0) this.writeOut(tail);
    this.ended = true;
    const deflate = this.deflate;
    if (deflate !== undefined) {
      // Finish the compressed stream, then the socket.
      deflate.once('end', () => this.socket.end());
      deflate.end();
    } else if (this.stopping === undefined) {
      this.socket.end();
    }
  }

  watchPeer(keepAliveMs: number, probeMs: number): void {
    if (keepAliveMs > 0) this.socket.setKeepAlive(true, keepAliveMs);
    clearInterval(this.probeTimer);
    if (probeMs <= 0) return;
    // Traffic of our own reaches past a TCP proxy in front of us, whose
    // keepalive would only test the hop to the proxy: a dead client then
    // shows up as a reset or a failed write.
    this.probeTimer = setInterval(() => this.writeOut(NOP), probeMs);
    this.probeTimer.unref();
  }

  destroy(): void {
    this.deflate?.destroy();
    this.stopping?.destroy();
    this.socket.destroy();
  }

  setEcho(visible: boolean): boolean {
    this.session.setEcho(visible);
    return true;
  }

  /**
   * Sends a GMCP message, or the same as an MSDP variable: with `protocol`
   * absent, GMCP when it is on, else MSDP when that is on.
   */
  sendGmcp(packageName: string, json: string | undefined, protocol?: 'gmcp' | 'msdp'): boolean {
    let bytes = protocol === 'msdp' ? undefined : this.session.encodeGmcp(packageName, json);
    if (bytes === undefined && protocol !== 'gmcp' && this.session.info.msdp === true) {
      bytes = this.session.encodeSubnegotiation(MSDP_OPTION, encodeMsdp(packageName, json === undefined || json === '' ? undefined : JSON.parse(json)));
    }
    if (bytes === undefined) return false;
    this.writeOut(bytes);
    return true;
  }

  /** The negotiated state (copies), for a session snapshot (see {@link TelnetSession.exportState}). */
  exportNegotiation(): SnapshotTelnet {
    return this.session.exportState();
  }

  /** Starts where a snapshot left off, before {@link attach} (see {@link TelnetSession.importState}). */
  importNegotiation(state: SnapshotTelnet): void {
    this.session.importState(state);
  }

  /** Starts a new compressed stream on a restored channel whose user had MCCP2 on (see {@link TelnetSession.resumeCompression}). */
  resumeCompression(): void {
    this.session.resumeCompression();
  }

  /** What the channel holds beyond its negotiated state (copies). */
  exportState(): TelnetChannelState {
    const held: Buffer[] = [];
    const heldGmcp: Array<[string, string]> = [];
    for (const item of this.held) {
      if (Buffer.isBuffer(item)) held.push(item);
      else heldGmcp.push([item.packageName, item.json]);
    }
    return { parser: this.session.exportParserState(), held: Buffer.concat(held), heldGmcp };
  }

  /**
   * Puts back what {@link exportState} took, before anything is read. Held
   * GMCP messages come after the held input: their relative order is not
   * kept (GMCP is not queued for the app anyway).
   */
  importState(state: TelnetChannelState): void {
    this.session.importParserState(state.parser);
    if (state.held.length > 0) {
      this.held.push(state.held);
      this.heldBytes += state.held.length;
    }
    for (const [packageName, json] of state.heldGmcp) this.held.push({ packageName, json, protocol: undefined });
  }

  /** Whether a compressed stream is being finished or output has not reached the kernel yet. */
  get flushing(): boolean {
    return this.stopping !== undefined || this.writableLength > 0;
  }

  /** Ends the compressed stream, if one runs (the client goes back to plain bytes); returns whether it did. */
  endCompression(): boolean {
    if (this.deflate === undefined) return false;
    this.stopCompression();
    return true;
  }

  /** Starts a new compressed stream after {@link endCompression}. */
  restartCompression(): void {
    this.send(MCCP2_START);
    this.startCompression();
  }

  /** Delivers what was held while paused, in order, until paused again. */
  flushHeld(): void {
    this.flushScheduled = false;
    while (!this.holding && this.held.length > 0 && !this.socket.destroyed) {
      const item = this.held.shift()!;
      if (Buffer.isBuffer(item)) {
        this.heldBytes -= item.length;
        this.sink.onData(item);
      } else {
        this.sink.onGmcp(item.packageName, item.json, item.protocol);
      }
    }
    if (this.endPending && !this.holding && this.held.length === 0) {
      this.endPending = false;
      this.sink.onEnd();
    }
  }

  private input(bytes: Buffer): void {
    if (this.settle !== undefined && this.mssp?.watchFirstLine(bytes) === true) {
      this.answerCrawler(this.mssp);
      return;
    }
    if (this.holding || this.held.length > 0) {
      this.held.push(bytes);
      this.heldBytes += bytes.length;
      if (this.heldBytes > MAX_HELD_BYTES) this.socket.pause();
      return;
    }
    this.sink.onData(bytes);
  }

  private gmcp(packageName: string, json: string, protocol: 'msdp' | undefined): void {
    if (this.holding || this.held.length > 0) {
      this.held.push({ packageName, json, protocol });
      return;
    }
    this.sink.onGmcp(packageName, json, protocol);
  }

  private writeOut(bytes: Buffer): void {
    // After end(), nothing more may be written (a late negotiation reply would be a write after end).
    if (this.ended || this.socket.destroyed) return;
    this.send(bytes);
  }

  /** Writes through the compressor, behind a stream being finished, or to the socket. */
  private send(bytes: Buffer): void {
    const deflate = this.deflate;
    if (deflate !== undefined) {
      deflate.write(bytes);
      if (!this.corked) deflate.flush(zlib.constants.Z_SYNC_FLUSH);
    } else if (this.stopping !== undefined) {
      this.afterStop.push(bytes);
    } else if (!this.socket.destroyed) {
      this.socket.write(bytes);
    }
  }

  private startCompression(): void {
    if (this.deflate !== undefined || this.ended) return;
    if (this.stopping !== undefined) {
      // The client turned MCCP2 off and on again before the old stream was
      // finished: the new one starts where the start marker (queued just
      // before) goes out, after the old stream's last byte.
      this.afterStop.push(START);
      return;
    }
    this.beginDeflate();
  }

  private beginDeflate(): void {
    if (this.socketCorked) {
      // What was corked goes first, uncompressed (it was written before MCCP2 began).
      this.socketCorked = false;
      this.socket.uncork();
    }
    const deflate = zlib.createDeflate(DEFLATE_OPTIONS);
    deflate.on('data', (chunk: Buffer) => {
      if (!this.socket.destroyed) this.socket.write(chunk);
    });
    deflate.on('error', () => this.socket.destroy());
    this.deflate = deflate;
  }

  private stopCompression(): void {
    const deflate = this.deflate;
    if (deflate === undefined) {
      // A restart still queued behind the stream being finished: it stops where the client asked.
      if (this.stopping !== undefined && this.afterStop.includes(START)) this.afterStop.push(STOP);
      return;
    }
    this.deflate = undefined;
    this.stopping = deflate;
    deflate.once('end', () => this.stopped());
    deflate.end();
  }

  /** The compressed stream being finished has ended: what waited behind it goes out, in order. */
  private stopped(): void {
    this.stopping = undefined;
    const queued = this.afterStop;
    this.afterStop = [];
    for (let k = 0; k < queued.length; k++) {
      const item = queued[k]!;
      if (item === START) {
        // Even after end(): the start marker went out, so a stream must follow it.
        this.beginDeflate();
      } else if (item === STOP) {
        this.stopCompression();
        // Whatever follows waits for this stream's end in turn.
        this.afterStop = [...queued.slice(k + 1), ...this.afterStop];
        return;
      } else {
        this.send(item);
      }
    }
    if (this.deflate !== undefined) {
      if (!this.corked) this.deflate.flush(zlib.constants.Z_SYNC_FLUSH);
      if (this.ended) {
        const deflate = this.deflate;
        deflate.once('end', () => this.socket.end());
        deflate.end();
      }
    } else if (this.ended) {
      this.socket.end();
    }
  }

  /**
   * A crawler that does not speak telnet sent `MSSP-REQUEST` before being let
   * in: it gets the variables as text and the connection ends; what it
   * typed is dropped and the app never hears of it.
   */
  private answerCrawler(mssp: MsspOption): void {
    this.crawler = true;
    this.held = [];
    this.heldBytes = 0;
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    this.writeOut(mssp.textReply());
    this.end();
    this.socket.once('finish', () => this.socket.destroy());
  }

  private settled(): void {
    // A crawler is let go, never in: only the socket's close ends its wait.
    if (this.crawler && !this.socket.destroyed) return;
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    const settle = this.settle;
    this.settle = undefined;
    settle?.();
  }
}

function flushHeld(channel: TelnetChannel): void {
  channel.flushHeld();
}
