import { describe, expect, it } from 'vitest';
import { txnIdSource } from '../src/index.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('txnIdSource', () => {
  it('makes distinct ids shaped as version 4 UUIDs', () => {
    const next = txnIdSource();
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const id = next();
      expect(id).toMatch(UUID_V4);
      seen.add(id);
    }
    expect(seen.size).toBe(10_000);
  });

  it('draws a new random prefix per source (per process), so ids do not repeat across restarts', () => {
    const a = txnIdSource()();
    const b = txnIdSource()();
    expect(a).not.toBe(b);
    expect(a.slice(0, 24)).not.toBe(b.slice(0, 24));
  });
});
