// A telnet user's state as snapshots and handovers write it down, byte for
// byte: a session with NAWS, TTYPE/MTTS, echo off, MCCP2 on, EOR, MSDP, GMCP
// (with Core.Hello) and a CR left open in NVT output; and a channel caught
// inside a subnegotiation with input held while paused. The expected JSON
// was written by the code before the state moved into exportState() /
// importState() methods: the snapshot format (v2) must not change by a byte.
// Then both go through a restore on new sockets and come out the same.
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MSDP_OPTION, TELNET, TELNET_OPTION, type SessionSnapshot } from '@imi/server';
import { testScope, waitFor } from './harness.js';
import { TelnetPeer, socketPair as pairOfSockets } from './transport-harness.js';
import { TelnetChannel } from '../src/users/telnet/telnet-channel.js';
import { readTelnetState, restoreTelnetChannel } from '../src/users/telnet/telnet-state.js';
import { readTelnetExtra, writeTelnetExtra } from '../src/handover/telnet-extra.js';
import { NULL_SINK, type ChannelSink } from '../src/users/transport.js';

const scope = testScope();
const sockets: net.Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

const { IAC, SB, SE, WILL, DO, DONT, WONT } = TELNET;
const { NAWS, TTYPE, GMCP, MCCP2, EOR } = TELNET_OPTION;

function socketPair(): ReturnType<typeof pairOfSockets> {
  return pairOfSockets(sockets);
}

/** The telnet part of a snapshot as the wire carries it (the JSON text, key order included). */
const EXPECTED_TELNET =
  '{"info":{"echo":false,"sga":false,"gmcp":true,"mccp2":true,"eor":true,"msdp":true,"naws":{"width":132,"height":50},"ttype":["MUDLET","ANSI-TRUECOLOR","MTTS 2825"],"mtts":2825,"gmcpHello":{"client":"Mudlet","version":"4.17.2"}},' +
  '"offerMccp2":true,"offerGmcp":true,"offerEor":true,"offerMsdp":true,"offerMssp":true,"nvtOutput":true,"pendingCr":true,' +
  '"local":[201,86,25,69,1],"remote":[31,24],"pendingLocal":[],"pendingRemote":[],"opening":[],"hideInput":true,"ttypeRequests":3,"awaitingTtype":false,"settled":true}';

describe('telnet state in snapshots', () => {
  it('is written down byte for byte as before (NAWS, TTYPE, echo off, MCCP2, EOR, MSDP, GMCP, an open CR), and a restore on a new socket gives it back', async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, host: '127.0.0.1', gmcp: true, mccp2: true, msdp: true, eor: true }], heartbeatIntervalMs: 0 });
    const app = await scope.app(ports.clientPort, { acks: true });
    await app.synced();
    const peer = await TelnetPeer.connect(ports.listeners[1]!.port, { size: [132, 50], ttypes: ['MUDLET', 'ANSI-TRUECOLOR', 'MTTS 2825'], mccp2: true, eor: true, agree: [MSDP_OPTION] });
    const id = await app.nextUserId();
    await waitFor(() => peer.compressed, 5000, 'MCCP2 to start');
    peer.gmcp('Core.Hello', '{"client":"Mudlet","version":"4.17.2"}');
    app.send({ param: 'telnet', data: { id, echo: false } });
    await peer.waitForCommand(`WILL ${TELNET_OPTION.ECHO}`);
    // A line after the client's DO ECHO: once it reaches the app, the answer was read.
    peer.send('ready');
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'ready');
    // Text ending in a CR: its NUL (or LF) is still owed (pendingCr).
    app.send({ param: 'output', data: { id, value: 'Password: \r' } });
    await peer.waitFor('Password: \r');

    const snapshot = imi.snapshotSession(id)!;
    expect(JSON.stringify(snapshot.telnet)).toBe(EXPECTED_TELNET);
    expect(snapshot.telnet!.local).toEqual(expect.arrayContaining([GMCP, MCCP2, EOR, MSDP_OPTION, TELNET_OPTION.ECHO]));
    expect(snapshot.telnet!.remote).toEqual([NAWS, TTYPE]);

    // Restored in a fresh intermediary on a new socket: the same state,
    // except that MCCP2 started afresh (a compressed stream cannot cross
    // sockets), so it is on again, last among the local options, and the
    // open CR got its NUL before the stream's start.
    const wire = JSON.stringify(snapshot);
    const { imi: next } = await scope.start({ heartbeatIntervalMs: 0 });
    const pair = await socketPair();
    next.restoreSession(JSON.parse(wire), pair.server);
    const again = next.snapshotSession(id)!;
    const mccp2Last = { ...snapshot.telnet!, pendingCr: false, local: [...snapshot.telnet!.local.filter((option) => option !== MCCP2), MCCP2] };
    expect(JSON.stringify(again.telnet)).toBe(JSON.stringify(mccp2Last));
    expect(JSON.stringify({ ...again, telnet: null })).toBe(JSON.stringify({ ...(JSON.parse(wire) as SessionSnapshot), telnet: null }));
    // The client is told only that a new compressed stream begins (after the NUL it was owed).
    await waitFor(() => Buffer.concat(pair.received).length >= 6, 5000, 'the new MCCP2 start');
    expect([...Buffer.concat(pair.received).subarray(0, 6)]).toEqual([0, IAC, SB, MCCP2, IAC, SE]);
  });

  it('restores a telnet user under the address the session had (a PROXY header\'s), not the new socket\'s peer, in its channel too; the per-address count is released to that address', async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, host: '127.0.0.1' }], heartbeatIntervalMs: 0, limitLoopback: true });
    const app = await scope.app(ports.clientPort, { acks: true });
    await app.synced();
    const peer = await TelnetPeer.connect(ports.listeners[1]!.port, { size: [80, 24] });
    const id = await app.nextUserId();
    const snapshot = { ...imi.snapshotSession(id)!, remote: { address: '203.0.113.9', port: 4242 } };
    peer.socket.destroy();
    const { imi: next } = await scope.start({ heartbeatIntervalMs: 0, limitLoopback: true });
    const pair = await socketPair();
    next.restoreSession(JSON.parse(JSON.stringify(snapshot)), pair.server);
    const admission = next['users'].admission;
    const perAddress = admission['perIp'];
    expect([...perAddress]).toEqual([['203.0.113.9', 1]]);
    // The channel too (no getpeername() per restored user on the handover's critical path).
    expect(next['users'].get(id)!['channel'].remote).toEqual({ address: '203.0.113.9', port: 4242 });
    expect(next.snapshotSession(id)!.remote).toEqual({ address: '203.0.113.9', port: 4242 });
    pair.client.destroy();
    await waitFor(() => next.snapshotSession(id) === undefined, 5000, 'the restored user to leave');
    await waitFor(() => admission.connections === 0, 5000, 'the seat to be released');
    expect([...perAddress]).toEqual([]);
  });
});

