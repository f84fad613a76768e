/**
 * Telnet (RFC 854/855) for MUD clients: a streaming parser that strips
 * protocol bytes from the user's input, and the option negotiation imi does
 * (NAWS, TTYPE with the MTTS cycle, ECHO, SGA, GMCP, and optionally MCCP2).
 *
 * @module
 */

/** Telnet command bytes. */
export const TELNET = {
  IAC: 255,
  DONT: 254,
  DO: 253,
  WONT: 252,
  WILL: 251,
  SB: 250,
  GA: 249,
  NOP: 241,
  SE: 240,
} as const;

/** Telnet option codes imi knows. */
export const TELNET_OPTION = {
  ECHO: 1,
  SGA: 3,
  TTYPE: 24,
  NAWS: 31,
  MSSP: 70,
  MCCP2: 86,
  GMCP: 201,
} as const;

/** Default {@link TelnetSessionOptions.maxSubnegotiationBytes}: 8 KiB. */
export const DEFAULT_MAX_SUBNEGOTIATION_BYTES = 8 * 1024;

const { IAC, DONT, DO, WONT, WILL, SB, SE } = TELNET;
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;
const TTYPE_IS = 0;
const TTYPE_SEND = 1;

/** What a telnet client told us about itself; sent to the app in `connect.data.telnet`. */
export interface TelnetInfo {
  /** Window size from NAWS, when the client sent one. */
  naws?: { width: number; height: number };
  /** Terminal types from TTYPE, in the order the client gave them (client name, terminal, `MTTS n`). */
  ttype?: string[];
  /** The MTTS capability bits, when the client sent `MTTS <n>`. */
  mtts?: number;
  /** Whether the client speaks GMCP with us. */
  gmcp?: boolean;
  /** Whether output is compressed (MCCP2). */
  mccp2?: boolean;
}

/** Receives what a {@link TelnetSession} decodes. */
export interface TelnetSink {
  /** Plain input bytes, protocol removed (`CR NUL` turned into a line end). */
  onData(bytes: Buffer): void;
  /** Bytes to write to the client as they are (negotiation): never IAC-escaped again. */
  onSend(bytes: Buffer): void;
  /** The client's info changed (window size, terminal type, GMCP on). */
  onInfo(info: TelnetInfo): void;
  /** A GMCP message from the client: `Package.Name` and its JSON text (may be empty). */
  onGmcp(packageName: string, json: string): void;
  /** MCCP2 is negotiated: compress every byte written from now on. */
  onStartCompression(): void;
}

/** Options of {@link TelnetSession}. */
export interface TelnetSessionOptions {
  /** Offer MCCP2 (zlib compression of output). Default false. */
  mccp2?: boolean;
  /** Offer GMCP. Default true. */
  gmcp?: boolean;
  /** Longest subnegotiation kept, in bytes; longer ones are dropped. Default {@link DEFAULT_MAX_SUBNEGOTIATION_BYTES}. */
  maxSubnegotiationBytes?: number;
}

const enum State {
  Data,
  Iac,
  Verb,
  Sb,
  SbData,
  SbIac,
  Cr,
}

/**
 * One telnet connection's protocol state: feed it what the socket reads,
 * give it what the app writes. Fed one byte at a time or a megabyte at once,
 * it produces the same result.
 */
export class TelnetSession {
  /** What the client told us. */
  readonly info: TelnetInfo = {};
  private readonly sink: TelnetSink;
  private readonly offerMccp2: boolean;
  private readonly offerGmcp: boolean;
  private readonly maxSub: number;
  private state = State.Data;
  private verb = 0;
  private subOption = 0;
  private sub: number[] = [];
  private subOverflow = false;
  /** Options we enabled on our side (WILL), and the ones we asked the client for (DO). */
  private readonly local = new Set<number>();
  private readonly remote = new Set<number>();
  /** Requests we sent and await an answer to, so the answer is not answered again. */
  private readonly pendingLocal = new Set<number>();
  private readonly pendingRemote = new Set<number>();
  private ttypeRequests = 0;

  /**
   * @param sink - receives data, replies and info
   * @param options - which options to offer
   */
  constructor(sink: TelnetSink, options: TelnetSessionOptions = {}) {
    this.sink = sink;
    this.offerMccp2 = options.mccp2 ?? false;
    this.offerGmcp = options.gmcp ?? true;
    this.maxSub = options.maxSubnegotiationBytes ?? DEFAULT_MAX_SUBNEGOTIATION_BYTES;
  }

