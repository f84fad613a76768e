/**
 * How long to wait before each reconnection attempt: a pure function of the
 * attempt number, so it can be tested without a clock and swapped for any
 * other schedule.
 *
 * @module
 */
import { ImiError } from '@imi/core';

/**
 * Delay before reconnection attempt `attempt` (1 for the first retry after a
 * failure), in milliseconds. Return `undefined` to give up: the client then
 * closes with an `IMI_LINK_DOWN` error (and a pending `connect()` rejects).
 * The one exception to the delay: attempt 1 after a `shutdown` of reason
 * `handover` (an upgrade of the intermediary, whose successor already
 * listens) goes at once, though the policy is still asked and may give up.
 */
export type ReconnectPolicy = (attempt: number) => number | undefined;

/** Options of {@link exponentialBackoff}; each has a default. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default {@link DEFAULT_INITIAL_DELAY_MS}. */
  initialDelayMs?: number;
  /** Longest delay, in ms, whatever the attempt and the jitter. Default {@link DEFAULT_MAX_DELAY_MS}. */
  maxDelayMs?: number;
  /** Growth per attempt (≥ 1). Default {@link DEFAULT_BACKOFF_FACTOR}. */
  factor?: number;
  /**
   * Random spread, as a fraction of the delay (0 to 1): a delay `d` becomes
   * a value in `[d·(1−jitter), d·(1+jitter)]`. It keeps many apps (or many
   * restarts) from hammering an intermediary in lockstep. Default
   * {@link DEFAULT_JITTER}.
   */
  jitter?: number;
  /** Give up after this many retries. Default `Infinity` (an app waits for its intermediary forever). */
  maxAttempts?: number;
  /** Source of randomness in `[0, 1)`; injectable so tests are deterministic. Default `Math.random`. */
  random?: () => number;
}

/** Default {@link BackoffOptions.initialDelayMs}: 100 ms, so a quick intermediary restart costs little. */
export const DEFAULT_INITIAL_DELAY_MS = 100;
/** Default {@link BackoffOptions.maxDelayMs}: 5 s, so an app notices a returning intermediary quickly. */
export const DEFAULT_MAX_DELAY_MS = 5_000;
/** Default {@link BackoffOptions.factor}: the delay doubles per attempt. */
export const DEFAULT_BACKOFF_FACTOR = 2;
/** Default {@link BackoffOptions.jitter}: ±25 %. */
export const DEFAULT_JITTER = 0.25;

function check(ok: boolean, message: string): void {
  if (!ok) throw new ImiError('IMI_CONFIG', `reconnect: ${message}`);
}

/**
 * Exponential backoff with jitter and a cap: attempt `n` waits about
 * `initialDelayMs · factor^(n−1)`, spread by `jitter`, never more than
 * `maxDelayMs`.
 *
 * @param options - delays, growth, jitter, attempt limit, random source
 * @returns a {@link ReconnectPolicy}
 * @throws ImiError `IMI_CONFIG` when an option is impossible (negative delay, factor below 1, jitter outside 0..1)
 *
 * @example
 * ```ts
 * const policy = exponentialBackoff({ initialDelayMs: 200, maxDelayMs: 10_000, jitter: 0 });
 * policy(1); // 200
 * policy(3); // 800
 * ```
 */
export function exponentialBackoff(options: BackoffOptions = {}): ReconnectPolicy {
  const initialDelayMs = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
  const maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const factor = options.factor ?? DEFAULT_BACKOFF_FACTOR;
  const jitter = options.jitter ?? DEFAULT_JITTER;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const random = options.random ?? Math.random;
  check(Number.isFinite(initialDelayMs) && initialDelayMs >= 0, `initialDelayMs must be a finite number ≥ 0, got ${initialDelayMs}`);
  check(Number.isFinite(maxDelayMs) && maxDelayMs >= initialDelayMs, `maxDelayMs must be a finite number ≥ initialDelayMs (${initialDelayMs}), got ${maxDelayMs}`);
  check(Number.isFinite(factor) && factor >= 1, `factor must be a finite number ≥ 1, got ${factor}`);
  check(Number.isFinite(jitter) && jitter >= 0 && jitter <= 1, `jitter must be between 0 and 1, got ${jitter}`);
  check(maxAttempts >= 0 && (Number.isInteger(maxAttempts) || maxAttempts === Number.POSITIVE_INFINITY), `maxAttempts must be an integer ≥ 0 or Infinity, got ${maxAttempts}`);

  return (attempt: number): number | undefined => {
    if (!(attempt >= 1) || attempt > maxAttempts) return undefined;
    // Past the cap the power only overflows towards Infinity; min() keeps it finite.
    const base = Math.min(maxDelayMs, initialDelayMs * factor ** (attempt - 1));
    const spread = jitter === 0 ? 1 : 1 - jitter + 2 * jitter * random();
    return Math.min(maxDelayMs, Math.round(base * spread));
  };
}
