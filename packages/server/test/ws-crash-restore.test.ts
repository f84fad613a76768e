// A WebSocket session as `--supervise` brings it back after a crash of the
// intermediary, in one process over real sockets: restored parked from a
// journal record (token hash, no output, no count of output sent), its
// client's first resume is accepted whatever output count it presents — the
// dead process's numbering is gone — and it gets exactly the output written
// since the restore, once; its lines are counted from the journaled number.
// Handed on again before anyone resumed it (an upgrade), it keeps that rule.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { recordToSnapshot, type JournalRecord } from '../src/supervisor/protocol.js';
import { WsChannel } from '../src/users/ws-channel.js';
import { hashToken } from '../src/users/ws-resume.js';
import { testScope, waitFor } from './harness.js';

const scope = testScope();

/** Opens a resuming connection presenting `token` and `received`, and collects what comes. */
async function resume(url: string, token: string, received: number): Promise<{ ws: WebSocket; texts: string[]; controls: Array<Record<string, unknown>> }> {
  const ws = new WebSocket(url, ['imi.v1', 'imi.resume']);
  const texts: string[] = [];
  const controls: Array<Record<string, unknown>> = [];
  ws.on('message', (data: WebSocket.RawData, binary: boolean) => (binary ? controls.push(JSON.parse(String(data)) as Record<string, unknown>) : texts.push(String(data))));
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send(Buffer.from(JSON.stringify({ type: 'resume', token, received })));
  return { ws, texts, controls };
}

describe('a WebSocket session restored from the crash journal', () => {
  it('resumes with any output count: the output written since the restore is replayed once, the journaled line count is told, the token rotates; a snapshot taken before the resume keeps that rule', async () => {
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

    // Not resumed yet: a snapshot (an upgrade) carries the rule on, and the next process applies it.
    const snapshot = imi.snapshotSession('restored-1')!;
    expect(snapshot.ws).toMatchObject({ rebase: true, sent: 2, kept: ['since the restart 1', 'since the restart 2'] });
    const next = await scope.start({ listeners: [{ kind: 'ws', port: 0 }] });
    next.imi.restoreSession(JSON.parse(JSON.stringify(snapshot)));
    const there = await resume(`ws://127.0.0.1:${next.ports.listeners[1]!.port}/`, token, 40);
    await waitFor(() => there.texts.length === 2, 5000, 'the replay in the next process');
    expect(there.texts).toEqual(['since the restart 1', 'since the restart 2']);
    expect(there.controls[0]).toMatchObject({ type: 'session', resumed: true, received: 12 });
    expect(next.imi.snapshotSession('restored-1')!.ws!.rebase).toBeUndefined();
    there.ws.terminate();

    // The client had 40 output messages from the dead process; the restored log never counted them.
    const { ws, texts, controls } = await resume(url, token, 40);
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
