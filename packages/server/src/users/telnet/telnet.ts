/**
 * Telnet (RFC 854/855) for MUD clients: a streaming parser that strips
 * protocol bytes from the user's input, the option negotiation imi does
 * (NAWS, TTYPE with the MTTS cycle, ECHO, SGA, EOR, GMCP, and optionally
 * MCCP2), and the app's text written as NVT output with its prompts marked.
 *
 * The codec is transport-free: it is fed bytes and reports to a
 * {@link TelnetSink}, so tests can feed it one byte at a time.
 *
 * @module
 */
import { ImiError, type TelnetInfo } from '@imi/core';
import type { SnapshotTelnet } from '../../session/snapshot.js';
import { gmcpCoreChange, printable } from './gmcp-core.js';
import type { TelnetExtension } from './telnet-extension.js';
import type { TelnetSessionOptions, TelnetSink } from './telnet-sink.js';
import { DEFAULT_MAX_SUBNEGOTIATION_BYTES, NvtEncoder, TELNET, TELNET_OPTION, TelnetParser, escapeIac, type TelnetParserState } from './telnet-parser.js';

export { DEFAULT_MAX_SUBNEGOTIATION_BYTES, NvtEncoder, TELNET, TELNET_OPTION, escapeIac, type TelnetParserState } from './telnet-parser.js';
export type { TelnetSessionOptions, TelnetSink } from './telnet-sink.js';


/** Most `TTYPE SEND` requests in one MTTS cycle (client name, terminal type, `MTTS n`). */
export const MAX_TTYPE_REQUESTS = 3;
/**
 * A GMCP package name: what the app may send (validate.ts in @imi/core)
 * holds for what a client sends too: 1 to 128 characters, no whitespace or
 * control characters.
 */
const GMCP_PACKAGE = /^[^\s\x00-\x1f\x7f]{1,128}$/;

const { IAC, DONT, DO, WONT, WILL, SB, SE, GA, EOR } = TELNET;
const TTYPE_IS = 0;
const TTYPE_SEND = 1;

/**
 * One telnet connection's protocol state: feed it what the socket reads,
 * give it what the app writes. Fed one byte at a time or a megabyte at once,
 * it produces the same result.
 *
 * Negotiation follows RFC 1143's rule of thumb: never answer a request
 * that confirms a state already in effect, and never answer the answer to
 * one's own request, so no two endpoints loop.
 *
 * What imi negotiates: it asks for NAWS and TTYPE (`DO`), offers GMCP, EOR
 * (and MCCP2 when enabled) (`WILL`), agrees to SGA when the client asks for
 * it, and says `WILL ECHO` only while the app hides the user's typing (a
 * client asking `DO ECHO` otherwise is refused: imi does not echo). It
 * refuses BINARY: what it writes is NVT text.
 *
 * Every byte for the client comes from this object (text, prompts, GMCP and
 * its own negotiation), in order, so a CR left open at the end of one text
 * gets its `NUL` before a command follows it (see {@link NvtEncoder}).
 */
export class TelnetSession {
  /** What the client told us; the same object is updated in place and handed to {@link TelnetSink.onInfo}. */
  readonly info: TelnetInfo = { echo: true, sga: false, gmcp: false, mccp2: false, eor: false };
  private readonly sink: TelnetSink;
  private readonly offerMccp2: boolean;
  private readonly offerGmcp: boolean;
  private readonly offerEor: boolean;
  private readonly extensions: ReadonlyMap<number, TelnetExtension>;
  /** The NVT encoder of the app's text, or undefined when `nvtOutput` is off. */
  private readonly nvt: NvtEncoder | undefined;
  private readonly parser: TelnetParser;
  /** Options enabled on our side (we said or agreed WILL), and on the client's side (we said or agreed DO). */
  private readonly local = new Set<number>();
  private readonly remote = new Set<number>();
  /** Requests we sent and await an answer to, so the answer is not answered again. */
  private readonly pendingLocal = new Set<number>();
  private readonly pendingRemote = new Set<number>();
  /** Our opening offers not answered yet. */
  private readonly opening = new Set<number>();
  /** Whether the app wants the user's typing hidden (so `DO ECHO` is welcome). */
  private hideInput = false;
  private ttypeRequests = 0;
  private awaitingTtype = false;
  private started = false;
  private settled = false;

