/**
 * The CLI's side of `--supervise`: its settings (flags or config file keys)
 * and the supervisor process itself — pid file, signals, the first worker.
 *
 * @module
 */
import type { Logger } from 'pino';
import { ImiError } from '@imi/core';
import { writePidFile } from '../handover/child.js';
import { DEFAULT_UPGRADE_TIMEOUT_MS } from '../handover/upgrader.js';
import { DEFAULT_CRASH_NOTICE, Supervisor } from './supervisor.js';
import { DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_DELAY_MS, DEFAULT_RESTART_WINDOW_MS } from './restart-policy.js';

/** The flags of `--supervise` (all CLI-only). */
export const SUPERVISE_FLAGS = {
  supervise: { type: 'boolean' },
  'max-restarts': { type: 'string' },
  'restart-window-ms': { type: 'string' },
  'restart-delay-ms': { type: 'string' },
  'crash-notice': { type: 'string' },
} as const;

/** The same, as config file keys. */
export const SUPERVISE_KEYS = ['supervise', 'maxRestarts', 'restartWindowMs', 'restartDelayMs', 'crashNotice'];

/** What `--supervise` was given. */
export interface SuperviseSettings {
  /** Run as the supervisor. */
  enabled: boolean;
  /** `--max-restarts`. */
  maxRestarts: number;
  /** `--restart-window-ms`. */
  restartWindowMs: number;
  /** `--restart-delay-ms`. */
  restartDelayMs: number;
  /** `--crash-notice` (`false`: none). */
  crashNotice: string | false;
}

function integer(raw: unknown, flag: string, min: number, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if ((typeof raw === 'string' && raw.trim() === '') || !Number.isInteger(value) || value < min) throw new ImiError('IMI_CONFIG', `--${flag} must be an integer of at least ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

/** Reads the settings from the flags (first) and the config file's keys (which it removes from `options`). */
export function superviseSettings(values: Record<string, string | boolean | undefined>, options: Record<string, unknown>): SuperviseSettings {
  const pick = (flag: string, key: string): unknown => {
    const value = values[flag] ?? options[key];
    delete options[key];
    return value;
  };
  const enabled = pick('supervise', 'supervise');
  if (enabled !== undefined && typeof enabled !== 'boolean') throw new ImiError('IMI_CONFIG', '"supervise" must be true or false');
  const notice = pick('crash-notice', 'crashNotice');
  if (notice !== undefined && typeof notice !== 'string' && notice !== false) throw new ImiError('IMI_CONFIG', '--crash-notice must be a text or false');
  return {
    enabled: enabled === true,
    maxRestarts: integer(pick('max-restarts', 'maxRestarts'), 'max-restarts', 0, DEFAULT_MAX_RESTARTS),
    restartWindowMs: integer(pick('restart-window-ms', 'restartWindowMs'), 'restart-window-ms', 1, DEFAULT_RESTART_WINDOW_MS),
    restartDelayMs: integer(pick('restart-delay-ms', 'restartDelayMs'), 'restart-delay-ms', 0, DEFAULT_RESTART_DELAY_MS),
    crashNotice: notice === undefined ? DEFAULT_CRASH_NOTICE : notice === 'false' || notice === false ? false : notice.replace(/\\r/g, '\r').replace(/\\n/g, '\n'),
  };
}

/** What the supervisor takes from the intermediary's options. */
export interface SupervisedLimits {
  /** `shutdownNotice`: told to users when the supervisor gives up. */
  shutdownNotice: string | false;
  /** `maxConnections`: the journal's bound. */
  maxConnections: number;
  /** `wsResumeWindowMs`: how long after a crash a WebSocket user connected at the time may resume. */
  wsResumeWindowMs: number;
}

/**
 * Runs this process as the supervisor: writes the pid file (its own pid:
 * signals go to the supervisor), starts the worker — the script
 * `IMI_SUPERVISE_EXEC` names, else this one — with the same arguments, and
 * handles SIGTERM/SIGINT (graceful stop through the worker) and SIGUSR2 (a
 * planned restart).
 */
export function runSupervisor(settings: SuperviseSettings, limits: SupervisedLimits, pidFile: string | undefined, upgradeTimeoutMs: number | undefined, logger: Logger): Supervisor {
  if (pidFile !== undefined) writePidFile(pidFile);
  const supervisor = new Supervisor({
    execPath: process.execPath,
    script: process.env['IMI_SUPERVISE_EXEC'] || process.argv[1]!,
    args: process.argv.slice(2),
    logger,
    crashNotice: settings.crashNotice,
    shutdownNotice: limits.shutdownNotice,
    maxSessions: limits.maxConnections,
    wsResumeWindowMs: limits.wsResumeWindowMs,
    maxRestarts: settings.maxRestarts,
    restartWindowMs: settings.restartWindowMs,
    restartDelayMs: settings.restartDelayMs,
    plannedRestartTimeoutMs: upgradeTimeoutMs ?? DEFAULT_UPGRADE_TIMEOUT_MS,
  });
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  process.on('SIGUSR2', () => supervisor.plannedRestart());
  // The supervisor runs no protocol code; anything thrown here is a bug, and exiting would cost every user.
  process.on('uncaughtException', (error) => logger.error({ err: error }, 'supervisor: uncaught error (ignored: the users are held)'));
  logger.info({ maxRestarts: settings.maxRestarts, restartWindowMs: settings.restartWindowMs }, 'supervisor: starting the intermediary');
  supervisor.start();
  return supervisor;
}
