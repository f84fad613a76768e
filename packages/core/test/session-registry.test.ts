import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_MAX_STATE_BYTES, ImiError, LimitError, SessionRegistry, type JsonObject, type SessionRecord } from '@imi/core';
import { jsonObject, text } from './arbitraries.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const remote = { address: '127.0.0.1', port: 4242 };

function expectSession(result: SessionRecord | undefined | LimitError): SessionRecord {
  if (result === undefined || result instanceof LimitError) throw new Error(`expected a session, got ${String(result)}`);
  return result;
}

/** Records every event of a registry, in order. */
function record(registry: SessionRegistry): unknown[][] {
  const events: unknown[][] = [];
  registry.on('added', (session) => events.push(['added', session]));
  registry.on('removed', (session, reason) => events.push(['removed', session, reason]));
  registry.on('stateChanged', (session, changes) => events.push(['stateChanged', session, changes]));
  return events;
}

describe('SessionRegistry: sessions', () => {
  it('adds a session with a UUID id, the given transport and remote, now as connectedAt, empty state and zero counters', () => {
    const registry = new SessionRegistry();
    const before = Date.now();
    const session = registry.add({ transport: 'telnet', remote });
    const after = Date.now();
    expect(session.id).toMatch(UUID);
    expect(session.transport).toBe('telnet');
    expect(session.remote).toEqual(remote);
    expect(session.connectedAt).toBeGreaterThanOrEqual(before);
    expect(session.connectedAt).toBeLessThanOrEqual(after);
    expect(session.state).toEqual({});
    expect(session.counters).toEqual({ linesIn: 0, bytesIn: 0, writesOut: 0, bytesOut: 0 });
  });

  it('keeps a given id, connectedAt and state (a mirrored session)', () => {
    const registry = new SessionRegistry();
    const session = registry.add({ transport: 'ws', remote, id: 'known-id', connectedAt: 12345, state: { room: 'hall' } });
    expect(session).toMatchObject({ id: 'known-id', connectedAt: 12345, state: { room: 'hall' } });
    expect(registry.get('known-id')).toBe(session);
  });

  it('gives every session a different UUID', () => {
    const registry = new SessionRegistry();
    const ids = new Set<string>();
    for (let k = 0; k < 2000; k++) {
      const { id } = registry.add({ transport: 'tcp', remote });
      expect(id).toMatch(UUID);
      ids.add(id);
    }
    expect(ids.size).toBe(2000);
    expect(registry.size).toBe(2000);
  });

  it('gets, has, removes, and lists sessions in the order they connected', () => {
    const registry = new SessionRegistry();
    const a = registry.add({ transport: 'tcp', remote });
    const b = registry.add({ transport: 'tcp', remote });
    const c = registry.add({ transport: 'tcp', remote });
    expect(registry.size).toBe(3);
    expect(registry.get(b.id)).toBe(b);
    expect(registry.has(b.id)).toBe(true);
    expect(registry.get('nope')).toBeUndefined();
    expect(registry.has('nope')).toBe(false);

    expect(registry.remove(b.id, 'closed')).toBe(b);
    expect(registry.get(b.id)).toBeUndefined();
    expect(registry.has(b.id)).toBe(false);
    expect(registry.size).toBe(2);
    expect(registry.remove(b.id, 'closed')).toBeUndefined();

    expect([...registry.ids()]).toEqual([a.id, c.id]);
    expect([...registry.values()]).toEqual([a, c]);
    expect([...registry]).toEqual([a, c]);
  });

  it('clear() removes everything without events', () => {
    const registry = new SessionRegistry();
    registry.add({ transport: 'tcp', remote });
    registry.add({ transport: 'tcp', remote });
    const events = record(registry);
    registry.clear();
    expect(registry.size).toBe(0);
    expect(events).toEqual([]);
  });

  it('behaves like a Map under any sequence of adds and removes', () => {
    const op = fc.oneof(fc.constant({ kind: 'add' as const }), fc.nat(20).map((k) => ({ kind: 'remove' as const, k })));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const registry = new SessionRegistry();
        const model: string[] = [];
        for (const o of ops) {
          if (o.kind === 'add') model.push(registry.add({ transport: 'tcp', remote }).id);
          else {
            const id = model[o.k % Math.max(1, model.length)];
            const removed = registry.remove(id ?? 'none', 'closed');
            if (id === undefined) expect(removed).toBeUndefined();
            else {
              expect(removed?.id).toBe(id);
              model.splice(model.indexOf(id), 1);
            }
          }
        }
        expect([...registry.ids()]).toEqual(model);
        expect(registry.size).toBe(model.length);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('SessionRegistry: events', () => {
  it('emits added with the record and removed with the record and the reason', () => {
    const registry = new SessionRegistry();
    const events = record(registry);
    const session = registry.add({ transport: 'tcp', remote });
    registry.remove(session.id, 'kicked');
    registry.remove(session.id, 'kicked');
    registry.remove('unknown', 'closed');
    expect(events).toEqual([
      ['added', session],
      ['removed', session, 'kicked'],
    ]);
    expect(events[0]![1]).toBe(session);
    expect(events[1]![1]).toBe(session);
  });

  it('emits stateChanged with the record (already updated) and the changes as given', () => {
    const registry = new SessionRegistry();
    const session = registry.add({ transport: 'tcp', remote, state: { a: 1, b: 2 } });
    const seen: Array<{ session: SessionRecord; state: JsonObject; changes: JsonObject }> = [];
    registry.on('stateChanged', (s, changes) => seen.push({ session: s, state: s.state, changes }));
    const changes = { b: null, c: 'x' };
    registry.applyUpdates(session.id, changes);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.session).toBe(session);
    expect(seen[0]!.state).toEqual({ a: 1, c: 'x' });
    expect(seen[0]!.changes).toBe(changes);
  });
});

describe('SessionRegistry: state', () => {
  it('merges updates: keys are set, a key set to null is deleted, others are kept', () => {
    const registry = new SessionRegistry();
    const session = registry.add({ transport: 'tcp', remote, state: { room: 'hall', hp: 10, bag: ['a'] } });
    const result = registry.applyUpdates(session.id, { hp: 9, bag: null, title: { long: 'Sir' }, missing: null });
    expect(result).toBe(session);
    expect(session.state).toEqual({ room: 'hall', hp: 9, title: { long: 'Sir' } });
    expect('bag' in session.state).toBe(false);
    expect('missing' in session.state).toBe(false);
  });

  it('returns undefined, and emits nothing, for an unknown session', () => {
    const registry = new SessionRegistry();
    const events = record(registry);
    expect(registry.applyUpdates('nope', { a: 1 })).toBeUndefined();
    expect(events).toEqual([]);
  });

  it('stores a "__proto__" key as data, never as the state object’s prototype', () => {
    const registry = new SessionRegistry();
    const session = registry.add({ transport: 'tcp', remote });
    const updates = JSON.parse('{"__proto__":{"admin":true},"x":1}') as JsonObject;
    expect(Object.keys(updates)).toContain('__proto__');
    expectSession(registry.applyUpdates(session.id, updates));
    expect(Object.getPrototypeOf(session.state)).toBe(Object.prototype);
    expect((session.state as Record<string, unknown>)['admin']).toBeUndefined();
    expect(Object.keys(session.state)).toEqual(['__proto__', 'x']);
    expect(JSON.parse(JSON.stringify(session.state))).toEqual(JSON.parse('{"__proto__":{"admin":true},"x":1}'));
    expectSession(registry.applyUpdates(session.id, JSON.parse('{"__proto__":null}') as JsonObject));
    expect(Object.keys(session.state)).toEqual(['x']);
  });

  it('matches a model of merge-and-delete over any sequence of updates', () => {
    const updates = fc.dictionary(fc.oneof(fc.constantFrom('a', 'b', 'c', '__proto__', 'constructor', 'toString'), text), fc.oneof(fc.constant(null), fc.jsonValue({ maxDepth: 2 })), {
      maxKeys: 5,
    });
    fc.assert(
      fc.property(jsonObject, fc.array(updates, { maxLength: 6 }), (initial, sequence) => {
        const registry = new SessionRegistry({ maxStateBytes: Number.MAX_SAFE_INTEGER });
        const session = registry.add({ transport: 'tcp', remote, state: JSON.parse(JSON.stringify(initial)) as JsonObject });
        const model = new Map<string, unknown>(Object.entries(JSON.parse(JSON.stringify(initial)) as object));
        for (const u of sequence) {
          expectSession(registry.applyUpdates(session.id, u as JsonObject));
          for (const [key, value] of Object.entries(u)) {
            if (value === null) model.delete(key);
            else model.set(key, value);
          }
          expect(Object.getPrototypeOf(session.state)).toBe(Object.prototype);
          expect(new Map(Object.entries(session.state))).toEqual(model);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('has a 64 KiB default state bound', () => {
    expect(DEFAULT_MAX_STATE_BYTES).toBe(64 * 1024);
    expect(new SessionRegistry().maxStateBytes).toBe(DEFAULT_MAX_STATE_BYTES);
    expect(new SessionRegistry({ maxStateBytes: 10 }).maxStateBytes).toBe(10);
  });

  it('over maxStateBytes: returns a LimitError (IMI_LIMIT), leaves the state unchanged and emits nothing', () => {
    const registry = new SessionRegistry({ maxStateBytes: 100 });
    const session = registry.add({ transport: 'tcp', remote, state: { keep: 'me' } });
    const stateBefore = session.state;
    const events = record(registry);
    const result = registry.applyUpdates(session.id, { keep: null, big: 'x'.repeat(200) });
    expect(result).toBeInstanceOf(LimitError);
    const error = result as LimitError;
    expect(error).toBeInstanceOf(ImiError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('IMI_LIMIT');
    expect(error.limit).toBe('maxStateBytes');
    expect(error.value).toBe(100);
    expect(error.sessionId).toBe(session.id);
    expect(error.message).toContain('maxStateBytes');
    expect(session.state).toBe(stateBefore);
    expect(session.state).toEqual({ keep: 'me' });
    expect(events).toEqual([]);
  });

  it('counts the bound in UTF-8 bytes of JSON: exactly maxStateBytes fits, one byte more does not', () => {
    // {"k":"éé…"}: 8 bytes of punctuation and key, 2 bytes per é.
    const registry = new SessionRegistry({ maxStateBytes: 108 });
    const session = registry.add({ transport: 'tcp', remote });
    expect(registry.applyUpdates(session.id, { k: 'é'.repeat(50) })).toBe(session);
    expect(Buffer.byteLength(JSON.stringify(session.state))).toBe(108);
    expect(registry.applyUpdates(session.id, { k: 'é'.repeat(50) + 'x' })).toBeInstanceOf(LimitError);
    expect(session.state).toEqual({ k: 'é'.repeat(50) });
  });

  it('deleting keys is always allowed back under the bound', () => {
    const registry = new SessionRegistry({ maxStateBytes: 50 });
    const session = registry.add({ transport: 'tcp', remote, state: { big: 'x'.repeat(100) } });
    expect(registry.applyUpdates(session.id, { big: null })).toBe(session);
    expect(session.state).toEqual({});
  });

  it('returns a LimitError, without throwing, for state that cannot be serialised', () => {
    const registry = new SessionRegistry();
    const session = registry.add({ transport: 'tcp', remote });
    let deep: unknown = 1;
    for (let k = 0; k < 100_000; k++) deep = [deep];
    const results = [
      registry.applyUpdates(session.id, { n: 10n } as unknown as JsonObject),
      registry.applyUpdates(session.id, { deep } as unknown as JsonObject),
    ];
    for (const result of results) {
      expect(result).toBeInstanceOf(LimitError);
      expect((result as LimitError).code).toBe('IMI_LIMIT');
    }
    expect(session.state).toEqual({});
  });
});
