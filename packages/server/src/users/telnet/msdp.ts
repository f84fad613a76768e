/**
 * MSDP, the MUD Server Data Protocol (telnet option 69,
 * https://tintin.mudhalla.net/protocols/msdp/), mapped to and from JSON so
 * that an app handles it like GMCP: one `gmcp` message per MSDP variable,
 * with `protocol: "msdp"`, its name as the package and its value as JSON.
 *
 * The mapping, both ways:
 *
 * | MSDP | JSON |
 * |---|---|
 * | `MSDP_VAR "HEALTH" MSDP_VAL "10"` | package `"HEALTH"`, value `"10"` (MSDP values are text) |
 * | `MSDP_VAL MSDP_ARRAY_OPEN MSDP_VAL "a" MSDP_VAL "b" MSDP_ARRAY_CLOSE` | `["a", "b"]` |
 * | `MSDP_VAL MSDP_TABLE_OPEN MSDP_VAR "k" MSDP_VAL "v" … MSDP_TABLE_CLOSE` | `{"k": "v"}` |
 * | `MSDP_VAR "REPORT" MSDP_VAL "HEALTH" MSDP_VAL "MANA"` (several values) | `["HEALTH", "MANA"]` |
 *
 * Going out, numbers and booleans become their text (`true` → `"1"`,
 * `false` → `"0"`), `null` an empty value.
 *
 * @module
 */
import { ImiError, type JsonValue, type TelnetInfo } from '@imi/core';
import type { TelnetExtension } from './telnet-extension.js';

/** The telnet option code of MSDP. */
export const MSDP_OPTION = 69;

/** MSDP's structure bytes. */
export const MSDP = {
  /** A variable name follows. */
  VAR: 1,
  /** A value follows. */
  VAL: 2,
  /** A table (JSON object) starts: `VAR name VAL value` pairs until {@link MSDP.TABLE_CLOSE}. */
  TABLE_OPEN: 3,
  /** The table ends. */
  TABLE_CLOSE: 4,
  /** An array starts: `VAL value` items until {@link MSDP.ARRAY_CLOSE}. */
  ARRAY_OPEN: 5,
  /** The array ends. */
  ARRAY_CLOSE: 6,
} as const;

/**
 * Deepest nesting of tables and arrays read from a client; deeper is
 * malformed (no MUD client nests more than a few levels, and the bound
 * keeps the decoder's recursion small).
 */
export const MAX_MSDP_DEPTH = 8;

/** A variable name as it becomes a package name: what an app may send back (1 to 128 characters, no whitespace or control characters). */
const VARIABLE_NAME = /^[^\s\x00-\x1f\x7f]{1,128}$/;
/** MSDP's structure bytes cannot be in text: they are dropped from values going out. */
const STRUCTURE = /[\x01-\x06]/g;

/** Why a subnegotiation is not MSDP; thrown inside the decoder, caught at its top. */
class Malformed extends Error {}

/** Reads one subnegotiation's bytes. */
class Reader {
  at = 0;
  constructor(readonly data: Buffer) {}

  get done(): boolean {
    return this.at >= this.data.length;
  }

  peek(): number | undefined {
    return this.data[this.at];
  }

  expect(byte: number, what: string): void {
    if (this.data[this.at] !== byte) throw new Malformed(`expected ${what} at byte ${this.at}`);
    this.at++;
  }

  /** Text up to the next structure byte (or the end): only bytes 1 to 6 are structure, a NUL is text. */
  text(): string {
    const start = this.at;
    while (this.at < this.data.length && (this.data[this.at]! === 0 || this.data[this.at]! > MSDP.ARRAY_CLOSE)) this.at++;
    return this.data.toString('utf8', start, this.at);
  }
}

/**
 * Decodes one MSDP subnegotiation (the bytes between `IAC SB MSDP` and
 * `IAC SE`) into its variables, in order.
 *
 * @returns the variables, or a string saying why the bytes are not MSDP
 */
export function decodeMsdp(data: Buffer): Array<[name: string, value: JsonValue]> | string {
  const reader = new Reader(data);
  try {
    if (reader.done) throw new Malformed('empty');
    const pairs = readPairs(reader, 0, undefined);
    for (const [name] of pairs) if (!VARIABLE_NAME.test(name)) throw new Malformed(`a variable name is not one: ${JSON.stringify(name.slice(0, 32))}`);
    return pairs;
  } catch (error) {
    if (error instanceof Malformed) return error.message;
    throw error;
  }
}

