/**
 * MSSP, the MUD Server Status Protocol (telnet option 70,
 * https://tintin.mudhalla.net/protocols/mssp/): MUD listing crawlers
 * connect, answer imi's `WILL MSSP` with `DO MSSP`, read the server's
 * variables from one subnegotiation and go.
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
}
