/**
 * A token bucket for error reports (log lines, `error` frames to the app):
 * a burst, then a steady rate; whatever is over it is counted by code and
 * told once per interval as one summary, so a peer that errs in a loop
 * cannot make the intermediary write in proportion.
 *
 * @module
 */
import type { ImiErrorCode } from '@imi/core';

/** Settings of an {@link ErrorBudget}. */
export interface ErrorBudgetSettings {
  /** Reports a second, refilled continuously. */
  perSecond: number;
  /** Reports allowed at once (the bucket's size); at least 1. */
  burst: number;
  /** How long after the first suppressed report its summary comes, in ms. */
  summaryIntervalMs: number;
  /** One bucket per code (log lines: a flood of one code hides no other), or one for all (frames: a bound on bytes). */
  perCode: boolean;
}

/**
 * Called once per code per interval with what was suppressed.
 *
 * @param code - the suppressed reports' code
 * @param suppressed - how many were suppressed
 * @param windowMs - since the first of them, in ms
 */
export type SummarySink = (code: ImiErrorCode, suppressed: number, windowMs: number) => void;

interface Bucket {
  tokens: number;
  refilledAt: number;
}

/** Decides which reports go out; counts and summarises the rest. */
export class ErrorBudget {
  private readonly settings: ErrorBudgetSettings;
  private readonly onSummary: SummarySink;
  private readonly buckets = new Map<ImiErrorCode | '', Bucket>();
  private readonly suppressed = new Map<ImiErrorCode, number>();
  private firstSuppressedAt = 0;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param settings - rate, burst, summary interval
   * @param onSummary - told what was suppressed, once per interval per code
   */
  constructor(settings: ErrorBudgetSettings, onSummary: SummarySink) {
    this.settings = settings;
    this.onSummary = onSummary;
  }

  /** Suppressed reports not summarised yet (every code). */
  get pending(): number {
    let total = 0;
    for (const count of this.suppressed.values()) total += count;
    return total;
  }

  /**
   * Takes one report's token.
   *
   * @returns true if the report may go out; false if it was counted for the next summary
   */
  take(code: ImiErrorCode): boolean {
    const { perSecond, burst, summaryIntervalMs, perCode } = this.settings;
    const key = perCode ? code : '';
    const now = Date.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, refilledAt: now };
      this.buckets.set(key, bucket);
    } else if (now > bucket.refilledAt) {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.refilledAt) * perSecond) / 1000);
      bucket.refilledAt = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return true;
    }
    if (this.suppressed.size === 0) this.firstSuppressedAt = now;
    this.suppressed.set(code, (this.suppressed.get(code) ?? 0) + 1);
    if (this.timer === undefined) {
      this.timer = setTimeout(this.flush, summaryIntervalMs);
      // A summary must not keep a process alive that has nothing else to do.
      this.timer.unref();
    }
    return false;
  }

  /** Tells what was suppressed now (the interval's end, or a close). */
  readonly flush = (): void => {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed.size === 0) return;
    const windowMs = Date.now() - this.firstSuppressedAt;
    const counts = [...this.suppressed];
    this.suppressed.clear();
    for (const [code, count] of counts) this.onSummary(code, count, windowMs);
  };

  /** Drops what is pending without telling it, and stops the timer (the peer is gone). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.suppressed.clear();
  }
}

/**
 * The text of a summary: `"N more CODE errors were suppressed in the last X s"`.
 *
 * @param code - the suppressed code
 * @param suppressed - how many
 * @param windowMs - over how long, in ms (shown in seconds, one decimal)
 */
export function summaryText(code: ImiErrorCode, suppressed: number, windowMs: number): string {
  return `${suppressed} more ${code} error${suppressed === 1 ? ' was' : 's were'} suppressed in the last ${(Math.max(windowMs, 1) / 1000).toFixed(1)} s`;
}
