// The dep_txns tracker on its own: which ids count as processed (a ring of
// the last `memory`, indexed only once dep_txns are asked about), and which
// held messages are released, expired or drained.
import { describe, expect, it } from 'vitest';
import { DependencyTracker } from '../src/delivery/dep-tracker.js';

describe('DependencyTracker', () => {
  it('remembers the last `memory` ids, whether or not the index existed while they were processed', () => {
    const tracker = new DependencyTracker<string>(3, 10);
    for (const id of ['a', 'b', 'c', 'd']) tracker.markProcessed(id);
    // Built from the ring now: 'a' was pushed out by 'd'.
    expect(tracker.missing(['a', 'b', 'c', 'd'])).toEqual(['a']);
    tracker.markProcessed('e');
    expect(tracker.missing(['a', 'b', 'c', 'd', 'e'])).toEqual(['a', 'b']);
    // With the index: an id processed again takes no second place.
    tracker.markProcessed('e');
    tracker.markProcessed('f');
    expect(tracker.missing(['c', 'd', 'e', 'f'])).toEqual(['c']);
  });

  it('an id repeated before the index exists keeps its latest place, and evicting its older copy does not forget it', () => {
    const tracker = new DependencyTracker<string>(4, 10);
    for (const id of ['x', 'y', 'x', 'z']) tracker.markProcessed(id);
    expect(tracker.missing(['x', 'y', 'z'])).toEqual([]);
    // The ring is now y, x, z (one place free): w fills it, then v evicts y, u evicts x.
    tracker.markProcessed('w');
    tracker.markProcessed('v');
    expect(tracker.missing(['x', 'y', 'z', 'w', 'v'])).toEqual(['y']);
    tracker.markProcessed('u');
    expect(tracker.missing(['x', 'y', 'z', 'w', 'v', 'u'])).toEqual(['x', 'y']);
  });

  it('holds a message until every id it waits for is processed, then releases it once', () => {
    const tracker = new DependencyTracker<string>(100, 10);
    tracker.markProcessed('a');
    const missing = tracker.missing(['a', 'b', 'c', 'b']);
    expect(missing).toEqual(['b', 'c']);
    expect(tracker.hold('m1', missing, 0)).toBe(true);
    expect(tracker.held).toBe(1);
    expect(tracker.markProcessed('b')).toEqual([]);
    expect(tracker.markProcessed('c')).toEqual(['m1']);
    expect(tracker.held).toBe(0);
    expect(tracker.markProcessed('c')).toEqual([]);
  });

  it('bounds the held messages, expires the old ones and drains the rest in order', () => {
    const tracker = new DependencyTracker<string>(100, 2);
    expect(tracker.hold('m1', ['x'], 0)).toBe(true);
    expect(tracker.hold('m2', ['y'], 50)).toBe(true);
    expect(tracker.hold('m3', ['z'], 60)).toBe(false);
    expect(tracker.expire(100, 80)).toEqual(['m1']);
    expect(tracker.markProcessed('x')).toEqual([]);
    expect(tracker.drain()).toEqual(['m2']);
    expect(tracker.held).toBe(0);
  });

  it('with no memory, nothing counts as processed', () => {
    const tracker = new DependencyTracker<string>(0, 10);
    tracker.markProcessed('a');
    expect(tracker.missing(['a'])).toEqual(['a']);
  });
});
