/**
 * The telnet byte parser (RFC 854/855): splits what a client sends into
 * plain input, commands and subnegotiations, normalises line ends, and
 * never stays stuck in a state plain input cannot leave. And its way back:
 * {@link NvtEncoder}, which turns the app's text into NVT output.
 *
 * It knows nothing of negotiation: {@link TelnetSession} drives it.
 *
 * @module
 */
import { ImiError, LimitError } from '@imi/core';

/** Telnet command bytes. */
export const TELNET = {
  /** Interpret as command: starts every command; doubled, a literal 255. */
  IAC: 255,
  /** Refuse, or ask to stop, an option on the other side. */
  DONT: 254,
  /** Ask the other side to use an option. */
  DO: 253,
  /** Refuse, or stop, an option on this side. */
  WONT: 252,
  /** Offer, or agree, to use an option on this side. */
  WILL: 251,
  /** Subnegotiation begins. */
  SB: 250,
  /** Go ahead. */
  GA: 249,
  /** Erase character (RFC 854): the parser turns it into a BS for the line editor. */
  EC: 247,
  /** End of record (RFC 885): marks the end of a prompt once the client agreed to the EOR option. */
  EOR: 239,
  /** No operation. */
  NOP: 241,
  /** Subnegotiation ends. */
  SE: 240,
} as const;

/** Telnet option codes imi knows. */
export const TELNET_OPTION = {
  /**
   * RFC 856: transmit binary. imi refuses it (`WONT`/`DONT`), so its output
   * is always NVT text (see `TelnetSessionOptions.nvtOutput`).
   */
  BINARY: 0,
  /** RFC 857: the side that WILL ECHO echoes what the user types (so the client does not). */
  ECHO: 1,
  /** RFC 858: suppress go-ahead. */
  SGA: 3,
  /** RFC 1091: terminal type (and MTTS, its MUD extension). */
  TTYPE: 24,
  /** RFC 885: end of record. Once the client agreed (`DO EOR`), prompts end with `IAC EOR`. */
  EOR: 25,
  /** RFC 1073: negotiate about window size. */
  NAWS: 31,
  /** MUD server data protocol: variables, arrays and tables (offered through `msdp.ts`). */
  MSDP: 69,
  /** MUD server status protocol: the listing crawlers' variables (offered through `mssp.ts`). */
  MSSP: 70,
  /** MUD client compression protocol v2: zlib stream of the server's output. */
  MCCP2: 86,
  /** Generic MUD communication protocol: `Package.Name <json>` messages. */
  GMCP: 201,
} as const;

/** Default longest telnet subnegotiation kept (`maxSubnegotiationBytes`), in bytes: 8 KiB. */
export const DEFAULT_MAX_SUBNEGOTIATION_BYTES = 8 * 1024;

/**
 * Longest subnegotiation kept for an option enabled on neither side, in
 * bytes; a longer one is dropped like an overlong one (`IMI_BAD_TELNET`).
 */
export const MAX_STRAY_SUBNEGOTIATION_BYTES = 256;

const { IAC, DONT, DO, WONT, WILL, SB, SE, EC } = TELNET;
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;
const BS = 0x08;

/** Receives what a {@link TelnetParser} finds. */
export interface TelnetParserSink {
  /**
   * Plain input bytes, protocol removed. Every line end the client sends
   * (`CR LF`, `CR NUL`, `LF CR`, `CR CR LF`, a lone `CR` or `LF`) arrives
   * as exactly one `CR LF` or `LF`; `IAC EC` arrives as a BS (0x08).
   */
  data(bytes: Buffer): void;
  /** `IAC WILL|WONT|DO|DONT option`. */
  command(verb: number, option: number): void;
  /** A complete subnegotiation (`IAC SB option … IAC SE`), IAC IAC undoubled. */
  subnegotiation(option: number, data: Buffer): void;
  /** The client broke the protocol; the parser recovered. Called once per fault. */
  fault(error: ImiError): void;
}

