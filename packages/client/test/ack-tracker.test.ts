import { describe, expect, it } from 'vitest';
import { AckTracker } from '../src/ack-tracker.js';

describe('AckTracker', () => {
  it('releases in arrival order with the ack of the finished prefix', () => {
    const tracker = new AckTracker<string>();
    const a = tracker.receive(1);
    const b = tracker.receive(2);
    const c = tracker.receive(3);
    expect(tracker.complete(b, 'B')).toEqual({ payloads: [], ack: undefined });
    expect(tracker.complete(c, 'C')).toEqual({ payloads: [], ack: undefined });
    expect(tracker.complete(a, 'A')).toEqual({ payloads: ['A', 'B', 'C'], ack: 3 });
    expect(tracker.size).toBe(0);
    expect(tracker.acked).toBe(3);
  });

  it('never acks a seq while an earlier one is still running', () => {
    const tracker = new AckTracker<string>();
    const first = tracker.receive(10);
    const second = tracker.receive(11);
    const release = tracker.complete(second, 'second');
    expect(release.ack).toBeUndefined();
    expect(tracker.acked).toBeUndefined();
    expect(tracker.complete(first, 'first').ack).toBe(11);
  });

  it('acks each event alone when they finish in order', () => {
    const tracker = new AckTracker<string>();
    for (let seq = 1; seq <= 5; seq++) {
      const ticket = tracker.receive(seq);
      expect(tracker.complete(ticket, `r${seq}`)).toEqual({ payloads: [`r${seq}`], ack: seq });
    }
  });

  it('orders events without a seq too (acks off), with no ack', () => {
    const tracker = new AckTracker<string>();
    const a = tracker.receive();
    const b = tracker.receive();
    expect(tracker.complete(b, 'b').payloads).toEqual([]);
    expect(tracker.complete(a, 'a')).toEqual({ payloads: ['a', 'b'], ack: undefined });
  });

  it('acks the highest seq released, never going back', () => {
    const tracker = new AckTracker<string>();
    const a = tracker.receive(7);
    const b = tracker.receive(5); // out of order on the wire: the ack stays cumulative and monotonic
    expect(tracker.complete(a, 'a').ack).toBe(7);
    expect(tracker.complete(b, 'b')).toEqual({ payloads: ['b'], ack: undefined });
  });

  it('takeHeld hands over finished payloads stuck behind a slow event, keeping the ack for later', () => {
    const tracker = new AckTracker<string>();
    const slow = tracker.receive(1);
    const fast = tracker.receive(2);
    const faster = tracker.receive(3);
    tracker.complete(fast, 'fast');
    tracker.complete(faster, 'faster');
    expect(tracker.takeHeld()).toEqual(['fast', 'faster']);
    expect(tracker.takeHeld()).toEqual([]);
    expect(tracker.complete(slow, 'slow')).toEqual({ payloads: ['slow'], ack: 3 });
  });

  it('take hands over one finished payload behind a slow event, once; not a running or released one', () => {
    const tracker = new AckTracker<string>();
    const slow = tracker.receive(1);
    const fast = tracker.receive(2);
    const later = tracker.receive(3);
    tracker.complete(fast, 'fast');
    expect(tracker.take(later)).toBeUndefined(); // still running
    expect(tracker.take(fast)).toBe('fast');
    expect(tracker.take(fast)).toBeUndefined();
    expect(tracker.complete(slow, 'slow')).toEqual({ payloads: ['slow'], ack: 2 });
    expect(tracker.take(slow)).toBeUndefined(); // released
    expect(tracker.complete(later, 'later')).toEqual({ payloads: ['later'], ack: 3 });
  });

  it('throws on an unknown or twice-completed ticket', () => {
    const tracker = new AckTracker<string>();
    const ticket = tracker.receive(1);
    tracker.complete(ticket, 'x');
    expect(() => tracker.complete(ticket, 'x')).toThrow(/not pending/);
    expect(() => tracker.complete(42, 'x')).toThrow(/not pending/);
  });

  it('keeps memory proportional to the events in flight, not to all events seen', () => {
    const tracker = new AckTracker<number>();
    const slow = tracker.receive(0);
    let lastAck: number | undefined;
    for (let seq = 1; seq <= 5_000; seq++) tracker.complete(tracker.receive(seq), seq);
    expect(tracker.size).toBe(5_001);
    const release = tracker.complete(slow, 0);
    expect(release.payloads).toHaveLength(5_001);
    lastAck = release.ack;
    expect(lastAck).toBe(5_000);
    expect(tracker.size).toBe(0);
    // Long run with a small window: compaction keeps the internal array small.
    const window: number[] = [];
    for (let seq = 5_001; seq <= 50_000; seq++) {
      window.push(tracker.receive(seq));
      if (window.length > 8) tracker.complete(window.shift()!, seq);
    }
    expect(tracker.size).toBe(8);
    expect((tracker as unknown as { entries: unknown[] }).entries.length).toBeLessThan(2_100);
  });
});
