/**
 * A telnet user's negotiated state as plain data, for session snapshots,
 * and the way back: a {@link TelnetChannel} on a new socket that starts
 * where the old one was — no renegotiation (clients do not renegotiate).
 * The state itself is read and set by the channel's session
 * ({@link TelnetSession.exportState} / {@link TelnetSession.importState}).
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { SnapshotTelnet as TelnetState } from '../../session/snapshot.js';
import { TelnetChannel } from './telnet-channel.js';
import type { MsspTable } from './mssp.js';

/** Reads a telnet channel's negotiated state (copies; JSON-safe). */
export function readTelnetState(channel: TelnetChannel): TelnetState {
  return channel.exportNegotiation();
}

/**
 * A telnet channel on `socket` in the state a snapshot recorded. Nothing is
 * sent to the client on attach (it is not asked again). Call
 * {@link resumeTelnetCompression} once the channel is attached.
 *
 * @param transport - `telnet` or `telnet+tls`
 * @param mssp - the MSSP variables now, when the user's listener offered MSSP
 * @param remote - the address the session had (a PROXY header's, if any); default: the socket's peer,
 *   which costs a getpeername() per user on the handover's critical path
 */
export function restoreTelnetChannel(
  socket: Socket,
  transport: string,
  state: TelnetState,
  mssp?: () => MsspTable,
  remote?: { address: string; port: number },
): TelnetChannel {
  const channel = new TelnetChannel(socket, transport, {
    ...(remote !== undefined ? { remote } : {}),
    mccp2: state.offerMccp2,
    gmcp: state.offerGmcp,
    eor: state.offerEor,
    nvtOutput: state.nvtOutput,
    negotiationMs: 0,
    msdp: state.offerMsdp,
    ...(state.offerMssp && mssp !== undefined ? { mssp } : {}),
  });
  channel.importNegotiation(state);
  return channel;
}

/**
 * Starts MCCP2 again on a restored channel whose user had it on: a new
 * compressed stream begins (`IAC SB MCCP2 IAC SE`), as the protocol allows
 * after the old stream ended.
 */
export function resumeTelnetCompression(channel: TelnetChannel, state: TelnetState): void {
  if (state.info.mccp2) channel.resumeCompression();
}
