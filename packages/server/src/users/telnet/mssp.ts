/**
 * MSSP, the MUD Server Status Protocol (telnet option 70,
 * https://tintin.mudhalla.net/protocols/mssp/): MUD listing crawlers
 * connect, answer imi's `WILL MSSP` with `DO MSSP`, read the server's
 * variables from one subnegotiation and go. Crawlers that do not speak
 * telnet send the line `MSSP-REQUEST` instead and get the same variables as
 * text between `MSSP-REPLY-START` and `MSSP-REPLY-END`.
 *
 * `NAME`, `PLAYERS` and `UPTIME` come from the intermediary (its option,
 * its live sessions, its own start: an app restart does not reset the
 * uptime); the app supplies the rest with the `mssp` message, and the
 * intermediary keeps the last set across app restarts.
 *
 * @module
 */
import type { MsspValue, TelnetInfo } from '@imi/core';
import { TELNET, escapeIac } from './telnet-parser.js';
import type { TelnetExtension } from './telnet-extension.js';

/** The telnet option code of MSSP. */
export const MSSP_OPTION = 70;
/** MSSP_VAR: a variable name follows. */
export const MSSP_VAR = 1;
/** MSSP_VAL: a value follows (several may follow one name). */
export const MSSP_VAL = 2;

/** MSSP variables in the order they are sent: each name with its values, as text. */
export type MsspTable = ReadonlyArray<readonly [name: string, values: readonly string[]]>;

/** The variables the intermediary fills in itself; the app's `PLAYERS` and `UPTIME` would be stale. */
const OWN_VARIABLES: ReadonlySet<string> = new Set(['NAME', 'PLAYERS', 'UPTIME']);

/** Control characters, which cannot be in an MSSP name or value (1 and 2 are MSSP_VAR and MSSP_VAL). */
const CONTROL = /[\x00-\x1f\x7f]/g;

/**
 * The body of the MSSP subnegotiation (what goes between `IAC SB MSSP` and
 * `IAC SE`, before IAC doubling): `MSSP_VAR name MSSP_VAL value [MSSP_VAL
 * value …]` for each variable, UTF-8.
 */
export function encodeMssp(table: MsspTable): Buffer {
  const parts: Buffer[] = [];
  for (const [name, values] of table) {
    parts.push(Buffer.from([MSSP_VAR]), Buffer.from(name.replace(CONTROL, ''), 'utf8'));
    for (const value of values) parts.push(Buffer.from([MSSP_VAL]), Buffer.from(value.replace(CONTROL, ''), 'utf8'));
  }
  return Buffer.concat(parts);
}

/** The plain-text request of a crawler that does not speak telnet. */
const PLAIN_REQUEST = 'MSSP-REQUEST';
/** Longest first line still looked at for {@link PLAIN_REQUEST}, in bytes. */
const MAX_REQUEST_LINE = 32;

/**
 * The plain-text answer to a crawler's `MSSP-REQUEST` line: a line end,
 * `MSSP-REPLY-START`, one line per variable (its name and each of its values
 * separated by tabs), `MSSP-REPLY-END`; lines end with CR LF, text is UTF-8.
 */
export function encodeMsspText(table: MsspTable): Buffer {
  let text = '\r\nMSSP-REPLY-START\r\n';
  for (const [name, values] of table) text += [name, ...values].map((part) => part.replace(CONTROL, '')).join('\t') + '\r\n';
  return Buffer.from(text + 'MSSP-REPLY-END\r\n', 'utf8');
}

/**
 * What the intermediary tells crawlers: its own variables and the last set
 * the app gave. One per intermediary.
 */
export class ServerStatus {
  /** When the intermediary started, in unix seconds (MSSP's `UPTIME`). */
  readonly startedAt = Math.floor(Date.now() / 1000);
  private readonly name: string;
  private readonly players: () => number;
  private appVariables: Readonly<Record<string, MsspValue>> = {};

  /**
   * @param name - `NAME` when the app gave none (the `msspName` option)
   * @param players - the number of live sessions, for `PLAYERS`
   */
  constructor(name: string, players: () => number) {
    this.name = name;
    this.players = players;
  }

  /** Replaces the app's variables (an `mssp` message, validated). */
  set(variables: Readonly<Record<string, MsspValue>>): void {
    this.appVariables = { ...variables };
  }

  /** The app's variables, as last set. */
  get variables(): Readonly<Record<string, MsspValue>> {
    return this.appVariables;
  }

  /** The variables to send now: `NAME`, `PLAYERS`, `UPTIME`, then the app's. */
  table(): MsspTable {
    const listed = (value: MsspValue): string[] => (Array.isArray(value) ? value : [value]).map(String);
    const appName = this.appVariables['NAME'];
    const rows: Array<readonly [string, readonly string[]]> = [
      ['NAME', appName === undefined || listed(appName).length === 0 ? [this.name] : listed(appName)],
      ['PLAYERS', [String(this.players())]],
      ['UPTIME', [String(this.startedAt)]],
    ];
    for (const [name, value] of Object.entries(this.appVariables)) if (!OWN_VARIABLES.has(name)) rows.push([name, listed(value)]);
    return rows;
  }
}

/**
 * imi's side of MSSP on one telnet connection: offered at the start; a
 * client that says `DO MSSP` gets the variables at once. {@link requested}
 * tells the channel that this is probably a crawler, which it does not
 * announce before the negotiation window is over.
 */
export class MsspOption implements TelnetExtension {
  readonly option = MSSP_OPTION;
  /** Whether the client asked for the variables (`DO MSSP`). */
  requested = false;
  private readonly table: () => MsspTable;
  /** The client's first line so far while it may still be the plain-text request; undefined once it cannot. */
  private firstLine: string | undefined = '';

  /** @param table - the variables as they are when asked */
  constructor(table: () => MsspTable) {
    this.table = table;
  }

  enabled(out: number[]): Partial<TelnetInfo> | undefined {
    this.requested = true;
    out.push(TELNET.IAC, TELNET.SB, MSSP_OPTION, ...escapeIac(encodeMssp(this.table())), TELNET.IAC, TELNET.SE);
    return undefined;
  }

  disabled(): Partial<TelnetInfo> | undefined {
    return undefined;
  }

  /** Clients send nothing in MSSP subnegotiations; anything is ignored. */
  receive(): void {}

  /**
   * Looks at the input (protocol removed) for the plain-text request: a
   * first line `MSSP-REQUEST` (any case, white space around it allowed).
   * Only the first line counts, and only its first 32 bytes are kept.
   *
   * @param input - bytes the client typed, in order, telnet commands removed
   * @returns true once the request came
   */
  watchFirstLine(input: Buffer): boolean {
    if (this.firstLine === undefined) return false;
    for (const byte of input) {
      if (byte === 0x0a) {
        const line = this.firstLine.trim().toUpperCase();
        this.firstLine = undefined;
        return line === PLAIN_REQUEST;
      }
      if (byte !== 0x0d) this.firstLine += String.fromCharCode(byte);
      const typed = this.firstLine.trimStart().toUpperCase();
      const possible = typed.length <= PLAIN_REQUEST.length ? PLAIN_REQUEST.startsWith(typed) : typed.startsWith(PLAIN_REQUEST) && typed.trimEnd() === PLAIN_REQUEST;
      if (!possible || this.firstLine.length > MAX_REQUEST_LINE) {
        this.firstLine = undefined;
        return false;
      }
    }
    return false;
  }

  /** The variables as text, for the plain-text request (see {@link encodeMsspText}). */
  textReply(): Buffer {
    return encodeMsspText(this.table());
  }
}