  /**
   * @param sink - receives data, replies and info
   * @param options - which options to offer
   */
  constructor(sink: TelnetSink, options: TelnetSessionOptions = {}) {
    this.sink = sink;
    this.offerMccp2 = options.mccp2 ?? false;
    this.offerGmcp = options.gmcp ?? true;
    this.offerEor = options.eor ?? true;
    this.extensions = new Map((options.extensions ?? []).map((extension) => [extension.option, extension]));
    this.nvt = (options.nvtOutput ?? true) ? new NvtEncoder() : undefined;
    this.parser = new TelnetParser(
      {
        data: (bytes) => sink.onData(bytes),
        command: (verb, option) => this.negotiate(verb, option),
        subnegotiation: (option, data) => this.subnegotiation(option, data),
        fault: (error) => sink.onFault?.(error),
      },
      {
        maxSubnegotiationBytes: options.maxSubnegotiationBytes ?? DEFAULT_MAX_SUBNEGOTIATION_BYTES,
        isEnabled: (option) => this.local.has(option) || this.remote.has(option),
      },
    );
  }

  /** Whether the opening negotiation is over (see {@link TelnetSink.onSettled}). */
  get isSettled(): boolean {
    return this.settled;
  }

  /** Sends our opening requests: DO NAWS, DO TTYPE, WILL GMCP, WILL EOR (and WILL MCCP2), then the extensions' WILLs. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const out: number[] = [];
    this.askRemote(out, TELNET_OPTION.NAWS);
    this.askRemote(out, TELNET_OPTION.TTYPE);
    if (this.offerGmcp) this.offerLocal(out, TELNET_OPTION.GMCP);
    if (this.offerMccp2) this.offerLocal(out, TELNET_OPTION.MCCP2);
    if (this.offerEor) this.offerLocal(out, TELNET_OPTION.EOR);
    for (const option of this.extensions.keys()) this.offerLocal(out, option);
    this.send(Buffer.from(out));
  }

  /**
   * Hides (`false`) or shows (`true`) what the user types, for password
   * prompts: `WILL ECHO` makes the client stop echoing locally (and imi
   * does not echo either); `WONT ECHO` gives the echo back to the client.
   */
  setEcho(visible: boolean): void {
    this.hideInput = !visible;
    const out: number[] = [];
    if (!visible && !this.local.has(TELNET_OPTION.ECHO)) {
      this.local.add(TELNET_OPTION.ECHO);
      this.pendingLocal.add(TELNET_OPTION.ECHO);
      out.push(IAC, WILL, TELNET_OPTION.ECHO);
    } else if (visible && this.local.has(TELNET_OPTION.ECHO)) {
      this.local.delete(TELNET_OPTION.ECHO);
      this.pendingLocal.add(TELNET_OPTION.ECHO);
      out.push(IAC, WONT, TELNET_OPTION.ECHO);
    }
    if (out.length > 0) {
      this.send(Buffer.from(out));
      this.updateInfo({ echo: visible });
    }
  }

  /**
   * Encodes a GMCP message for the client, or returns undefined when GMCP
   * is not on.
   *
   * @param packageName - e.g. `Char.Vitals`
   * @param json - the payload as JSON text; none when undefined or empty
   */
  encodeGmcp(packageName: string, json?: string): Buffer | undefined {
    if (!this.local.has(TELNET_OPTION.GMCP)) return undefined;
    const body = Buffer.from(json === undefined || json === '' ? packageName : `${packageName} ${json}`, 'utf8');
    return Buffer.concat([this.closeLine(), GMCP_START, escapeIac(body), SB_END]);
  }

  /** Frames a subnegotiation of an option that is on (`IAC SB option body IAC SE`, IAC doubled); undefined when it is off. */
  encodeSubnegotiation(option: number, body: Buffer): Buffer | undefined {
    if (!this.local.has(option)) return undefined;
    return Buffer.concat([this.closeLine(), Buffer.from([IAC, SB, option]), escapeIac(body), SB_END]);
  }