/** Options of {@link TelnetParser}. */
export interface TelnetParserOptions {
  /**
   * Longest subnegotiation kept, in bytes (after undoubling IAC IAC). A
   * longer one is dropped: the rest of it is skipped up to its `IAC SE`,
   * the next other command, or the next line end, whichever comes first.
   */
  maxSubnegotiationBytes: number;
  /**
   * Whether an option is enabled on either side. RFC 855 allows
   * subnegotiations only for enabled options, so one of an option that is
   * not is most likely a stray `IAC SB` (an unescaped 255 followed by 250,
   * as a cp1251 client typing `яъ` sends): it is bounded by
   * {@link MAX_STRAY_SUBNEGOTIATION_BYTES} instead, so such a user loses a
   * few lines of typing, not kilobytes.
   */
  isEnabled(option: number): boolean;
}

const enum State {
  Data,
  /** After a CR that ended a line: LF or NUL is its pair, CR may start `CR CR LF`. */
  Cr,
  /** After `CR CR`: LF makes it one line end; anything else, the second CR ended an empty line. */
  CrCr,
  /** After an LF that ended a line: a CR is its pair (`LF CR`). */
  Lf,
  Iac,
  Verb,
  Sb,
  SbData,
  SbIac,
  /** Skipping the rest of an overlong subnegotiation. */
  SbSkip,
  SbSkipIac,
}

/**
 * Where a telnet session's byte parser is inside a command, as plain data
 * ({@link TelnetSession.exportParserState}): what a handover carries so the bytes after it parse the same in the successor
 * (same code version: `state` is the parser's own numbering).
 */
export interface TelnetParserState {
  /** The parser's state. */
  state: number;
  /** The verb (`WILL`, `DO`, …) read before the option byte. */
  verb: number;
  /** The option of the subnegotiation being read. */
  subOption: number;
  /** Its bytes so far (a copy). */
  sub: Buffer;
  /** Its bound, in bytes. */
  subMax: number;
}

/**
 * A telnet byte parser. Fed one byte at a time or a megabyte at once, it
 * reports the same.
 *
 * Recovery rules (so no state swallows input for good): inside a
 * subnegotiation, `IAC` followed by anything but `SE` or `IAC` ends it
 * (dropped) and is read as a command; a subnegotiation over
 * {@link TelnetParserOptions.maxSubnegotiationBytes} is dropped; one of an
 * option not enabled ends at a line end. Each is reported once to
 * {@link TelnetParserSink.fault}.
 */
export class TelnetParser {
  private readonly sink: TelnetParserSink;
  private readonly maxSub: number;
  private readonly isEnabled: (option: number) => boolean;
  private state = State.Data;
  private verb = 0;
  private subOption = 0;
  private sub: number[] = [];
  /** The bound of the subnegotiation being read. */
  private subMax = 0;

  /**
   * @param sink - receives input, commands, subnegotiations and faults
   * @param options - the subnegotiation bound, and which options are enabled
   */
  constructor(sink: TelnetParserSink, options: TelnetParserOptions) {
    this.sink = sink;
    this.maxSub = options.maxSubnegotiationBytes;
    this.isEnabled = options.isEnabled;
  }

  /** Where it is inside a command (copies). */
  exportState(): TelnetParserState {
    return { state: this.state, verb: this.verb, subOption: this.subOption, sub: Buffer.from(this.sub), subMax: this.subMax };
  }

  /** Puts back what {@link exportState} took, before anything is fed. */
  importState(state: TelnetParserState): void {
    this.state = state.state as State;
    this.verb = state.verb;
    this.subOption = state.subOption;
    this.sub = [...state.sub];
    this.subMax = state.subMax;
  }

