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
import type { AdmissionRefusal } from '../users/admission.js';

/** Log lines per code per second before the rest are only counted. */
const LOG_LINES_PER_CODE_PER_SECOND = 20;

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
    dropped: { queueFull: 0, appDownDrop: 0, userGone: 0, unackedOverflow: 0, rateLimited: 0 },
    refused: { maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 0 },
    errors: Object.fromEntries(ERROR_CODES.map((code) => [code, 0])) as Record<ImiErrorCode, number>,
    limits: {},
    closedOutput: { writes: 0, bytes: 0 },
  };
  private readonly logger: Logger;
  private readonly events: EventSink;
  private readonly logBudget = new Map<ImiErrorCode, { second: number; count: number; suppressed: number; level: 'warn' | 'info' | 'debug' }>();

  /**
   * @param logger - where reports are logged
   * @param events - where they are emitted (`error`)
   */
  constructor(logger: Logger, events: EventSink) {
    this.logger = logger;
    this.events = events;
  }

  /** Counts, logs (rate-limited per code) and emits an error. */
  report(error: ImiError, level: 'warn' | 'info' | 'debug' = 'warn'): void {
    const counters = this.counters;
    counters.errors[error.code] = (counters.errors[error.code] ?? 0) + 1;
    const second = Math.floor(Date.now() / 1000);
    let budget = this.logBudget.get(error.code);
    if (budget === undefined || budget.second !== second) {
      if (budget !== undefined && budget.suppressed > 0) {
        // At the level of the reports it stands for: a flood of debug-level reports must not surface as a warning.
        this.logger[budget.level]({ code: error.code, suppressed: budget.suppressed }, 'further reports of this code were only counted');
      }
      budget = { second, count: 0, suppressed: 0, level: 'debug' };
      this.logBudget.set(error.code, budget);
    }
    if (budget.count < LOG_LINES_PER_CODE_PER_SECOND) {
      budget.count++;
      this.logger[level]({ code: error.code, session: error.sessionId, txn: error.txnId, err: error.cause }, error.message);
    } else {
      budget.suppressed++;
      if (LEVEL_RANK[level] > LEVEL_RANK[budget.level]) budget.level = level;
    }
    if (this.events.listenerCount('error') > 0) {
      try {
        this.events.emit('error', error);
      } catch (listenerError) {
        this.logger.error({ err: listenerError }, 'an error listener threw');
      }
    }
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