  /** Sends our opening offers: DO NAWS, DO TTYPE, WILL SGA, WILL GMCP (and WILL MCCP2). */
  start(): void {
    const out: number[] = [];
    this.askRemote(out, TELNET_OPTION.NAWS);
    this.askRemote(out, TELNET_OPTION.TTYPE);
    this.offerLocal(out, TELNET_OPTION.SGA);
    if (this.offerGmcp) this.offerLocal(out, TELNET_OPTION.GMCP);
    if (this.offerMccp2) this.offerLocal(out, TELNET_OPTION.MCCP2);
    this.sink.onSend(Buffer.from(out));
  }

  /** Whether the client is told we echo (so it hides what is typed). */
  get echoSuppressed(): boolean {
    return this.local.has(TELNET_OPTION.ECHO);
  }

  /**
   * Hides (false) or shows (true) what the user types, for password prompts:
   * WILL ECHO makes the client stop echoing locally, and imi does not echo.
   */
  setEcho(visible: boolean): void {
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
    if (out.length > 0) this.sink.onSend(Buffer.from(out));
  }

  /**
   * Encodes a GMCP message for the client, or returns undefined when the
   * client did not enable GMCP.
   */
  encodeGmcp(packageName: string, json?: string): Buffer | undefined {
    if (!this.local.has(TELNET_OPTION.GMCP)) return undefined;
    const body = Buffer.from(json === undefined || json === '' ? packageName : `${packageName} ${json}`, 'utf8');
    return Buffer.concat([Buffer.from([IAC, SB, TELNET_OPTION.GMCP]), escapeIac(body), Buffer.from([IAC, SE])]);
  }

  /** Feeds bytes read from the socket. */
  receive(chunk: Buffer): void {
    let dataStart = -1;
    const flush = (end: number): void => {
      if (dataStart !== -1 && end > dataStart) this.sink.onData(chunk.subarray(dataStart, end));
      dataStart = -1;
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      switch (this.state) {
        case State.Data:
          if (byte === IAC) {
            flush(i);
            this.state = State.Iac;
          } else if (byte === CR) {
            // CR LF is a line end; CR NUL is a bare CR (RFC 854), which
            // clients send for Enter; a lone CR too: all end the line now.
            flush(i);
            this.sink.onData(CRLF);
            this.state = State.Cr;
          } else if (dataStart === -1) {
            dataStart = i;
          }
          break;
        case State.Cr:
          this.state = State.Data;
          if (byte !== LF && byte !== NUL) i--; // not part of the line end: read it again as data
          break;
        case State.Iac:
          if (byte === IAC) {
            this.sink.onData(IAC_BYTE);
            this.state = State.Data;
          } else if (byte === WILL || byte === WONT || byte === DO || byte === DONT) {
            this.verb = byte;
            this.state = State.Verb;
          } else if (byte === SB) {
            this.state = State.Sb;
          } else {
            this.state = State.Data; // NOP, GA, AYT, IP…: nothing for a line protocol
          }
          break;
        case State.Verb:
          this.negotiate(this.verb, byte);
          this.state = State.Data;
          break;
        case State.Sb:
          this.subOption = byte;
          this.sub = [];
          this.subOverflow = false;
          this.state = State.SbData;
          break;
        case State.SbData:
          if (byte === IAC) this.state = State.SbIac;
          else this.pushSub(byte);
          break;
        case State.SbIac:
          if (byte === SE) {
            if (!this.subOverflow) this.subnegotiation(this.subOption, Buffer.from(this.sub));
            this.sub = [];
            this.state = State.Data;
          } else {
            // IAC IAC is a literal 255; anything else is a broken client: keep going.
            this.pushSub(byte);
            this.state = State.SbData;
          }
          break;
      }
    }
    if (this.state === State.Data) flush(chunk.length);
  }

  /** Encodes text for the client: UTF-8, with IAC (255) bytes doubled. */
  encodeText(text: string): Buffer {
    return escapeIac(Buffer.from(text, 'utf8'));
  }

  private pushSub(byte: number): void {
    if (this.sub.length >= this.maxSub) {
      this.subOverflow = true;
      return;
    }
    this.sub.push(byte);
  }

  private askRemote(out: number[], option: number): void {
    this.pendingRemote.add(option);
    out.push(IAC, DO, option);
  }