/** `VAR name VAL value [VAL value …]` pairs until `close` (or the end at the top). */
function readPairs(reader: Reader, depth: number, close: number | undefined): Array<[string, JsonValue]> {
  const pairs: Array<[string, JsonValue]> = [];
  for (;;) {
    if (reader.done) {
      if (close !== undefined) throw new Malformed('a table is not closed');
      return pairs;
    }
    if (close !== undefined && reader.peek() === close) {
      reader.at++;
      return pairs;
    }
    reader.expect(MSDP.VAR, 'MSDP_VAR');
    const name = reader.text();
    if (reader.peek() !== MSDP.VAL) throw new Malformed(`variable ${JSON.stringify(name.slice(0, 32))} has no MSDP_VAL`);
    const values: JsonValue[] = [];
    while (reader.peek() === MSDP.VAL) {
      reader.at++;
      values.push(readValue(reader, depth));
    }
    pairs.push([name, values.length === 1 ? values[0]! : values]);
  }
}

/** What follows an `MSDP_VAL`: a table, an array or text. */
function readValue(reader: Reader, depth: number): JsonValue {
  const next = reader.peek();
  if (next === MSDP.TABLE_OPEN || next === MSDP.ARRAY_OPEN) {
    if (depth >= MAX_MSDP_DEPTH) throw new Malformed(`nested deeper than ${MAX_MSDP_DEPTH} levels`);
    reader.at++;
    if (next === MSDP.TABLE_OPEN) return Object.fromEntries(readPairs(reader, depth + 1, MSDP.TABLE_CLOSE));
    const items: JsonValue[] = [];
    for (;;) {
      if (reader.done) throw new Malformed('an array is not closed');
      if (reader.peek() === MSDP.ARRAY_CLOSE) {
        reader.at++;
        return items;
      }
      reader.expect(MSDP.VAL, 'MSDP_VAL in an array');
      items.push(readValue(reader, depth + 1));
    }
  }
  if (next === MSDP.TABLE_CLOSE || next === MSDP.ARRAY_CLOSE) throw new Malformed(`a close without its open at byte ${reader.at}`);
  return reader.text();
}

/**
 * Encodes one variable for the client (the body of the subnegotiation,
 * before IAC doubling): `MSDP_VAR name MSDP_VAL value`.
 *
 * @param name - the variable (the app's package name)
 * @param value - its value; absent: an empty value
 */
export function encodeMsdp(name: string, value: JsonValue | undefined): Buffer {
  const out: Buffer[] = [Buffer.from([MSDP.VAR]), Buffer.from(name.replace(STRUCTURE, ''), 'utf8'), Buffer.from([MSDP.VAL])];
  encodeValue(value ?? null, out);
  return Buffer.concat(out);
}

function encodeValue(value: JsonValue, out: Buffer[]): void {
  if (Array.isArray(value)) {
    out.push(Buffer.from([MSDP.ARRAY_OPEN]));
    for (const item of value) {
      out.push(Buffer.from([MSDP.VAL]));
      encodeValue(item, out);
    }
    out.push(Buffer.from([MSDP.ARRAY_CLOSE]));
  } else if (value !== null && typeof value === 'object') {
    out.push(Buffer.from([MSDP.TABLE_OPEN]));
    for (const [key, item] of Object.entries(value)) {
      out.push(Buffer.from([MSDP.VAR]), Buffer.from(key.replace(STRUCTURE, ''), 'utf8'), Buffer.from([MSDP.VAL]));
      encodeValue(item, out);
    }
    out.push(Buffer.from([MSDP.TABLE_CLOSE]));
  } else {
    const text = value === null ? '' : value === true ? '1' : value === false ? '0' : String(value);
    out.push(Buffer.from(text.replace(STRUCTURE, ''), 'utf8'));
  }
}

/**
 * imi's side of MSDP on one telnet connection: offered at the start like
 * GMCP; once on, each variable the client sends is handed on as JSON text,
 * and a subnegotiation that is not MSDP is dropped and reported
 * (`IMI_BAD_TELNET`): it never stops the input.
 */
export class MsdpOption implements TelnetExtension {
  readonly option = MSDP_OPTION;
  private readonly onVariable: (name: string, json: string) => void;
  private readonly onFault: (error: ImiError) => void;

  /**
   * @param onVariable - a variable from the client: its name and its value as JSON text
   * @param onFault - a malformed subnegotiation, dropped
   */
  constructor(onVariable: (name: string, json: string) => void, onFault: (error: ImiError) => void) {
    this.onVariable = onVariable;
    this.onFault = onFault;
  }

  enabled(): Partial<TelnetInfo> {
    return { msdp: true };
  }

  disabled(): Partial<TelnetInfo> {
    return { msdp: false };
  }

  receive(data: Buffer): void {
    const decoded = decodeMsdp(data);
    if (typeof decoded === 'string') {
      this.onFault(new ImiError('IMI_BAD_TELNET', `a malformed MSDP message was dropped (${decoded})`));
      return;
    }
    for (const [name, value] of decoded) this.onVariable(name, JSON.stringify(value));
  }
}
