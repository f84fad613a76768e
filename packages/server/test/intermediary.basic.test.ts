import { afterEach, describe, expect, it } from 'vitest';
import type { Intermediary } from '@imi/server';
import { RawApp, RawUser, startIntermediary, waitFor } from './harness.js';

let imi: Intermediary | undefined;
const sockets: Array<RawUser | RawApp> = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.destroy();
  await imi?.close();
  imi = undefined;
});

async function user(port: number): Promise<RawUser> {
  const u = await RawUser.connect(port);
  sockets.push(u);
  return u;
}
async function app(port: number, hello?: Record<string, unknown>): Promise<RawApp> {
  const a = await RawApp.connect(port, hello);
  sockets.push(a);
  return a;
}

describe('intermediary basics', () => {
  it('relays connect, input and output between a user and the app', async () => {
    const started = await startIntermediary();
    imi = started.imi;
    const a = await app(started.ports.clientPort, { acks: false, name: 'test' });
    await a.synced();
    const u = await user(started.ports.externalPort);
    const [connect] = await a.waitForParam('connect');
    expect(connect!.data['resumed']).toBe(false);
    expect(connect!.data['transport']).toBe('tcp');
    expect(connect!.data['state']).toEqual({});
    const id = connect!.data['id'] as string;
    u.send('héllo €');
    const [input] = await a.waitForParam('input');
    expect(input!.data).toEqual({ id, value: 'héllo €' });
    expect(typeof input!.txn_id).toBe('string');
    a.output(id, 'Écho €\r\n');
    await u.waitFor('Écho €\r\n');
    u.close();
    const [disconnect] = await a.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id, reason: 'closed' });
  });

  it('keeps users connected across an app crash and resyncs them with their state', async () => {
    const started = await startIntermediary();
    imi = started.imi;
    const a1 = await app(started.ports.clientPort, { acks: true });
    await a1.synced();
    const u = await user(started.ports.externalPort);
    const [connect] = await a1.waitForParam('connect');
    const id = connect!.data['id'] as string;
    a1.send({ param: 'state', data: { id }, updates: { room: 'hall', hp: 10 } });
    a1.send({ param: 'state', data: { id }, updates: { hp: null } });
    await waitFor(() => started.imi.session(id)?.state['room'] === 'hall' && !('hp' in (started.imi.session(id)?.state ?? {})));
    a1.destroy();
    await u.waitFor('restarting');
    u.send('typed while down');
    await waitFor(() => started.imi.stats().queuedLines === 1);
    const a2 = await app(started.ports.clientPort, { acks: true });
    const synced = await a2.synced();
    expect(synced.data['count']).toBe(1);
    const [resumed] = a2.of('connect');
    expect(resumed!.data['resumed']).toBe(true);
    expect(resumed!.data['state']).toEqual({ room: 'hall' });
    const [input] = await a2.waitForParam('input');
    expect(input!.data).toEqual({ id, value: 'typed while down' });
    expect(typeof input!.seq).toBe('number');
    expect(u.closed).toBe(false);
  });

  it('redelivers unacked input to the next app, marked redelivered, and never acked input', async () => {
    const started = await startIntermediary();
    imi = started.imi;
    const a1 = await app(started.ports.clientPort, { acks: true });
    await a1.synced();
    const u = await user(started.ports.externalPort);
    const [connect] = await a1.waitForParam('connect');
    const id = connect!.data['id'] as string;
    u.send('one');
    u.send('two');
    u.send('three');
    const inputs = await a1.waitForParam('input', 3);
    a1.output(id, 'reply one\r\n', { ack: inputs[0]!.seq });
    await u.waitFor('reply one');
    await waitFor(() => started.imi.stats().unacked === 2);
    a1.destroy();
    await waitFor(() => !started.imi.appConnected);
    u.send('four');
    const a2 = await app(started.ports.clientPort, { acks: true });
    await a2.synced();
    const again = await a2.waitForParam('input', 3);
    expect(again.map((f) => f.data['value'])).toEqual(['two', 'three', 'four']);
    expect(again.map((f) => f.redelivered === true)).toEqual([true, true, false]);
    expect(again[0]!.txn_id).toBe(inputs[1]!.txn_id);
    const seqs = again.map((f) => f.seq!);
    expect(seqs[1]).toBe(seqs[0]! + 1);
  });
});
