// A WebSocket session as `--supervise` brings it back after a crash of the
// intermediary, in one process over real sockets: restored parked from a
// journal record (token hash, no output, no count of output sent), its
// client's first resume is accepted whatever output count it presents — the
// dead process's numbering is gone — and it gets exactly the output written
// since the restore, once; its lines are counted from the journaled number.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { recordToSnapshot, type JournalRecord } from '../src/supervisor/protocol.js';
import { WsChannel } from '../src/users/ws-channel.js';
import { hashToken } from '../src/users/ws-resume.js';
import { testScope, waitFor } from './harness.js';

const scope = testScope();

describe('a WebSocket session restored from the crash journal', () => {
  it('resumes with any output count: the output written since the restore is replayed once, the journaled line count is told, the token rotates', async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'ws', port: 0 }] });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    const url = `ws://127.0.0.1:${ports.listeners[1]!.port}/`;
    const token = randomBytes(32).toString('base64url');
    const record: JournalRecord = {
      id: 'restored-1',
      transport: 'ws',
      remote: { address: '127.0.0.1', port: 4000 },
      connectedAt: Date.now() - 1000,
      state: { hp: 7 },
      telnet: null,
      ws: { protocol: 'imi.v1', maxPayload: 65536, pingIntervalMs: 0, alive: true, echoVisible: false, received: 12, sent: 0, kept: [], tokenHash: hashToken(token), parkedUntil: Date.now() + 60_000 },
    };
    const session = imi.restoreSession(recordToSnapshot(record));
    (session as unknown as { userChannel: WsChannel }).userChannel.restoredAfterCrash();
    await app.waitForFrame((frame) => frame.param === 'connect' && frame.data['id'] === 'restored-1', 5000, 'the restored session announced');
    expect(app.of('connect').at(-1)!.data).toMatchObject({ id: 'restored-1', resumed: true, state: { hp: 7 } });
    app.output('restored-1', 'since the restart 1');
    app.output('restored-1', 'since the restart 2');
    await app.barrier();

    // The client had 40 output messages from the dead process; the restored log never counted them.
    const ws = new WebSocket(url, ['imi.v1', 'imi.resume']);
    const texts: string[] = [];
    const controls: Array<Record<string, unknown>> = [];
    ws.on('message', (data: WebSocket.RawData, binary: boolean) => (binary ? controls.push(JSON.parse(String(data)) as Record<string, unknown>) : texts.push(String(data))));
    await once(ws, 'open');
    ws.send(Buffer.from(JSON.stringify({ type: 'resume', token, received: 40 })));
    await waitFor(() => texts.length === 2, 5000, 'the replay');
    expect(texts).toEqual(['since the restart 1', 'since the restart 2']);
    expect(controls[0]).toMatchObject({ type: 'session', resumed: true, received: 12 });
    expect(controls[0]!['token']).not.toBe(token);
    expect(controls[1]).toEqual({ type: 'echo', visible: false });

    // Numbering goes on from the client's count; lines from the journaled one.
    ws.send('after');
    await app.waitForFrame((frame) => frame.param === 'input' && frame.data['value'] === 'after', 5000, 'the line after the resume');
    const channel = (imi.session('restored-1') as unknown as { userChannel: WsChannel }).userChannel;
    expect(channel.received).toBe(13);
    expect(channel.snapshot()).toMatchObject({ sent: 42, kept: ['since the restart 1', 'since the restart 2'] });
    expect(app.of('disconnect')).toEqual([]);
    expect(imi.stats().errors['IMI_WS_RESUME_REFUSED'] ?? 0).toBe(0);
    ws.terminate();
  });
});
