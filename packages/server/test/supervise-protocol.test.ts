// The supervisor's input checks and its crash-loop bound, without processes:
// broken journal records and IPC messages of the wrong shape are IMI_BAD_JOURNAL
// (never a crash), a WebSocket record keeps a token hash and no output; the
// restart delay doubles and the policy gives up after maxRestarts crashes
// within the window.
import { ImiError } from '@imi/core';
import { describe, expect, it } from 'vitest';
import { MAX_JOURNAL_RECORD_BYTES, checkJournalWs, readSupervisorMessage, readWorkerMessage, recordToSnapshot, validateJournalRecord } from '../src/supervisor/protocol.js';
import { MAX_RESTART_DELAY_MS, RestartPolicy } from '../src/supervisor/restart-policy.js';

const record = { id: 'a1', transport: 'tcp', remote: { address: '127.0.0.1', port: 5 }, connectedAt: 1, state: { hp: 3 }, telnet: null };

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof ImiError ? error.code : `not an ImiError: ${String(error)}`;
  }
  return undefined;
}

describe('supervisor protocol', () => {
  it('accepts a good record and refuses broken, foreign-transport and oversized ones with IMI_BAD_JOURNAL', () => {
    expect(validateJournalRecord(record)).toBe(record);
    for (const bad of [null, 5, 'x', {}, { ...record, id: '' }, { ...record, remote: { address: 1, port: 5 } }, { ...record, state: [] }, { ...record, transport: 'ws' }, { ...record, transport: 'telnet' }, { ...record, telnet: { info: {} } }, { ...record, state: { big: 'x'.repeat(MAX_JOURNAL_RECORD_BYTES) } }]) {
      expect(code(() => validateJournalRecord(bad)), JSON.stringify(bad)?.slice(0, 80)).toBe('IMI_BAD_JOURNAL');
    }
  });

  it('keeps a resumable WebSocket session as its resume state without a token or output, and refuses anything else with IMI_BAD_JOURNAL', () => {
    const ws = { protocol: 'imi.v1', maxPayload: 65536, pingIntervalMs: 30000, alive: true, echoVisible: false, received: 7, sent: 0, kept: [], tokenHash: 'a'.repeat(64), parkedUntil: null };
    const wsRecord = { ...record, transport: 'ws', ws };
    expect(validateJournalRecord(wsRecord)).toBe(wsRecord);
    expect(validateJournalRecord({ ...wsRecord, transport: 'ws+tls' }).transport).toBe('ws+tls');
    expect(recordToSnapshot(wsRecord, 5).ws).toEqual(ws);
    expect(checkJournalWs({ ...ws, parkedUntil: 123 })).toEqual({ ...ws, parkedUntil: 123 });
    for (const bad of [
      { ...wsRecord, ws: null },
      { ...wsRecord, ws: { ...ws, tokenHash: null } },
      { ...wsRecord, ws: { ...ws, tokenHash: 'not-a-hash' } },
      { ...wsRecord, ws: { ...ws, kept: ['output'] } },
      { ...wsRecord, ws: { ...ws, sent: 3 } },
      { ...wsRecord, ws: { ...ws, received: -1 } },
      { ...wsRecord, ws: { ...ws, parkedUntil: 'soon' } },
      { ...record, ws },
    ]) {
      expect(code(() => validateJournalRecord(bad)), JSON.stringify(bad).slice(0, 160)).toBe('IMI_BAD_JOURNAL');
    }
    for (const bad of [null, 'x', { ...ws, token: undefined, tokenHash: undefined }]) expect(code(() => checkJournalWs(bad))).toBe('IMI_BAD_JOURNAL');
    expect(readWorkerMessage({ imi: 'supervise', kind: 'ws', items: [{ id: 'a1', ws }] })).toEqual({ imi: 'supervise', kind: 'ws', items: [{ id: 'a1', ws }] });
    expect(code(() => readWorkerMessage({ imi: 'supervise', kind: 'ws', items: 'x' }))).toBe('IMI_BAD_JOURNAL');
    // Lines received: two arrays of the same length, ids and counts.
    expect(readWorkerMessage({ imi: 'supervise', kind: 'received', ids: ['a1', 'b2'], counts: [3, 0] })).toBeDefined();
    for (const bad of [{ ids: ['a1'], counts: [] }, { ids: [1], counts: [1] }, { ids: ['a1'], counts: [-1] }, { ids: ['a1'], counts: [1.5] }, { ids: 'a1', counts: [1] }]) {
      expect(code(() => readWorkerMessage({ imi: 'supervise', kind: 'received', ...bad })), JSON.stringify(bad)).toBe('IMI_BAD_JOURNAL');
    }
    // Only a WebSocket session is handed to a restarted worker without a descriptor.
    expect(readSupervisorMessage({ imi: 'supervise', kind: 'sessions', items: [{ record: wsRecord }] })).toBeDefined();
    expect(code(() => readSupervisorMessage({ imi: 'supervise', kind: 'sessions', items: [{ record }] }))).toBe('IMI_BAD_JOURNAL');
  });

  it('reads well-formed messages, ignores other IPC, and refuses the wrong shape with IMI_BAD_JOURNAL', () => {
    expect(readWorkerMessage({ cmd: 'NODE_something' })).toBeUndefined();
    expect(readWorkerMessage({ imi: 'supervise', kind: 'drop', ids: ['a'] })).toEqual({ imi: 'supervise', kind: 'drop', ids: ['a'] });
    for (const bad of [{ imi: 'supervise', kind: 'nope' }, { imi: 'supervise', kind: 'drop', ids: [1] }, { imi: 'supervise', kind: 'listener', role: 'x', index: 0 }, { imi: 'supervise', kind: 'final', sessions: [1], seq: 0 }, { imi: 'supervise', kind: 'serving', pid: 0, sessions: 0 }]) {
      expect(code(() => readWorkerMessage(bad)), JSON.stringify(bad)).toBe('IMI_BAD_JOURNAL');
    }
    expect(readSupervisorMessage({ imi: 'supervise', kind: 'end' })).toEqual({ imi: 'supervise', kind: 'end' });
    for (const bad of [{ imi: 'supervise', kind: 'begin', layout: { users: [2], app: 4 }, sessions: 0, planned: false, seq: 0, errors: {} }, { imi: 'supervise', kind: 'sessions', items: [{ fd: 5 }] }, { imi: 'supervise', kind: 'errors' }]) {
      expect(code(() => readSupervisorMessage(bad)), JSON.stringify(bad)).toBe('IMI_BAD_JOURNAL');
    }
  });

  it('restarts with a doubling delay and gives up after maxRestarts crashes in the window', () => {
    const policy = new RestartPolicy({ maxRestarts: 3, restartWindowMs: 1000, restartDelayMs: 100 });
    expect([policy.crashed(0), policy.crashed(10), policy.crashed(20)]).toEqual([100, 200, 400]);
    expect(policy.crashed(30)).toBeUndefined();
    // Old crashes leave the window.
    const spaced = new RestartPolicy({ maxRestarts: 1, restartWindowMs: 1000, restartDelayMs: 100 });
    expect(spaced.crashed(0)).toBe(100);
    expect(spaced.crashed(1000)).toBe(100);
    expect(spaced.crashed(1500)).toBeUndefined();
    expect(new RestartPolicy({ maxRestarts: 20, restartWindowMs: 1e9, restartDelayMs: 1000 }).crashed(0)).toBe(1000);
    const capped = new RestartPolicy({ maxRestarts: 20, restartWindowMs: 1e9, restartDelayMs: 1000 });
    for (let i = 0; i < 10; i++) capped.crashed(i);
    expect(capped.crashed(11)).toBe(MAX_RESTART_DELAY_MS);
  });
});
