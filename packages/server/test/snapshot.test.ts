// Session snapshots: sessions built through real TCP and telnet sockets
// (negotiation, app state, a partial line, input queued while the app is
// away and input unacked) are written down, sent through JSON, restored into
// a fresh intermediary over new sockets, and nothing is lost.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import { SESSION_SNAPSHOT_VERSION, TELNET_OPTION, validateSessionSnapshot, type Intermediary, type SessionSnapshot } from '@imi/server';
import { pendingInputBytes, testScope, waitFor, type Frame, type RawApp } from './harness.js';
import { TelnetPeer, socketPair as pairOfSockets } from './transport-harness.js';

const scope = testScope();
const sockets: net.Socket[] = [];

function socketPair(): ReturnType<typeof pairOfSockets> {
  return pairOfSockets(sockets);
}

function inputs(app: RawApp): Frame[] {
  return app.of('input');
}

async function buildSessions(): Promise<{ imi: Intermediary; tcpId: string; telnetId: string; firstInputs: Frame[] }> {
  const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, host: '127.0.0.1', gmcp: true }], heartbeatIntervalMs: 0 });
  const app = await scope.app(ports.clientPort, { name: 'old', acks: true, instance: 'old-app' });
  await app.synced();

  const tcp = await scope.user(ports.externalPort);
  const tcpId = await app.nextUserId();
  const telnet = await TelnetPeer.connect(ports.listeners[1]!.port, { size: [100, 30], ttypes: ['MUDLET', 'ANSI-TRUECOLOR', 'MTTS 2825'] });
  const telnetId = await app.nextUserId(1);
  telnet.gmcp('Core.Hello', '{"client":"Mudlet","version":"4.17.2"}');
  telnet.gmcp('Core.Supports.Set', '["Char 1","Room 1"]');
  await app.waitForFrame((f) => f.param === 'gmcp' && f.data['package'] === 'Core.Supports.Set');

  // App state, and a password prompt's hidden echo.
  app.send({ param: 'state', data: { id: tcpId }, updates: { room: 'hall', hp: 10 } });
  app.send({ param: 'state', data: { id: telnetId }, updates: { room: 'cellar', tags: ['a', 'b'] } });
  app.send({ param: 'telnet', data: { id: telnetId, echo: false } });
  await telnet.waitForCommand('WILL 1');

  // One input acked, then two left unacked (one per user, in a known order).
  tcp.send('one');
  const one = await app.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'one');
  app.send({ param: 'ack', data: { seq: one.seq } });
  tcp.send('two');
  await app.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'two');
  telnet.send('north');
  await app.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'north');
  await app.barrier();
  const firstInputs = [...inputs(app)];

  // The app goes away; input typed meanwhile is queued, and half a line each.
  app.destroy();
  await waitFor(() => !imi.appConnected, 5000, 'the app to be gone');
  tcp.send('three');
  telnet.send('south');
  tcp.write('par');
  telnet.write(Buffer.from('tia'));
  await waitFor(() => imi.stats().queuedLines === 2 && pendingInputBytes(imi, tcpId) === 3 && pendingInputBytes(imi, telnetId) === 3, 5000, 'queued lines and partial lines');
  return { imi, tcpId, telnetId, firstInputs };
}

