/**
 * The intermediary's counters and its one way to report a problem: count
 * it, log it (rate-limited per code), emit it. Every part shares one
 * {@link Reporter}; `stats()` reads its counters.
 *
 * @module
 */
import type { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import { ERROR_CODES, ImiError, LimitError, type ImiErrorCode } from '@imi/core';
import type { DropReason, IntermediaryEvents } from '../api.js';
import { DEFAULT_ERROR_LOG_BURST, DEFAULT_ERROR_SUMMARY_INTERVAL_MS, DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND } from '../options.js';
import type { AdmissionRefusal } from '../users/admission.js';
import { ErrorBudget, summaryText } from './error-budget.js';

/** The levels reports are logged at, least severe first. */
const REPORT_LEVELS = ['debug', 'info', 'warn'] as const;
/** A level reports are logged at. */
export type ReportLevel = (typeof REPORT_LEVELS)[number];

/** How many report lines the log gets (see the options of the same names). */
export interface LogBudget {
  /** Lines a second per code. */
  maxErrorLogLinesPerSecond: number;
  /** Lines per code at once. */
  errorLogBurst: number;
  /** The summary of what was suppressed comes this long after the first of it, in ms. */
  errorSummaryIntervalMs: number;
}

const LEVEL_RANK = { debug: 0, info: 1, warn: 2 } as const;

/** Where reported errors are emitted (the intermediary's `error` event). */
export type EventSink = Pick<EventEmitter<IntermediaryEvents>, 'emit' | 'listenerCount'>;

/** The counters `stats()` reports, written by every part. */
export interface Counters {
  appConnects: number;
  appDisconnects: number;
  appReplacements: number;
  sessionsOpened: number;
  inputLines: number;
  inputBytes: number;
  redelivered: number;
  lastResyncMs: number | undefined;
  lastResyncAnnounced: number | undefined;
  dropped: Record<DropReason, number>;
  refused: Record<AdmissionRefusal, number>;
  errors: Record<ImiErrorCode, number>;
  limits: Record<string, number>;
  /** Output of sessions that closed (live ones are summed from their records). */
  closedOutput: { writes: number; bytes: number };
}

/** Counts, logs and emits what goes wrong. Never throws. */
export class Reporter {
  /** The counters (one object for the intermediary's life). */
  readonly counters: Counters = {
    appConnects: 0,
    appDisconnects: 0,
    appReplacements: 0,
    sessionsOpened: 0,
    inputLines: 0,
    inputBytes: 0,
    redelivered: 0,
    lastResyncMs: undefined,
    lastResyncAnnounced: undefined,
    dropped: { queueFull: 0, appDownDrop: 0, userGone: 0, unackedOverflow: 0, rateLimited: 0 },
    refused: { maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 0 },
    errors: Object.fromEntries(ERROR_CODES.map((code) => [code, 0])) as Record<ImiErrorCode, number>,
    limits: {},
    closedOutput: { writes: 0, bytes: 0 },
  };
  private readonly logger: Logger;
  private readonly events: EventSink;
  private readonly logBudget: ErrorBudget;
  /** The most severe level among the suppressed reports of each code: their summary's level. */
  private readonly suppressedLevel = new Map<ImiErrorCode, ReportLevel>();

  /**
   * @param logger - where reports are logged
   * @param events - where they are emitted (`error`)
   * @param budget - how many lines the log gets; defaults of the options of the same names
   */
  constructor(logger: Logger, events: EventSink, budget?: LogBudget) {
    this.logger = logger;
    this.events = events;
    this.logBudget = new ErrorBudget(
      {
        perSecond: budget?.maxErrorLogLinesPerSecond ?? DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND,
        burst: budget?.errorLogBurst ?? DEFAULT_ERROR_LOG_BURST,
        summaryIntervalMs: budget?.errorSummaryIntervalMs ?? DEFAULT_ERROR_SUMMARY_INTERVAL_MS,
        perCode: true,
      },
      (code, suppressed, windowMs) => {
        // At the reports' own level: a flood of debug-level reports must not summarise itself as a warning.
        const level = this.suppressedLevel.get(code) ?? 'warn';
        this.suppressedLevel.delete(code);
        this.logger[level]({ code, suppressed, windowMs }, summaryText(code, suppressed, windowMs));
      },
    );
  }

  /** Counts (every one), logs (within the log budget, per code) and emits an error. */
  report(error: ImiError, level: ReportLevel = 'warn'): void {
    const counters = this.counters;
    counters.errors[error.code] = (counters.errors[error.code] ?? 0) + 1;
    if (this.logBudget.take(error.code)) {
      this.logger[level]({ code: error.code, session: error.sessionId, txn: error.txnId, err: error.cause }, error.message);
    } else {
      const before = this.suppressedLevel.get(error.code);
      if (before === undefined || REPORT_LEVELS.indexOf(level) > REPORT_LEVELS.indexOf(before)) this.suppressedLevel.set(error.code, level);
    }
    if (this.events.listenerCount('error') > 0) {
      try {
        this.events.emit('error', error);
      } catch (listenerError) {
        this.logger.error({ err: listenerError }, 'an error listener threw');
      }
    }
  }

  /** Logs the summary of what is suppressed now (on close: the last lines must not be lost). */
  flush(): void {
    this.logBudget.flush();
  }

  /** Counts a limit hit (in `stats().limits`) without reporting it. */
  countLimit(error: LimitError): void {
    this.counters.limits[error.limit] = (this.counters.limits[error.limit] ?? 0) + 1;
  }

  /** Counts and reports a limit hit. */
  reportLimit(limit: string, value: number, message: string, sessionId?: string): void {
    const error = new LimitError(limit, value, `${limit} (${value}): ${message}`, sessionId === undefined ? {} : { sessionId });
    this.countLimit(error);
    this.report(error);
  }

  /** Reports a tap that threw, naming its hook. */
  reportPluginError(hook: string, error: unknown, sessionId?: string): void {
    const message = error instanceof Error ? error.message : String(error);
    this.report(new ImiError('IMI_PLUGIN', `a tap of the "${hook}" hook threw: ${message}`, sessionId === undefined ? { cause: error } : { cause: error, sessionId }));
  }
}