  private offerLocal(out: number[], option: number): void {
    this.pendingLocal.add(option);
    out.push(IAC, WILL, option);
  }

  private supportsLocal(option: number): boolean {
    return (
      option === TELNET_OPTION.SGA ||
      option === TELNET_OPTION.ECHO ||
      (option === TELNET_OPTION.GMCP && this.offerGmcp) ||
      (option === TELNET_OPTION.MCCP2 && this.offerMccp2)
    );
  }

  private supportsRemote(option: number): boolean {
    return option === TELNET_OPTION.NAWS || option === TELNET_OPTION.TTYPE;
  }

  private negotiate(verb: number, option: number): void {
    const out: number[] = [];
    if (verb === DO) {
      const wasPending = this.pendingLocal.delete(option);
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
      const wasPending = this.pendingLocal.delete(option);
      if (this.local.has(option)) {
        this.local.delete(option);
        if (!wasPending) out.push(IAC, WONT, option);
        if (option === TELNET_OPTION.GMCP) this.updateInfo({ gmcp: false });
      }
    } else if (verb === WILL) {
      const wasPending = this.pendingRemote.delete(option);
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
      const wasPending = this.pendingRemote.delete(option);
      if (this.remote.has(option)) {
        this.remote.delete(option);
        if (!wasPending) out.push(IAC, DONT, option);
      }
    }
    if (out.length > 0) this.sink.onSend(Buffer.from(out));
  }

  private enabledLocal(option: number, out: number[]): void {
    if (option === TELNET_OPTION.GMCP) this.updateInfo({ gmcp: true });
    if (option === TELNET_OPTION.MCCP2 && !this.info.mccp2) {
      // The compressed stream starts right after IAC SB MCCP2 IAC SE.
      out.push(IAC, SB, TELNET_OPTION.MCCP2, IAC, SE);
      this.sink.onSend(Buffer.from(out));
      out.length = 0;
      this.sink.onStartCompression();
      this.updateInfo({ mccp2: true });
    }
  }

  private requestTtype(out: number[]): void {
    this.ttypeRequests++;
    out.push(IAC, SB, TELNET_OPTION.TTYPE, TTYPE_SEND, IAC, SE);
  }

  private subnegotiation(option: number, data: Buffer): void {
    if (option === TELNET_OPTION.NAWS && data.length >= 4) {
      this.updateInfo({ naws: { width: data.readUInt16BE(0), height: data.readUInt16BE(2) } });
    } else if (option === TELNET_OPTION.TTYPE && data[0] === TTYPE_IS) {
      const name = data.subarray(1).toString('latin1').slice(0, 64);
      const list = this.info.ttype ?? [];
      const repeated = list.length > 0 && list[list.length - 1] === name;
      if (!repeated) {
        const ttype = [...list, name];
        const mtts = /^MTTS (\d+)$/.exec(name);
        this.updateInfo(mtts ? { ttype, mtts: Number(mtts[1]) } : { ttype });
      }
      // The MTTS cycle: ask again until the answer repeats or we asked three times.
      if (!repeated && this.ttypeRequests < 3) {
        const out: number[] = [];
        this.requestTtype(out);
        this.sink.onSend(Buffer.from(out));
      }
    } else if (option === TELNET_OPTION.GMCP && this.local.has(TELNET_OPTION.GMCP)) {
      const text = data.toString('utf8');
      const space = text.indexOf(' ');
      const packageName = space === -1 ? text : text.slice(0, space);
      const json = space === -1 ? '' : text.slice(space + 1);
      if (packageName.length > 0) this.sink.onGmcp(packageName, json);
    }
  }

  private updateInfo(change: Partial<TelnetInfo>): void {
    Object.assign(this.info, change);
    this.sink.onInfo(this.info);
  }
}

const CRLF = Buffer.from('\r\n');
const IAC_BYTE = Buffer.from([IAC]);

/** Doubles every IAC (255) byte so text cannot be read as a telnet command. */
export function escapeIac(bytes: Buffer): Buffer {
  let at = bytes.indexOf(IAC);
  if (at === -1) return bytes;
  const parts: Buffer[] = [];
  let start = 0;
  while (at !== -1) {
    parts.push(bytes.subarray(start, at + 1), IAC_BYTE);
    start = at + 1;
    at = bytes.indexOf(IAC, start);
  }
  parts.push(bytes.subarray(start));
  return Buffer.concat(parts);
}
