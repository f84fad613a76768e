/**
 * The parts of a telnet channel a session snapshot does not hold, for a
 * handover between processes: where the parser is inside a command, input
 * held while the channel was paused, and the MCCP2 stream, which cannot
 * cross processes (zlib state is in memory) so it is ended before and
 * started again after, as MUD copyovers do. The channel itself reads and
 * sets them ({@link TelnetChannel.exportState} / {@link TelnetChannel.importState});
 * this turns them into the handover message's JSON and back.
 *
 * @module
 */
import type { TelnetChannel } from '../users/telnet/telnet-channel.js';
import type { TelnetExtra } from './protocol.js';

/** Reads what the channel holds beyond its negotiated state (copies). */
export function readTelnetExtra(channel: TelnetChannel): TelnetExtra {
  const { parser, held, heldGmcp } = channel.exportState();
  return {
    parser: { state: parser.state, verb: parser.verb, subOption: parser.subOption, sub: parser.sub.toString('base64'), subMax: parser.subMax },
    held: held.toString('base64'),
    heldGmcp,
  };
}

/**
 * Puts it back into a restored channel (before it reads anything). Held
 * GMCP messages come after the held input: their relative order is not
 * kept (GMCP is not queued for the app anyway).
 */
export function writeTelnetExtra(channel: TelnetChannel, extra: TelnetExtra): void {
  const { parser } = extra;
  channel.importState({
    parser: { state: parser.state, verb: parser.verb, subOption: parser.subOption, sub: Buffer.from(parser.sub, 'base64'), subMax: parser.subMax },
    held: Buffer.from(extra.held, 'base64'),
    heldGmcp: extra.heldGmcp,
  });
}

/** Ends the channel's compressed stream, if one runs (the client goes back to plain bytes); returns whether it did. */
export function endCompression(channel: TelnetChannel): boolean {
  return channel.endCompression();
}

/** Whether the channel is still finishing a compressed stream or has output not handed to the kernel. */
export function telnetFlushing(channel: TelnetChannel): boolean {
  return channel.flushing;
}

/** Starts a new compressed stream after {@link endCompression} (the upgrade did not happen). */
export function restartCompression(channel: TelnetChannel): void {
  channel.restartCompression();
}
