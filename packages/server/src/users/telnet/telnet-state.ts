/**
 * A telnet user's negotiated state as plain data, for session snapshots,
 * and the way back: a {@link TelnetChannel} on a new socket that starts
 * where the old one was — no renegotiation (clients do not renegotiate).
 *
 * `telnet.ts` and `telnet-channel.ts` are being reworked on another branch,
 * so this reads and sets their fields from outside (bracket access keeps them
 * type-checked: a renamed field fails to compile here) rather than adding
 * methods to them. Once that work lands, these functions belong in
 * `TelnetSession` as `exportState()` / `importState()`.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { JsonObject, TelnetInfo } from '@imi/core';
import type { SnapshotTelnet as TelnetState } from '../../session/snapshot.js';
import type { TelnetSession } from './telnet.js';
import { TELNET_OPTION } from './telnet.js';
import { TelnetChannel } from './telnet-channel.js';
import { MSDP_OPTION } from './msdp.js';
import { MSSP_OPTION, type MsspTable } from './mssp.js';

/** Reads a telnet channel's negotiated state (copies; JSON-safe). */
export function readTelnetState(channel: TelnetChannel): TelnetState {
  const session = channel['session'];
  return {
    info: structuredClone(session.info),
    offerMccp2: session['offerMccp2'],
    offerGmcp: session['offerGmcp'],
    offerEor: session['offerEor'],
    offerMsdp: session['extensions'].has(MSDP_OPTION),
    offerMssp: session['extensions'].has(MSSP_OPTION),
    nvtOutput: session['nvt'] !== undefined,
    pendingCr: session['nvt']?.pendingCr ?? false,
    local: [...session['local']],
    remote: [...session['remote']],
    pendingLocal: [...session['pendingLocal']],
    pendingRemote: [...session['pendingRemote']],
    opening: [...session['opening']],
    hideInput: session['hideInput'],
    ttypeRequests: session['ttypeRequests'],
    awaitingTtype: session['awaitingTtype'],
    settled: session['settled'],
  };
}

/**
 * A telnet channel on `socket` in the state a snapshot recorded. Nothing is
 * sent to the client on attach (it is not asked again). Call
 * {@link resumeTelnetCompression} once the channel is attached.
 *
 * @param transport - `telnet` or `telnet+tls`
 * @param mssp - the MSSP variables now, when the user's listener offered MSSP
 */
export function restoreTelnetChannel(socket: Socket, transport: string, state: TelnetState, mssp?: () => MsspTable): TelnetChannel {
  const channel = new TelnetChannel(socket, transport, {
    mccp2: state.offerMccp2,
    gmcp: state.offerGmcp,
    eor: state.offerEor,
    nvtOutput: state.nvtOutput,
    negotiationMs: 0,
    msdp: state.offerMsdp,
    ...(state.offerMssp && mssp !== undefined ? { mssp } : {}),
  });
  const session: TelnetSession = channel['session'];
  const info = structuredClone(state.info) as TelnetInfo & JsonObject;
  // A compressed stream cannot cross sockets: MCCP2 starts afresh after attach.
  info.mccp2 = false;
  for (const key of Object.keys(session.info)) delete (session.info as Partial<TelnetInfo>)[key as keyof TelnetInfo];
  Object.assign(session.info, info);
  fill(session['local'], state.local.filter((option) => option !== TELNET_OPTION.MCCP2));
  fill(session['remote'], state.remote);
  fill(session['pendingLocal'], state.pendingLocal);
  fill(session['pendingRemote'], state.pendingRemote);
  fill(session['opening'], state.opening);
  session['hideInput'] = state.hideInput;
  const nvt = session['nvt'];
  if (nvt !== undefined) nvt['crOpen'] = state.pendingCr;
  session['ttypeRequests'] = state.ttypeRequests;
  session['awaitingTtype'] = state.awaitingTtype;
  // started: attach() sends no opening requests; settled: it does not wait for them.
  session['started'] = true;
  session['settled'] = true;
  return channel;
}

/**
 * Starts MCCP2 again on a restored channel whose user had it on: a new
 * compressed stream begins (`IAC SB MCCP2 IAC SE`), as the protocol allows
 * after the old stream ended.
 */
export function resumeTelnetCompression(channel: TelnetChannel, state: TelnetState): void {
  if (!state.info.mccp2) return;
  const session = channel['session'];
  session['local'].add(TELNET_OPTION.MCCP2);
  session['enabledLocal'](TELNET_OPTION.MCCP2, []);
}

function fill(set: Set<number>, values: readonly number[]): void {
  set.clear();
  for (const value of values) set.add(value);
}
