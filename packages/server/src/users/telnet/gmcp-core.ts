/**
 * What a restarted app needs to know of a client's GMCP: its `Core.Hello`
 * and the packages it listed with `Core.Supports.*`, kept in the telnet
 * info (the app gets it again in `connect.data.telnet`).
 *
 * @module
 */
import type { JsonObject, TelnetInfo } from '@imi/core';

/** Most GMCP packages kept in {@link TelnetInfo.gmcpSupports}. */
const MAX_GMCP_SUPPORTS = 64;
/** Longest terminal type or GMCP package entry kept, in characters. */
const MAX_NAME_LENGTH = 64;
/** Longest `Core.Hello` kept, in bytes of JSON. */
const MAX_GMCP_HELLO_BYTES = 1024;

/** Keeps printable ASCII (and Latin-1 letters), cut to {@link MAX_NAME_LENGTH} characters. */
export function printable(text: string): string {
  return text.replace(/[^\x20-\x7e\xa0-\xff]/g, '').slice(0, MAX_NAME_LENGTH);
}

/**
 * The change a GMCP message makes to the telnet info: `Core.Hello` and
 * `Core.Supports.Set/Add/Remove` (names are case-insensitive); undefined
 * for any other message, or one whose payload does not fit.
 */
export function gmcpCoreChange(info: Readonly<TelnetInfo>, packageName: string, json: string): Partial<TelnetInfo> | undefined {
  const name = packageName.toLowerCase();
  if (!name.startsWith('core.')) return undefined;
  let value: unknown;
  try {
    value = json === '' ? undefined : JSON.parse(json);
  } catch {
    return undefined;
  }
  if (name === 'core.hello') {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && json.length <= MAX_GMCP_HELLO_BYTES) return { gmcpHello: value as JsonObject };
    return undefined;
  }
  if (name !== 'core.supports.set' && name !== 'core.supports.add' && name !== 'core.supports.remove') return undefined;
  if (!Array.isArray(value)) return undefined;
  const given = value.filter((entry): entry is string => typeof entry === 'string').map((entry) => printable(entry));
  const moduleOf = (entry: string): string => entry.split(' ')[0]!.toLowerCase();
  let supports = name === 'core.supports.set' ? [] : [...(info.gmcpSupports ?? [])];
  if (name === 'core.supports.remove') {
    const gone = new Set(given.map(moduleOf));
    supports = supports.filter((entry) => !gone.has(moduleOf(entry)));
  } else {
    for (const entry of given) {
      const module = moduleOf(entry);
      supports = supports.filter((old) => moduleOf(old) !== module);
      if (supports.length < MAX_GMCP_SUPPORTS) supports.push(entry);
    }
  }
  return { gmcpSupports: supports };
}