  /**
   * Encodes text for the client: UTF-8, with IAC (255) bytes doubled, and
   * (with `nvtOutput`, the default) as NVT: a bare LF becomes `CR LF`, a
   * bare CR `CR NUL`, also across calls (see {@link NvtEncoder}).
   */
  encodeText(text: string): Buffer {
    const bytes = Buffer.from(text, 'utf8');
    return this.nvt === undefined ? escapeIac(bytes) : this.nvt.encode(bytes);
  }

  /**
   * Encodes the end of a prompt (the text just encoded is one): `IAC EOR`
   * when the client agreed to EOR (RFC 885), else `IAC GA` unless
   * suppress-go-ahead is on (RFC 858); undefined when neither applies.
   */
  encodePrompt(): Buffer | undefined {
    if (this.local.has(TELNET_OPTION.EOR)) return Buffer.concat([this.closeLine(), IAC_EOR]);
    if (this.local.has(TELNET_OPTION.SGA)) return undefined;
    return Buffer.concat([this.closeLine(), IAC_GA]);
  }

  /**
   * What must be written before the connection ends: the `NUL` after a CR
   * the last text ended with (empty when there is none).
   */
  finish(): Buffer {
    return this.closeLine();
  }

  /**
   * The negotiated state as plain data (copies), as a session snapshot
   * holds it: what the client told, what was offered, which options are
   * on, which requests are unanswered, the hidden echo and the TTYPE cycle.
   */
  exportState(): SnapshotTelnet {
    return {
      info: structuredClone(this.info),
      offerMccp2: this.offerMccp2,
      offerGmcp: this.offerGmcp,
      offerEor: this.offerEor,
      offerMsdp: this.extensions.has(TELNET_OPTION.MSDP),
      offerMssp: this.extensions.has(TELNET_OPTION.MSSP),
      nvtOutput: this.nvt !== undefined,
      pendingCr: this.nvt?.pendingCr ?? false,
      local: [...this.local],
      remote: [...this.remote],
      pendingLocal: [...this.pendingLocal],
      pendingRemote: [...this.pendingRemote],
      opening: [...this.opening],
      hideInput: this.hideInput,
      ttypeRequests: this.ttypeRequests,
      awaitingTtype: this.awaitingTtype,
      settled: this.settled,
    };
  }

  /**
   * Starts where an {@link exportState} left off, for a session that read
   * and sent nothing yet (made with the same offers): {@link start} then
   * sends nothing, and the session counts as settled (clients do not
   * renegotiate). MCCP2 stays off, since a compressed stream cannot cross
   * sockets: {@link resumeCompression} starts a new one.
   */
  importState(state: SnapshotTelnet): void {
    const info = structuredClone(state.info);
    info.mccp2 = false;
    for (const key of Object.keys(this.info)) delete (this.info as Partial<TelnetInfo>)[key as keyof TelnetInfo];
    Object.assign(this.info, info);
    refill(this.local, state.local.filter((option) => option !== TELNET_OPTION.MCCP2));
    refill(this.remote, state.remote);
    refill(this.pendingLocal, state.pendingLocal);
    refill(this.pendingRemote, state.pendingRemote);
    refill(this.opening, state.opening);
    this.hideInput = state.hideInput;
    if (this.nvt !== undefined) this.nvt.pendingCr = state.pendingCr;
    this.ttypeRequests = state.ttypeRequests;
    this.awaitingTtype = state.awaitingTtype;
    this.started = true;
    this.settled = true;
  }

  /**
   * Turns MCCP2 on again after {@link importState} (of a user who had it
   * on), once the channel is attached: a new compressed stream begins
   * (`IAC SB MCCP2 IAC SE`), as the protocol allows after the old one ended.
   */
  resumeCompression(): void {
    this.local.add(TELNET_OPTION.MCCP2);
    this.enabledLocal(TELNET_OPTION.MCCP2, []);
  }

  /** Where the parser is inside a command (copies), for a handover between processes. */
  exportParserState(): TelnetParserState {
    return this.parser.exportState();
  }

  /** Puts back what {@link exportParserState} took, before anything is received. */
  importParserState(state: TelnetParserState): void {
    this.parser.importState(state);
  }

  /** Feeds bytes read from the socket. Plain bytes reach {@link TelnetSink.onData} before this returns. */
  receive(chunk: Buffer): void {
    this.parser.receive(chunk);
    this.checkSettled();
  }