  /** Feeds bytes read from the socket; everything found is reported before this returns. */
  receive(chunk: Buffer): void {
    const sink = this.sink;
    // Plain bytes are passed on as subarrays of the chunk, one per run.
    let dataStart = -1;
    const length = chunk.length;
    for (let i = 0; i < length; i++) {
      const byte = chunk[i]!;
      switch (this.state) {
        case State.Data:
          if (byte === IAC || byte === CR) {
            if (dataStart !== -1 && i > dataStart) sink.data(chunk.subarray(dataStart, i));
            dataStart = -1;
            if (byte === IAC) {
              this.state = State.Iac;
            } else {
              // A CR ends the line at once (a client may send nothing after
              // it); its pair, if one follows, is swallowed.
              sink.data(CRLF);
              this.state = State.Cr;
            }
          } else {
            if (dataStart === -1) dataStart = i;
            if (byte === LF) this.state = State.Lf;
          }
          break;
        case State.Cr:
          this.state = State.Data;
          if (byte === CR) this.state = State.CrCr;
          else if (byte !== LF && byte !== NUL) i--; // not part of the line end: read it again as data
          break;
        case State.CrCr:
          if (byte === LF) {
            this.state = State.Data; // CR CR LF: one line end
          } else {
            sink.data(CRLF); // the second CR ended an empty line
            if (byte === NUL) this.state = State.Data;
            else if (byte !== CR) {
              this.state = State.Data;
              i--;
            }
          }
          break;
        case State.Lf:
          this.state = State.Data;
          if (byte === CR) {
            // LF CR: the CR is the pair of the LF, not a line end of its own.
            if (dataStart !== -1 && i > dataStart) sink.data(chunk.subarray(dataStart, i));
            dataStart = -1;
          } else {
            i--;
          }
          break;
        case State.Iac:
          this.command(byte);
          break;
        case State.Verb:
          this.state = State.Data;
          sink.command(this.verb, byte);
          break;
        case State.Sb:
          if (byte === IAC) {
            // IAC SB IAC: no option at all. The IAC starts a command.
            this.fail(new ImiError('IMI_BAD_TELNET', 'a telnet subnegotiation had no option (IAC SB IAC): ignored'));
            this.state = State.Iac;
          } else {
            this.subOption = byte;
            this.sub = [];
            this.subMax = this.isEnabled(byte) ? this.maxSub : Math.min(this.maxSub, MAX_STRAY_SUBNEGOTIATION_BYTES);
            this.state = State.SbData;
          }
          break;
        case State.SbData:
          if (byte === IAC) {
            this.state = State.SbIac;
          } else {
            this.pushSub(byte);
          }
          break;
        case State.SbIac:
          if (byte === SE) {
            this.state = State.Data;
            const data = Buffer.from(this.sub);
            this.sub = [];
            sink.subnegotiation(this.subOption, data);
          } else if (byte === IAC) {
            this.state = State.SbData;
            this.pushSub(IAC);
          } else {
            this.fail(new ImiError('IMI_BAD_TELNET', `a telnet subnegotiation of option ${this.subOption} was cut short by IAC ${byte} (no IAC SE): dropped, the command was read`));
            this.state = State.Iac;
            i--;
          }
          break;
        case State.SbSkip:
          if (byte === IAC) this.state = State.SbSkipIac;
          else if (byte === CR || byte === LF) {
            this.state = State.Data;
            i--;
          }
          break;
        case State.SbSkipIac:
          if (byte === SE) this.state = State.Data;
          else if (byte === IAC) this.state = State.SbSkip;
          else {
            this.state = State.Iac;
            i--;
          }
          break;
      }
    }
    if (dataStart !== -1 && length > dataStart) sink.data(chunk.subarray(dataStart, length));
  }

  /** The byte after an IAC outside a subnegotiation. */
  private command(byte: number): void {
    if (byte === IAC) {
      this.sink.data(IAC_BYTE);
      this.state = State.Data;
    } else if (byte === WILL || byte === WONT || byte === DO || byte === DONT) {
      this.verb = byte;
      this.state = State.Verb;
    } else if (byte === SB) {
      this.state = State.Sb;
    } else {
      // The line editor erases on BS; NOP, GA, AYT, IP…: nothing for a line protocol.
      if (byte === EC) this.sink.data(BS_BYTE);
      this.state = State.Data;
    }
  }

