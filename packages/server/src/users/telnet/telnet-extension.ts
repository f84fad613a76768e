/**
 * The seam for telnet options imi offers besides its own core set: each is
 * an object the {@link TelnetSession} consults for one option code, so
 * MSSP and MSDP live in their own files (`mssp.ts`, `msdp.ts`).
 *
 * @module
 */
import type { TelnetInfo } from '@imi/core';

/**
 * A telnet option the server offers with `WILL` at the start of the
 * connection and runs outside `telnet.ts`.
 */
export interface TelnetExtension {
  /** The option code, offered with `WILL` in the opening negotiation. */
  readonly option: number;
  /**
   * The client agreed (`DO`). Bytes pushed to `out` are written right after
   * the negotiation reply (a subnegotiation: MSSP's variables); the returned
   * change, if any, goes into the user's telnet info.
   */
  enabled(out: number[]): Partial<TelnetInfo> | undefined;
  /** The client refused or turned it off (`DONT`): the change to the telnet info, if any. */
  disabled(): Partial<TelnetInfo> | undefined;
  /** A subnegotiation of this option from the client, while the option is on. */
  receive(data: Buffer): void;
}
