/**
 * When the supervisor restarts a worker that died, and when it stops
 * trying: each crash waits twice as long as the one before (from
 * `restartDelayMs`, at most {@link MAX_RESTART_DELAY_MS}), and more than
 * `maxRestarts` crashes within `restartWindowMs` is a crash loop: the
 * supervisor gives up.
 *
 * @module
 */

/** Default {@link RestartPolicyOptions.maxRestarts}. */
export const DEFAULT_MAX_RESTARTS = 5;
/** Default {@link RestartPolicyOptions.restartWindowMs}: 60 s. */
export const DEFAULT_RESTART_WINDOW_MS = 60_000;
/** Default {@link RestartPolicyOptions.restartDelayMs}: 100 ms. */
export const DEFAULT_RESTART_DELAY_MS = 100;
/** The longest wait before a restart, in ms, however many crashes came before. */
export const MAX_RESTART_DELAY_MS = 5_000;

/** The crash-loop bound. */
export interface RestartPolicyOptions {
  /** Restarts allowed within `restartWindowMs`; one crash more and the supervisor gives up. */
  maxRestarts: number;
  /** The window the crashes are counted in, in ms. */
  restartWindowMs: number;
  /** The wait before the first restart, in ms; doubled for each crash still in the window. */
  restartDelayMs: number;
}

/** Counts crashes in a sliding window. */
export class RestartPolicy {
  private readonly crashes: number[] = [];

  /** @param options - the bound */
  constructor(private readonly options: RestartPolicyOptions) {}

  /** Crashes within the window now. */
  get recent(): number {
    return this.crashes.length;
  }

  /**
   * A worker died at `now`.
   *
   * @returns the wait before the restart in ms, or undefined: give up
   */
  crashed(now: number): number | undefined {
    const { maxRestarts, restartWindowMs, restartDelayMs } = this.options;
    this.crashes.push(now);
    while (this.crashes.length > 0 && this.crashes[0]! <= now - restartWindowMs) this.crashes.shift();
    if (this.crashes.length > maxRestarts) return undefined;
    return Math.min(MAX_RESTART_DELAY_MS, restartDelayMs * 2 ** (this.crashes.length - 1));
  }
}
