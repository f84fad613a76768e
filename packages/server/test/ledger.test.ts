// The in-memory input ledger on its own, without sockets: numbering,
// queueing, acks, redelivery order, bounds and what they drop, and users
// who leave with input pending.
import { describe, expect, it } from 'vitest';
import { MemoryLedger, type InputEntry, type LedgerLimits, type LedgerSink } from '@imi/server';

const ROOMY: LedgerLimits = { maxQueuedLinesPerSession: 100, maxQueuedBytesPerSession: 1 << 20, maxQueuedBytesTotal: 1 << 24, maxUnackedTotal: 10_000 };

interface Recorded {
  queueOverflow: Array<[string, string, number]>;
  unackedOverflow: Array<[string, string]>;
  userGone: Array<[string, number]>;
}

function make(limits: Partial<LedgerLimits> = {}): { ledger: MemoryLedger; seen: Recorded } {
  const seen: Recorded = { queueOverflow: [], unackedOverflow: [], userGone: [] };
  const sink: LedgerSink = {
    queueOverflow: (id, limit, count) => seen.queueOverflow.push([id, limit, count]),
    unackedOverflow: (id, limit) => seen.unackedOverflow.push([id, limit]),
    userGone: (id, count) => seen.userGone.push([id, count]),
  };
  return { ledger: new MemoryLedger({ ...ROOMY, ...limits }, sink), seen };
}

let txn = 0;
function line(ledger: MemoryLedger, id: string, value: string): InputEntry {
  return ledger.input(id, value, `txn-${++txn}`, Buffer.byteLength(value));
}

function drained(ledger: MemoryLedger): Array<{ id: string; value: string; redelivery: boolean; oldSeq: number }> {
  const out: Array<{ id: string; value: string; redelivery: boolean; oldSeq: number }> = [];
  ledger.drain((entry) => out.push({ id: entry.sessionId, value: entry.value, redelivery: entry.sentBefore, oldSeq: entry.seq }));
  return out;
}

