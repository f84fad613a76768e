/**
 * What a telnet session (`telnet.ts`) reports to, and what it is made
 * with: kept apart so the session's file holds its negotiation.
 *
 * @module
 */
import type { ImiError, TelnetInfo } from '@imi/core';
import type { TelnetExtension } from './telnet-extension.js';

/** Receives what a {@link TelnetSession} decodes. */
export interface TelnetSink {
  /**
   * Plain input bytes, protocol removed. Each line end the client sends
   * (`CR LF`, `CR NUL`, `LF CR`, `CR CR LF`, a lone `CR` or `LF`) becomes
   * one `CR LF` or `LF`; `IAC EC` becomes a BS.
   */
  onData(bytes: Buffer): void;
  /** Bytes to write to the client as they are (negotiation): never IAC-escaped again. */
  onSend(bytes: Buffer): void;
  /** The client's info changed (window size, terminal type, GMCP on, echo, …). */
  onInfo(info: Readonly<TelnetInfo>): void;
  /** A GMCP message from the client: `Package.Name` and its JSON text (`''` when it has none). */
  onGmcp(packageName: string, json: string): void;
  /** MCCP2 is on: compress every byte written after the bytes already given to `onSend`. */
  onStartCompression(): void;
  /** The client asked to stop MCCP2: end the compressed stream, then write plain bytes again. */
  onStopCompression(): void;
  /** The opening negotiation is over: every offer was answered and the terminal type cycle is done. */
  onSettled(): void;
  /**
   * The client broke the protocol (`IMI_BAD_TELNET`, or `IMI_LIMIT` for
   * `maxSubnegotiationBytes`); the bad part was dropped and input goes on.
   * Called once per fault.
   */
  onFault?(error: ImiError): void;
}

/** Options of {@link TelnetSession}. */
export interface TelnetSessionOptions {
  /** Offer MCCP2 (zlib compression of output). Default false. */
  mccp2?: boolean;
  /** Offer GMCP. Default true. */
  gmcp?: boolean;
  /**
   * Longest subnegotiation kept, in bytes. A longer one is dropped
   * (`IMI_LIMIT`): the rest of it is skipped up to its `IAC SE`, the next
   * other command or the next line end. Default
   * {@link DEFAULT_MAX_SUBNEGOTIATION_BYTES}.
   */
  maxSubnegotiationBytes?: number;
  /**
   * Write the app's text as NVT output (RFC 854): a bare LF becomes
   * `CR LF`, a bare CR becomes `CR NUL`. Default true; false writes it as
   * it is (IAC still doubled).
   */
  nvtOutput?: boolean;
  /** Offer EOR (RFC 885) at the start, so prompts can end with `IAC EOR`. Default true. */
  eor?: boolean;
  /** More options offered with `WILL` at the start, each run by its own object (MSSP, MSDP). */
  extensions?: readonly TelnetExtension[];
}