  /** The NUL a CR left open needs before anything that is not text. */
  private closeLine(): Buffer {
    return this.nvt === undefined ? EMPTY : this.nvt.close();
  }

  /** Hands our own bytes (negotiation) to the sink, after a CR left open is closed. */
  private send(bytes: Buffer): void {
    const nul = this.closeLine();
    this.sink.onSend(nul.length === 0 ? bytes : Buffer.concat([nul, bytes]));
  }

  private askRemote(out: number[], option: number): void {
    this.pendingRemote.add(option);
    this.opening.add(option);
    out.push(IAC, DO, option);
  }

  private offerLocal(out: number[], option: number): void {
    this.pendingLocal.add(option);
    this.opening.add(option);
    out.push(IAC, WILL, option);
  }

  private supportsLocal(option: number): boolean {
    return (
      option === TELNET_OPTION.SGA ||
      (option === TELNET_OPTION.ECHO && this.hideInput) ||
      (option === TELNET_OPTION.GMCP && this.offerGmcp) ||
      (option === TELNET_OPTION.MCCP2 && this.offerMccp2) ||
      (option === TELNET_OPTION.EOR && this.offerEor) ||
      this.extensions.has(option)
    );
  }

  private supportsRemote(option: number): boolean {
    return option === TELNET_OPTION.NAWS || option === TELNET_OPTION.TTYPE || option === TELNET_OPTION.SGA;
  }

  private negotiate(verb: number, option: number): void {
    const out: number[] = [];
    const pending = verb === DO || verb === DONT ? this.pendingLocal : this.pendingRemote;
    const wasPending = pending.delete(option);
    // An answer to one of our opening requests (an unrelated verb on the same option is not).
    if (wasPending) this.opening.delete(option);
    if (verb === DO) {
      if (this.supportsLocal(option)) {
        if (!this.local.has(option)) {
          this.local.add(option);
          if (!wasPending) out.push(IAC, WILL, option);
          this.enabledLocal(option, out);
        }
      } else if (!wasPending) {
        out.push(IAC, WONT, option);
      }
    } else if (verb === DONT) {
      if (this.local.has(option)) {
        this.local.delete(option);
        if (!wasPending) out.push(IAC, WONT, option);
        this.disabledLocal(option, out);
      }
    } else if (verb === WILL) {
      if (this.supportsRemote(option)) {
        if (!this.remote.has(option)) {
          this.remote.add(option);
          if (!wasPending) out.push(IAC, DO, option);
          if (option === TELNET_OPTION.TTYPE) this.requestTtype(out);
        }
      } else if (!wasPending) {
        out.push(IAC, DONT, option);
      }
    } else if (verb === WONT) {
      if (this.remote.has(option)) {
        this.remote.delete(option);
        if (!wasPending) out.push(IAC, DONT, option);
        if (option === TELNET_OPTION.TTYPE) this.awaitingTtype = false;
      }
    }
    if (out.length > 0) this.send(Buffer.from(out));
  }

  private enabledLocal(option: number, out: number[]): void {
    const change = this.extensions.get(option)?.enabled(out);
    if (change !== undefined) this.updateInfo(change);
    else if (option === TELNET_OPTION.GMCP) this.updateInfo({ gmcp: true });
    else if (option === TELNET_OPTION.SGA) this.updateInfo({ sga: true });
    else if (option === TELNET_OPTION.EOR) this.updateInfo({ eor: true });
    else if (option === TELNET_OPTION.ECHO) this.updateInfo({ echo: false });
    else if (option === TELNET_OPTION.MCCP2 && !this.info.mccp2) {
      // The compressed stream starts right after IAC SB MCCP2 IAC SE.
      out.push(IAC, SB, TELNET_OPTION.MCCP2, IAC, SE);
      this.send(Buffer.from(out));
      out.length = 0;
      this.sink.onStartCompression();
      this.updateInfo({ mccp2: true });
    }
  }