  private pushSub(byte: number): void {
    if (this.sub.length < this.subMax) {
      this.sub.push(byte);
      return;
    }
    const option = this.subOption;
    const rest = 'dropped, input goes on after its IAC SE, the next command or the next line end';
    this.fail(
      this.subMax === this.maxSub
        ? new LimitError('maxSubnegotiationBytes', this.maxSub, `a telnet subnegotiation of option ${option} was longer than ${this.maxSub} bytes: ${rest}`)
        : new ImiError('IMI_BAD_TELNET', `a telnet subnegotiation of option ${option}, which is not enabled, ran over ${this.subMax} bytes without IAC SE: ${rest}`),
    );
    this.state = State.SbSkip;
  }

  private fail(error: ImiError): void {
    this.sub = [];
    this.sink.fault(error);
  }
}

const CRLF = Buffer.from('\r\n');
const IAC_BYTE = Buffer.from([IAC]);
const BS_BYTE = Buffer.from([BS]);

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

/**
 * Writes text as the NVT (RFC 854) expects it on a connection that is not
 * in BINARY mode (RFC 856; imi never agrees to it): a bare LF becomes
 * `CR LF`, a bare CR becomes `CR NUL`, `CR LF` and `CR NUL` stay as they
 * are, and IAC (255) is doubled.
 *
 * A CR at the very end of one piece of text is written at once; only the
 * byte that follows it waits for the next call: `LF` when the next text
 * starts with LF (so `"a\r"` then `"\nb"` is `a CR LF b`, as if written
 * together), `NUL` otherwise. Anything else written meanwhile (a telnet
 * command, a GMCP message, the end of the connection) must first take
 * {@link close}'s `NUL`. The user's terminal acts on the CR at once, so
 * nothing visible is ever held back.
 */
export class NvtEncoder {
  /** The last byte written was a CR whose follower (`LF` or `NUL`) is not written yet. */
  private crOpen = false;

  /** Whether a CR was written last and waits for its follower. */
  get pendingCr(): boolean {
    return this.crOpen;
  }

  /** Restores it, for text going on where another encoder stopped (a session moved to a new socket or process). */
  set pendingCr(open: boolean) {
    this.crOpen = open;
  }

  /**
   * Encodes text (UTF-8 bytes, or any bytes) for the client.
   *
   * @param bytes - the text; returned itself when nothing needs changing
   * @returns the NVT bytes
   */
  encode(bytes: Buffer): Buffer {
    const length = bytes.length;
    if (length === 0) return bytes;
    let i = 0;
    if (!this.crOpen) {
      // The common case: nothing to change up to a CR LF at the very end.
      while (i < length) {
        const byte = bytes[i]!;
        if (byte === IAC || byte === LF) break;
        if (byte === CR) {
          if (i + 1 < length && (bytes[i + 1] === LF || bytes[i + 1] === NUL)) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      if (i === length) return bytes;
    }
    // Worst case: every byte doubled, plus the NUL of a CR left open before.
    const out = Buffer.allocUnsafe(length * 2 + 1);
    bytes.copy(out, 0, 0, i);
    let at = i;
    for (; i < length; i++) {
      const byte = bytes[i]!;
      if (this.crOpen) {
        this.crOpen = false;
        if (byte === LF || byte === NUL) {
          out[at++] = byte;
          continue;
        }
        out[at++] = NUL;
      }
      if (byte === CR) {
        out[at++] = CR;
        this.crOpen = true;
      } else if (byte === LF) {
        out[at++] = CR;
        out[at++] = LF;
      } else if (byte === IAC) {
        out[at++] = IAC;
        out[at++] = IAC;
      } else {
        out[at++] = byte;
      }
    }
    return out.subarray(0, at);
  }

  /**
   * Ends a CR left open by the last {@link encode}: returns the `NUL` that
   * must follow it before anything that is not text, or an empty buffer.
   */
  close(): Buffer {
    if (!this.crOpen) return EMPTY;
    this.crOpen = false;
    return NUL_BYTE;
  }
}

const EMPTY = Buffer.alloc(0);
const NUL_BYTE = Buffer.from([NUL]);