describe('MemoryLedger', () => {
  it('numbers events from 1, one by one, shared by events and tracked input', () => {
    const { ledger } = make();
    ledger.openSession('a');
    expect(ledger.nextSeq()).toBe(1);
    expect(ledger.sent(line(ledger, 'a', 'x'), true)).toBe(2);
    expect(ledger.sent(line(ledger, 'a', 'y'), false)).toBe(0);
    expect(ledger.nextSeq()).toBe(3);
  });

  it('queues per session in the order typed and drains sessions in the order they were opened', () => {
    const { ledger } = make();
    ledger.openSession('b');
    ledger.openSession('a');
    // Open, no line yet: known, with nothing pending.
    expect(ledger.sessionTotals('b')).toEqual({ queuedLines: 0, queuedBytes: 0, unacked: 0 });
    expect(ledger.sessionInputs('b')).toEqual({ queued: [], unacked: [] });
    expect(ledger.sessionTotals('z')).toBeUndefined();
    ledger.queue(line(ledger, 'a', 'a1'));
    ledger.queue(line(ledger, 'b', 'b1'));
    ledger.queue(line(ledger, 'a', 'a2'));
    expect(ledger.totals()).toEqual({ queuedLines: 3, queuedBytes: 6, unacked: 0 });
    expect(ledger.sessionTotals('a')).toEqual({ queuedLines: 2, queuedBytes: 4, unacked: 0 });
    expect(drained(ledger).map((e) => e.value)).toEqual(['b1', 'a1', 'a2']);
    expect(ledger.totals()).toEqual({ queuedLines: 0, queuedBytes: 0, unacked: 0 });
    expect(drained(ledger)).toEqual([]);
  });

  it('keeps tracked input until a cumulative ack covers it', () => {
    const { ledger } = make();
    ledger.openSession('a');
    const seqs = ['1', '2', '3'].map((v) => ledger.sent(line(ledger, 'a', v), true));
    expect(ledger.totals().unacked).toBe(3);
    ledger.ack(seqs[1]!);
    expect(ledger.totals().unacked).toBe(1);
    expect(ledger.sessionInputs('a')!.unacked.map((e) => e.value)).toEqual(['3']);
    ledger.ack(seqs[1]!); // the same ack again changes nothing
    expect(ledger.totals().unacked).toBe(1);
    ledger.ack(1_000);
    expect(ledger.totals().unacked).toBe(0);
    expect(ledger.sessionInputs('a')).toEqual({ queued: [], unacked: [] });
  });

  it('input sent to an app without acks is not kept', () => {
    const { ledger } = make();
    ledger.openSession('a');
    ledger.sent(line(ledger, 'a', 'x'), false);
    ledger.appLost();
    expect(ledger.totals()).toEqual({ queuedLines: 0, queuedBytes: 0, unacked: 0 });
    expect(drained(ledger)).toEqual([]);
  });

  it('after the app is lost, redelivers what it did not ack in old seq order across users, then the queued input', () => {
    const { ledger } = make();
    for (const id of ['a', 'b']) ledger.openSession(id);
    const a1 = line(ledger, 'a', 'a1');
    ledger.sent(a1, true);
    ledger.sent(line(ledger, 'b', 'b1'), true);
    ledger.sent(line(ledger, 'a', 'a2'), true);
    ledger.ack(a1.seq);
    ledger.appLost();
    ledger.queue(line(ledger, 'b', 'b2'));
    ledger.queue(line(ledger, 'a', 'a3'));
    expect(ledger.totals()).toEqual({ queuedLines: 2, queuedBytes: 4, unacked: 2 });
    const out: InputEntry[] = [];
    // The next app acks: each entry is tracked again as it is delivered, with a new seq and its old txn id.
    const txnIds = ledger.sessionInputs('b')!.unacked.map((e) => e.txnId);
    ledger.drain((entry) => {
      out.push({ ...entry });
      ledger.sent(entry, true);
    });
    expect(out.map((e) => [e.value, e.sentBefore])).toEqual([
      ['b1', true],
      ['a2', true],
      ['a3', false],
      ['b2', false],
    ]);
    expect(ledger.sessionInputs('b')!.unacked.map((e) => e.txnId)[0]).toBe(txnIds[0]);
    expect(ledger.totals()).toEqual({ queuedLines: 0, queuedBytes: 0, unacked: 4 });
    // New seqs are past every old one.
    const newSeqs = [...ledger.sessionInputs('a')!.unacked, ...ledger.sessionInputs('b')!.unacked].map((e) => e.seq);
    expect(Math.min(...newSeqs)).toBeGreaterThan(3);
  });

  it('queue bounds drop the oldest lines of that session and say which bound, once per queued line', () => {
    const { ledger, seen } = make({ maxQueuedLinesPerSession: 2 });
    ledger.openSession('a');
    for (const v of ['1', '2', '3', '4']) ledger.queue(line(ledger, 'a', v));
    expect(seen.queueOverflow).toEqual([
      ['a', 'maxQueuedLinesPerSession', 1],
      ['a', 'maxQueuedLinesPerSession', 1],
    ]);
    expect(ledger.sessionInputs('a')!.queued.map((e) => e.value)).toEqual(['3', '4']);
    expect(ledger.totals()).toEqual({ queuedLines: 2, queuedBytes: 2, unacked: 0 });
  });

  it('the per-session byte bound and the total byte bound drop queued lines too', () => {
    const bytes = make({ maxQueuedBytesPerSession: 5 });
    bytes.ledger.openSession('a');
    bytes.ledger.queue(line(bytes.ledger, 'a', 'abc'));
    bytes.ledger.queue(line(bytes.ledger, 'a', 'defg'));
    expect(bytes.seen.queueOverflow).toEqual([['a', 'maxQueuedBytesPerSession', 1]]);
    expect(bytes.ledger.sessionInputs('a')!.queued.map((e) => e.value)).toEqual(['defg']);

    const total = make({ maxQueuedBytesTotal: 6 });
    total.ledger.openSession('a');
    total.ledger.openSession('b');
    total.ledger.queue(line(total.ledger, 'a', 'aaaa'));
    total.ledger.queue(line(total.ledger, 'b', 'bb'));
    total.ledger.queue(line(total.ledger, 'b', 'b'));
    // The session that queued pays: b drops its own oldest line.
    expect(total.seen.queueOverflow).toEqual([['b', 'maxQueuedBytesTotal', 1]]);
    expect(total.ledger.totals()).toEqual({ queuedLines: 2, queuedBytes: 5, unacked: 0 });
  });

  it('unacked bounds drop the oldest unacked input, which is then never redelivered', () => {
    const perSession = make({ maxQueuedLinesPerSession: 2 });
    perSession.ledger.openSession('a');
    for (const v of ['1', '2', '3']) perSession.ledger.sent(line(perSession.ledger, 'a', v), true);
    expect(perSession.seen.unackedOverflow).toEqual([['a', 'maxQueuedLinesPerSession']]);
    perSession.ledger.appLost();
    expect(drained(perSession.ledger).map((e) => e.value)).toEqual(['2', '3']);

    const global = make({ maxUnackedTotal: 2 });
    for (const id of ['a', 'b']) global.ledger.openSession(id);
    global.ledger.sent(line(global.ledger, 'a', 'a1'), true);
    global.ledger.sent(line(global.ledger, 'b', 'b1'), true);
    global.ledger.sent(line(global.ledger, 'b', 'b2'), true);
    expect(global.seen.unackedOverflow).toEqual([['a', 'maxUnackedTotal']]);
    expect(global.ledger.totals().unacked).toBe(2);
    expect(global.ledger.sessionTotals('a')!.unacked).toBe(0);
    global.ledger.appLost();
    expect(drained(global.ledger).map((e) => e.value)).toEqual(['b1', 'b2']);
  });

  it('an app that never acks cannot grow the global queue past twice the bound', () => {
    const { ledger } = make({ maxUnackedTotal: 10 });
    ledger.openSession('a');
    for (let i = 0; i < 1000; i++) ledger.sent(line(ledger, 'a', String(i)), true);
    expect(ledger.totals().unacked).toBe(10);
    expect(ledger['unacked'].length).toBeLessThanOrEqual(20);
  });

  it('a user leaving takes their pending input along: queued and kept-for-redelivery input is counted gone, input the app has is not', () => {
    const { ledger, seen } = make();
    for (const id of ['a', 'b', 'c']) ledger.openSession(id);
    ledger.sent(line(ledger, 'a', 'with-app'), true);
    ledger.closeSession('a');
    expect(seen.userGone).toEqual([]);
    expect(ledger.totals().unacked).toBe(0);

    ledger.sent(line(ledger, 'b', 'b1'), true);
    ledger.appLost();
    ledger.queue(line(ledger, 'b', 'b2'));
    ledger.queue(line(ledger, 'c', 'c1'));
    ledger.closeSession('b');
    expect(seen.userGone).toEqual([['b', 2]]);
    expect(ledger.totals()).toEqual({ queuedLines: 1, queuedBytes: 2, unacked: 0 });
    expect(drained(ledger).map((e) => e.value)).toEqual(['c1']);
    expect(ledger.sessionTotals('b')).toBeUndefined();
    ledger.closeSession('b'); // again: nothing
    expect(seen.userGone).toEqual([['b', 2]]);
  });

  it('restores sessions from snapshots: queued again, unacked merged by old seq for redelivery, numbering continues past them', () => {
    const { ledger } = make();
    const entry = (id: string, value: string, seq: number, sentBefore: boolean): InputEntry => ({ sessionId: id, value, txnId: `t-${value}`, bytes: value.length, seq, sentBefore });
    ledger.restoreSession('b', { queued: [entry('b', 'bq', 0, false)], unacked: [entry('b', 'b7', 7, true), entry('b', 'b9', 9, true)] });
    ledger.restoreSession('a', { queued: [], unacked: [entry('a', 'a8', 8, true)] });
    expect(ledger.totals()).toEqual({ queuedLines: 1, queuedBytes: 2, unacked: 3 });
    expect(ledger.nextSeq()).toBe(10);
    const out = drained(ledger);
    expect(out.map((e) => [e.value, e.redelivery, e.oldSeq])).toEqual([
      ['b7', true, 7],
      ['a8', true, 8],
      ['b9', true, 9],
      ['bq', false, 0],
    ]);
  });
});