  private disabledLocal(option: number, out: number[]): void {
    const change = this.extensions.get(option)?.disabled();
    if (change !== undefined) this.updateInfo(change);
    else if (option === TELNET_OPTION.GMCP) this.updateInfo({ gmcp: false });
    else if (option === TELNET_OPTION.SGA) this.updateInfo({ sga: false });
    else if (option === TELNET_OPTION.EOR) this.updateInfo({ eor: false });
    else if (option === TELNET_OPTION.ECHO) {
      // The client will not stop echoing: the user's typing stays visible.
      this.hideInput = false;
      this.updateInfo({ echo: true });
    } else if (option === TELNET_OPTION.MCCP2 && this.info.mccp2) {
      if (out.length > 0) {
        this.send(Buffer.from(out));
        out.length = 0;
      }
      this.sink.onStopCompression();
      this.updateInfo({ mccp2: false });
    }
  }

  private requestTtype(out: number[]): void {
    this.ttypeRequests++;
    this.awaitingTtype = true;
    out.push(IAC, SB, TELNET_OPTION.TTYPE, TTYPE_SEND, IAC, SE);
  }

  private subnegotiation(option: number, data: Buffer): void {
    if (option === TELNET_OPTION.NAWS) {
      if (data.length >= 4 && this.remote.has(TELNET_OPTION.NAWS)) {
        const naws = { width: data.readUInt16BE(0), height: data.readUInt16BE(2) };
        const old = this.info.naws;
        if (old === undefined || old.width !== naws.width || old.height !== naws.height) this.updateInfo({ naws });
      }
    } else if (option === TELNET_OPTION.TTYPE) {
      // Only answers to our requests count: a client cannot grow the list unasked.
      if (data[0] === TTYPE_IS && this.awaitingTtype) this.terminalType(printable(data.subarray(1).toString('latin1')));
    } else if (option === TELNET_OPTION.GMCP) {
      if (!this.local.has(TELNET_OPTION.GMCP)) return;
      // Some clients end the message with a line end (`Core.Ping\n`): any
      // whitespace ends the name, and none is part of it or of the JSON.
      const text = data.toString('utf8').trim();
      const space = text.search(/\s/);
      const packageName = space === -1 ? text : text.slice(0, space);
      const json = space === -1 ? '' : text.slice(space + 1).trim();
      if (!GMCP_PACKAGE.test(packageName)) {
        this.sink.onFault?.(new ImiError('IMI_BAD_TELNET', `a GMCP message had no valid package name (${JSON.stringify(packageName.slice(0, 32))}): dropped`));
        return;
      }
      const core = gmcpCoreChange(this.info, packageName, json);
      if (core !== undefined) this.updateInfo(core);
      this.sink.onGmcp(packageName, json);
    } else if (this.local.has(option)) {
      this.extensions.get(option)?.receive(data);
    }
  }

  private terminalType(name: string): void {
    this.awaitingTtype = false;
    const list = this.info.ttype ?? [];
    // The cycle ends when the client repeats itself: the last answer again
    // (most MUD clients), or the first one (RFC 1091's wrap-around).
    const repeated = list.length > 0 && (list[list.length - 1] === name || list[0] === name);
    if (!repeated) {
      const ttype = [...list, name];
      const mtts = /^MTTS (\d+)$/i.exec(name);
      this.updateInfo(mtts ? { ttype, mtts: Number(mtts[1]) } : { ttype });
      if (this.ttypeRequests < MAX_TTYPE_REQUESTS && this.remote.has(TELNET_OPTION.TTYPE)) {
        const out: number[] = [];
        this.requestTtype(out);
        this.send(Buffer.from(out));
      }
    }
  }

  private checkSettled(): void {
    if (this.settled || !this.started) return;
    if (this.opening.size > 0 || this.awaitingTtype) return;
    // A client that agreed to NAWS sends its size right after; wait for it.
    if (this.remote.has(TELNET_OPTION.NAWS) && this.info.naws === undefined) return;
    this.settled = true;
    this.sink.onSettled();
  }

  private updateInfo(change: Partial<TelnetInfo>): void {
    Object.assign(this.info, change);
    this.sink.onInfo(this.info);
  }
}

function refill(set: Set<number>, values: readonly number[]): void {
  set.clear();
  for (const value of values) set.add(value);
}

const GMCP_START = Buffer.from([IAC, SB, TELNET_OPTION.GMCP]);
const SB_END = Buffer.from([IAC, SE]);
const IAC_EOR = Buffer.from([IAC, EOR]);
const IAC_GA = Buffer.from([IAC, GA]);
const EMPTY = Buffer.alloc(0);
