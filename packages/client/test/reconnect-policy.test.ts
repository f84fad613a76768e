import { describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import { DEFAULT_INITIAL_DELAY_MS, DEFAULT_MAX_DELAY_MS, exponentialBackoff } from '../src/index.js';

describe('exponentialBackoff', () => {
  it('grows by the factor from the initial delay and stops at the cap', () => {
    const policy = exponentialBackoff({ initialDelayMs: 100, maxDelayMs: 1_000, factor: 3, jitter: 0 });
    expect([1, 2, 3, 4, 5, 50].map(policy)).toEqual([100, 300, 900, 1_000, 1_000, 1_000]);
  });

  it('is a pure function of the attempt number', () => {
    const policy = exponentialBackoff({ jitter: 0 });
    expect(policy(4)).toBe(policy(4));
    expect(policy(1)).toBe(DEFAULT_INITIAL_DELAY_MS);
    expect(policy(1_000)).toBe(DEFAULT_MAX_DELAY_MS);
  });

  it('spreads the delay by ±jitter with the injected random source', () => {
    const low = exponentialBackoff({ initialDelayMs: 1_000, maxDelayMs: 10_000, jitter: 0.5, random: () => 0 });
    const mid = exponentialBackoff({ initialDelayMs: 1_000, maxDelayMs: 10_000, jitter: 0.5, random: () => 0.5 });
    const high = exponentialBackoff({ initialDelayMs: 1_000, maxDelayMs: 10_000, jitter: 0.5, random: () => 0.999999 });
    expect(low(1)).toBe(500);
    expect(mid(1)).toBe(1_000);
    expect(high(1)).toBe(1_500);
  });

  it('never goes over maxDelayMs, even with jitter', () => {
    const policy = exponentialBackoff({ initialDelayMs: 100, maxDelayMs: 400, jitter: 1, random: () => 0.999999 });
    for (let attempt = 1; attempt < 20; attempt++) expect(policy(attempt)).toBeLessThanOrEqual(400);
  });

  it('gives up (undefined) after maxAttempts, and for attempts below 1', () => {
    const policy = exponentialBackoff({ maxAttempts: 2, jitter: 0 });
    expect(policy(1)).toBeTypeOf('number');
    expect(policy(2)).toBeTypeOf('number');
    expect(policy(3)).toBeUndefined();
    expect(policy(0)).toBeUndefined();
    expect(policy(Number.NaN)).toBeUndefined();
  });

  it('rejects impossible options with IMI_CONFIG naming the option', () => {
    const cases: [Parameters<typeof exponentialBackoff>[0], string][] = [
      [{ initialDelayMs: -1 }, 'initialDelayMs'],
      [{ initialDelayMs: 500, maxDelayMs: 100 }, 'maxDelayMs'],
      [{ factor: 0.5 }, 'factor'],
      [{ jitter: 2 }, 'jitter'],
      [{ maxAttempts: 1.5 }, 'maxAttempts'],
    ];
    for (const [options, name] of cases) {
      let thrown: unknown;
      try {
        exponentialBackoff(options);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ImiError);
      expect((thrown as ImiError).code).toBe('IMI_CONFIG');
      expect((thrown as ImiError).message).toContain(name);
    }
  });
});