describe('session snapshots', () => {
  it('capture id, transport, state, telnet negotiation, the partial line, queued and unacked input, and counters', async () => {
    const { imi, tcpId, telnetId, firstInputs } = await buildSessions();
    const snapshots = imi.snapshotSessions();
    expect(snapshots.map((s) => s.id)).toEqual([tcpId, telnetId]);
    const [tcp, telnet] = snapshots as [SessionSnapshot, SessionSnapshot];

    expect(tcp.v).toBe(SESSION_SNAPSHOT_VERSION);
    expect(tcp.transport).toBe('tcp');
    expect(tcp.remote.address).toMatch(/127\.0\.0\.1/);
    expect(tcp.state).toEqual({ room: 'hall', hp: 10 });
    expect(Buffer.from(tcp.line.bytes, 'base64').toString()).toBe('par');
    expect(tcp.queued.map((q) => q.value)).toEqual(['three']);
    const two = firstInputs.find((f) => f.data['value'] === 'two')!;
    expect(tcp.unacked).toEqual([{ txnId: two.txn_id, value: 'two', seq: two.seq }]);
    expect(tcp.counters.linesIn).toBe(3);
    expect(tcp.telnet).toBeNull();

    expect(telnet.transport).toBe('telnet');
    expect(telnet.state).toEqual({ room: 'cellar', tags: ['a', 'b'] });
    expect(Buffer.from(telnet.line.bytes, 'base64').toString()).toBe('tia');
    expect(telnet.queued.map((q) => q.value)).toEqual(['south']);
    expect(telnet.unacked.map((u) => u.value)).toEqual(['north']);
    const info = telnet.telnet!.info;
    expect(info.naws).toEqual({ width: 100, height: 30 });
    expect(info.ttype).toEqual(['MUDLET', 'ANSI-TRUECOLOR', 'MTTS 2825']);
    expect(info.mtts).toBe(2825);
    expect(info.echo).toBe(false);
    expect(info.gmcp).toBe(true);
    expect(info.gmcpHello).toEqual({ client: 'Mudlet', version: '4.17.2' });
    expect(info.gmcpSupports).toEqual(['Char 1', 'Room 1']);
    expect(telnet.telnet!.hideInput).toBe(true);
    expect(telnet.telnet!.remote.sort()).toEqual([TELNET_OPTION.TTYPE, TELNET_OPTION.NAWS].sort());
    expect(telnet.telnet!.local).toEqual(expect.arrayContaining([TELNET_OPTION.GMCP, TELNET_OPTION.ECHO]));

    // Plain data: JSON round-trips it unchanged, and the validator accepts it.
    const parsed = JSON.parse(JSON.stringify(snapshots)) as unknown[];
    expect(parsed).toEqual(snapshots);
    for (const snapshot of parsed) expect(validateSessionSnapshot(snapshot)).toBe(snapshot);
    expect(imi.snapshotSession('no-such-id')).toBeUndefined();
  });

  it('restore into a fresh intermediary over new sockets loses nothing: the same snapshot again, then the kept input to the next app, in order', async () => {
    const { imi: old, tcpId, telnetId, firstInputs } = await buildSessions();
    const wire = JSON.stringify(old.snapshotSessions());
    const { imi, ports } = await scope.start({ heartbeatIntervalMs: 0 });
    const tcpPair = await socketPair();
    const telnetPair = await socketPair();
    const restored = JSON.parse(wire) as unknown[];
    imi.restoreSession(restored[0], tcpPair.server);
    imi.restoreSession(restored[1], telnetPair.server);

    expect(JSON.parse(JSON.stringify(imi.snapshotSessions()))).toEqual(JSON.parse(wire));
    expect(imi.stats()).toMatchObject({ sessions: 2, queuedLines: 2, unacked: 2 });
    expect(imi.session(telnetId)!.telnet).toMatchObject({ naws: { width: 100, height: 30 }, echo: false, gmcp: true });

    const app = await scope.app(ports.clientPort, { name: 'new', acks: true });
    await app.synced();
    const connects = app.of('connect');
    expect(connects.map((c) => [c.data['id'], c.data['resumed']])).toEqual([
      [tcpId, true],
      [telnetId, true],
    ]);
    expect(connects[0]!.data['state']).toEqual({ room: 'hall', hp: 10 });
    expect(connects[1]!.data['telnet']).toMatchObject({ naws: { width: 100, height: 30 }, ttype: ['MUDLET', 'ANSI-TRUECOLOR', 'MTTS 2825'], echo: false });
    await waitFor(() => inputs(app).length === 4, 5000, 'four inputs');
    const delivered = inputs(app);
    expect(delivered.map((f) => [f.data['id'], f.data['value'], f.redelivered === true])).toEqual([
      [tcpId, 'two', true],
      [telnetId, 'north', true],
      [tcpId, 'three', false],
      [telnetId, 'south', false],
    ]);
    // Redeliveries keep their txn ids; every seq is new and past the old ones.
    const oldTxn = (value: string): string => firstInputs.find((f) => f.data['value'] === value)!.txn_id;
    expect(delivered[0]!.txn_id).toBe(oldTxn('two'));
    expect(delivered[1]!.txn_id).toBe(oldTxn('north'));
    const oldMax = Math.max(...firstInputs.map((f) => f.seq!));
    expect(delivered.every((f) => f.seq! > oldMax)).toBe(true);

    // The unfinished lines go on where they stopped.
    tcpPair.client.write('tial\n');
    telnetPair.client.write('l\r\n');
    await waitFor(() => inputs(app).length === 6, 5000, 'the finished lines');
    expect(inputs(app).slice(4).map((f) => [f.data['id'], f.data['value']])).toEqual([
      [tcpId, 'partial'],
      [telnetId, 'tial'],
    ]);
    // The telnet client was not asked to negotiate again.
    await app.barrier();
    expect(Buffer.concat(telnetPair.received).length).toBe(0);
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  it('rejects an unknown version, a malformed snapshot and a live id with IMI_BAD_SNAPSHOT, reported and counted, and keeps serving', async () => {
    const { imi, ports } = await scope.start();
    const app = await scope.app(ports.clientPort, { acks: true });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    const id = await app.nextUserId();
    const good = JSON.parse(JSON.stringify(imi.snapshotSession(id))) as Record<string, unknown>;
    const reported: ImiError[] = [];
    imi.on('error', (error) => reported.push(error));

    const bad: unknown[] = [
      { ...good, v: SESSION_SNAPSHOT_VERSION + 1 },
      { ...good, v: undefined },
      null,
      'a string',
      { ...good, id: 7 },
      { ...good, line: { bytes: 'not base64!', overflowBytes: 0, crs: 0, afterLf: false } },
      { ...good, unacked: [{ txnId: 't', value: 'x', seq: 0 }] },
      { ...good, telnet: { info: {} } },
      good, // the id is live here
    ];
    for (const value of bad) {
      const pair = await socketPair();
      let thrown: unknown;
      try {
        imi.restoreSession(value, pair.server);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, JSON.stringify(value)?.slice(0, 80)).toBeInstanceOf(ImiError);
      expect((thrown as ImiError).code).toBe('IMI_BAD_SNAPSHOT');
    }
    expect(() => validateSessionSnapshot({ ...good, v: SESSION_SNAPSHOT_VERSION + 1 })).toThrow(`unknown snapshot version ${SESSION_SNAPSHOT_VERSION + 1}`);
    expect(imi.stats().errors.IMI_BAD_SNAPSHOT).toBe(bad.length);
    expect(reported.map((e) => e.code)).toEqual(bad.map(() => 'IMI_BAD_SNAPSHOT'));
    expect(imi.stats().sessions).toBe(1);
    // Still serving.
    user.send('still here');
    await app.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'still here');
    for (const socket of sockets.splice(0)) socket.destroy();
  });
});