/** A sink that records what a channel passes on. */
function recordingSink(): ChannelSink & { data: Buffer[]; gmcp: Array<[string, string]> } {
  const data: Buffer[] = [];
  const gmcp: Array<[string, string]> = [];
  return { ...NULL_SINK, data, gmcp, onData: (bytes) => data.push(Buffer.from(bytes)), onGmcp: (name, json) => gmcp.push([name, json]) };
}

describe('telnet state in handovers', () => {
  it('a channel inside a subnegotiation with input held while paused is written down byte for byte as before, and goes on where it stopped on a new socket', async () => {
    const first = await socketPair();
    const channel = new TelnetChannel(first.server, 'telnet', { mccp2: false, gmcp: true, negotiationMs: 0, nvtOutput: true, eor: true });
    const sink = recordingSink();
    await channel.attach(sink);
    first.client.write(Buffer.from([IAC, WILL, NAWS, IAC, SB, NAWS, 0, 90, 0, 33, IAC, SE, IAC, WONT, TTYPE, IAC, DO, GMCP, IAC, DONT, EOR]));
    await waitFor(() => channel.telnet.gmcp && channel.telnet.naws !== undefined, 5000, 'the negotiation');
    first.client.write('north\r\n');
    await waitFor(() => Buffer.concat(sink.data).toString() === 'north\r\n', 5000, 'the first line');
    channel.pause();
    first.client.write(Buffer.concat([Buffer.from('look\r\nsay hi'), Buffer.from([IAC, SB, GMCP]), Buffer.from('Core.Ping {"a":')]));
    const sub = Buffer.from('Core.Ping {"a":').toString('base64');
    await waitFor(() => readTelnetExtra(channel).parser.sub === sub, 5000, 'the held input and the subnegotiation so far');

    const extra = readTelnetExtra(channel);
    expect(JSON.stringify(extra)).toBe(
      JSON.stringify({ parser: { state: 7, verb: DONT, subOption: GMCP, sub, subMax: 8192 }, held: Buffer.from('look\r\nsay hi').toString('base64'), heldGmcp: [] }),
    );
    const state = readTelnetState(channel);
    expect(state.info.naws).toEqual({ width: 90, height: 33 });

    // Onto a new socket: nothing is sent to the client, the held input comes
    // first, and the rest of the subnegotiation completes the message.
    const second = await socketPair();
    const restored = restoreTelnetChannel(second.server, 'telnet', JSON.parse(JSON.stringify(state)));
    writeTelnetExtra(restored, JSON.parse(JSON.stringify(extra)));
    expect(JSON.stringify(readTelnetExtra(restored))).toBe(JSON.stringify(extra));
    expect(JSON.stringify(readTelnetState(restored))).toBe(JSON.stringify(state));
    const next = recordingSink();
    await restored.attach(next);
    restored.resume();
    second.client.write(Buffer.concat([Buffer.from('1}'), Buffer.from([IAC, SE]), Buffer.from('!\r\n')]));
    await waitFor(() => Buffer.concat(next.data).toString() === 'look\r\nsay hi!\r\n' && next.gmcp.length === 1, 5000, 'the held input and the finished GMCP message');
    expect(next.gmcp).toEqual([['Core.Ping', '{"a":1}']]);
    expect(Buffer.concat(second.received).length).toBe(0);
    channel.destroy();
    restored.destroy();
  });
});
