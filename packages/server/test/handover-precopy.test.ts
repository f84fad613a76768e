// The pre-copy of an upgrade, on the old process's side (in process, real
// sockets): every session is written down while users are still served, and
// at the freeze only those whose description is no longer exactly the same
// go again in full; the others go as `{ same: id }`. A user who typed, or
// whose state the app changed, in between is sent again; one who left is
// not handed over and the successor closes its copy. What the successor
// does with them is tested with real processes in upgrade*.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { Intermediary } from '../src/intermediary.js';
import { Freeze } from '../src/handover/parent.js';
import { readChildMessage, readParentMessage, type HandedSession, type SameSession } from '../src/handover/protocol.js';
import { RawApp, RawUser, waitFor } from './harness.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function drain<T, R>(generator: Generator<T, R>): { chunks: T[]; result: R } {
  const chunks: T[] = [];
  for (;;) {
    const step = generator.next();
    if (step.done === true) return { chunks, result: step.value };
    chunks.push(step.value);
  }
}

const idOf = (item: HandedSession | SameSession): string => ('same' in item ? item.same : (item.snapshot as { id: string }).id);

describe('upgrade pre-copy (old process)', () => {
  it('sends again in the freeze only the sessions that changed since their pre-copy: typed, state changed; one who left is closed; thaw serves on', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', legacyHelloWaitMs: 50 });
    const ports = await imi.listen();
    cleanups.push(() => imi.close());
    const app = await RawApp.connect(ports.clientPort, { hello: {} });
    cleanups.push(() => app.destroy());
    await app.waitForParam('synced');
    const users: RawUser[] = [];
    for (let i = 0; i < 5; i++) {
      const user = await RawUser.connect(ports.externalPort);
      cleanups.push(() => user.close());
      users.push(user);
    }
    const connects = await app.waitForParam('connect', 5);
    const ids = connects.map((frame) => frame.data['id'] as string);
    const [typist, stateful, leaver, idle1, idle2] = ids as [string, string, string, string, string];

    const freeze = new Freeze(imi);
    const spawn = freeze.spawnPlan(4);
    expect(spawn.users.size).toBe(5);
    const pre = drain(freeze.precopyChunks(spawn, 2));
    expect(pre.result).toBe(5);
    expect(pre.chunks.map((chunk) => chunk.length)).toEqual([2, 2, 1]);
    expect(new Set(pre.chunks.flat().map(idOf))).toEqual(new Set(ids));

    // Still served after the pre-copy: one types (and is answered), the app stores state for another, one leaves.
    users[0]!.send('hello there');
    const [input] = await app.waitForParam('input');
    expect(input!.data['id']).toBe(typist);
    app.send({ param: 'output', data: { id: typist, value: 'HELLO THERE' } });
    await users[0]!.waitFor('HELLO THERE');
    app.send({ param: 'state', data: { id: stateful }, updates: { room: 'hall' } });
    await app.barrier();
    users[2]!.close();
    await waitFor(() => imi.session(leaver) === undefined, 5_000, 'the leaver to be gone');

    freeze.start();
    await freeze.settle(1_000);
    const frozen = drain(freeze.planInChunks(spawn, 10));
    const items = frozen.chunks.flat();
    expect(items.map(idOf).sort()).toEqual([typist, stateful, idle1, idle2].sort());
    const same = items.filter((item): item is SameSession => 'same' in item).map((item) => item.same);
    expect(same.sort()).toEqual([idle1, idle2].sort());
    expect(freeze.unchanged).toBe(2);
    const full = items.filter((item): item is HandedSession => !('same' in item));
    const typistItem = full.find((item) => idOf(item) === typist)!;
    expect((typistItem.snapshot as { counters: { linesIn: number } }).counters.linesIn).toBe(1);
    const statefulItem = full.find((item) => idOf(item) === stateful)!;
    expect((statefulItem.snapshot as { state: unknown }).state).toEqual({ room: 'hall' });
    // The plan the commit would use holds every handed session in full, and the successor closes the leaver's copy.
    expect(frozen.result.sessions.map((session) => idOf(session)).sort()).toEqual([typist, stateful, idle1, idle2].sort());
    const leaverIndex = [...spawn.users].find(([connection]) => connection.id === leaver)![1].index;
    expect(frozen.result.close).toEqual([leaverIndex]);

    // No upgrade after all: everyone is read from again, nothing was taken.
    freeze.thaw();
    expect(freeze.unchanged).toBe(0);
    users[3]!.send('still here');
    const inputs = await app.waitForParam('input', 2);
    expect(inputs[1]!.data).toMatchObject({ id: idle1, value: 'still here' });
  });
});

describe('pre-copy messages', () => {
  const item = { fd: 7, snapshot: {}, announced: true };
  it('reads precopy chunks and { same: id } items in sessions; refuses malformed ones with IMI_UPGRADE_FAILED', () => {
    expect(readParentMessage({ imi: 'handover', kind: 'precopy', items: [item] })).toMatchObject({ kind: 'precopy' });
    expect(readParentMessage({ imi: 'handover', kind: 'sessions', items: [item, { same: 'a-session' }] })).toMatchObject({ kind: 'sessions' });
    const refused = (value: unknown): string => {
      try {
        readParentMessage(value);
      } catch (error) {
        return `${(error as { code: string }).code}: ${(error as Error).message}`;
      }
      return 'accepted';
    };
    expect(refused({ imi: 'handover', kind: 'sessions', items: [{ same: '' }] })).toBe('IMI_UPGRADE_FAILED: broken handover message: a session item same');
    expect(refused({ imi: 'handover', kind: 'sessions', items: [{ same: 12 }] })).toBe('IMI_UPGRADE_FAILED: broken handover message: a session item same');
    // Only the freeze's `sessions` may name a pre-copy; a pre-copy is always whole.
    expect(refused({ imi: 'handover', kind: 'precopy', items: [{ same: 'a-session' }] })).toBe('IMI_UPGRADE_FAILED: broken handover message: a session item');
    expect(refused({ imi: 'handover', kind: 'precopy', items: 'x' })).toBe('IMI_UPGRADE_FAILED: broken handover message: precopy.items');
    expect(readChildMessage({ imi: 'handover', kind: 'booted', precopy: true })).toEqual({ imi: 'handover', kind: 'booted', precopy: true });
    expect(readChildMessage({ imi: 'handover', kind: 'booted' })).toEqual({ imi: 'handover', kind: 'booted' });
    expect(() => readChildMessage({ imi: 'handover', kind: 'booted', precopy: 'yes' })).toThrow(/broken handover message/);
  });
});
