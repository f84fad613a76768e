/**
 * The parts of a telnet channel a session snapshot does not hold, for a
 * handover between processes: where the parser is inside a command, input
 * held while the channel was paused, and the MCCP2 stream, which cannot
 * cross processes (zlib state is in memory) so it is ended before and
 * started again after, as MUD copyovers do.
 *
 * Like `telnet-state.ts`, this reaches into the channel with bracket access
 * (type-checked) instead of adding methods to files being reworked
 * elsewhere.
 *
 * @module
 */
import { TELNET, TELNET_OPTION } from '../users/telnet/telnet.js';
import type { TelnetChannel } from '../users/telnet/telnet-channel.js';
import type { TelnetExtra } from './protocol.js';

/** Reads what the channel holds beyond its negotiated state (copies). */
export function readTelnetExtra(channel: TelnetChannel): TelnetExtra {
  const parser = channel['session']['parser'];
  const held: Buffer[] = [];
  const heldGmcp: Array<[string, string]> = [];
  for (const item of channel['held']) {
    if (Buffer.isBuffer(item)) held.push(item);
    else heldGmcp.push([item.packageName, item.json]);
  }
  return {
    parser: { state: parser['state'], verb: parser['verb'], subOption: parser['subOption'], sub: Buffer.from(parser['sub']).toString('base64'), subMax: parser['subMax'] },
    held: Buffer.concat(held).toString('base64'),
    heldGmcp,
  };
}

/**
 * Puts it back into a restored channel (before it reads anything). Held
 * GMCP messages come after the held input: their relative order is not
 * kept (GMCP is not queued for the app anyway).
 */
export function writeTelnetExtra(channel: TelnetChannel, extra: TelnetExtra): void {
  const parser = channel['session']['parser'];
  parser['state'] = extra.parser.state;
  parser['verb'] = extra.parser.verb;
  parser['subOption'] = extra.parser.subOption;
  parser['sub'] = [...Buffer.from(extra.parser.sub, 'base64')];
  parser['subMax'] = extra.parser.subMax;
  const held = Buffer.from(extra.held, 'base64');
  if (held.length > 0) {
    channel['held'].push(held);
    channel['heldBytes'] += held.length;
  }
  for (const [packageName, json] of extra.heldGmcp) channel['held'].push({ packageName, json, protocol: undefined });
}

/** Ends the channel's compressed stream, if one runs (the client goes back to plain bytes); returns whether it did. */
export function endCompression(channel: TelnetChannel): boolean {
  if (channel['deflate'] === undefined) return false;
  channel['stopCompression']();
  return true;
}

/** Whether the channel is still finishing a compressed stream or has output not handed to the kernel. */
export function telnetFlushing(channel: TelnetChannel): boolean {
  return channel['stopping'] !== undefined || channel.writableLength > 0;
}

/** Starts a new compressed stream after {@link endCompression} (the upgrade did not happen). */
export function restartCompression(channel: TelnetChannel): void {
  const { IAC, SB, SE } = TELNET;
  channel['send'](Buffer.from([IAC, SB, TELNET_OPTION.MCCP2, IAC, SE]));
  channel['startCompression']();
}
