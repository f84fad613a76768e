/**
 * What `imi-server` does about upgrades: takes over from its predecessor
 * when started by one (or binds its ports), writes the pid file, and starts
 * an upgrade on `POST /upgrade` (the admin API, `imi-server upgrade`) or
 * SIGUSR2, exiting once the successor serves.
 *
 * @module
 */
import type { Logger } from 'pino';
import type { ListeningPorts } from '../api.js';
import type { Intermediary } from '../intermediary.js';
import { isSuccessor, takeOver, writePidFile } from './child.js';
import { DEFAULT_UPGRADE_TIMEOUT_MS, Upgrader, type UpgradeResult } from './upgrader.js';

/** How long the old process lingers after the successor serves, so the answer to `POST /upgrade` and the last log lines get out. */
const EXIT_GRACE_MS = 100;

/** The CLI's upgrade settings. */
export interface UpgradeSettings {
  /** `--pid-file`: written at start, rewritten by every successor. */
  pidFile?: string | undefined;
  /** `--upgrade-timeout-ms`: how long a successor may take to be ready. Default {@link DEFAULT_UPGRADE_TIMEOUT_MS}. */
  timeoutMs?: number | undefined;
}

/**
 * Listens (on the inherited sockets when this process is a successor) and
 * arms upgrades.
 *
 * The successor runs `IMI_UPGRADE_EXEC` when set (a script path), else this
 * process's own script, with this process's arguments: the `imi-server` on
 * disk now, so a new version is rolled out by installing it and upgrading.
 *
 * @returns the ports, as `listen()` does
 */
export async function setUpUpgrades(imi: Intermediary, logger: Logger, settings: UpgradeSettings): Promise<ListeningPorts> {
  const successor = isSuccessor();
  const ports = successor ? await takeOver(imi, logger, settings.pidFile) : await imi.listen();
  if (!successor && settings.pidFile !== undefined) writePidFile(settings.pidFile);
  const upgrader = new Upgrader(imi, {
    execPath: process.execPath,
    script: process.env['IMI_UPGRADE_EXEC'] || process.argv[1]!,
    args: process.argv.slice(2),
    timeoutMs: settings.timeoutMs ?? DEFAULT_UPGRADE_TIMEOUT_MS,
    logger,
  });
  const upgrade = async (): Promise<UpgradeResult> => {
    const result = await upgrader.upgrade();
    setTimeout(() => process.exit(0), EXIT_GRACE_MS);
    return result;
  };
  imi.upgradeHandler = upgrade;
  process.on('SIGUSR2', () => {
    // Failures are reported (logged, counted) by the upgrader; this process serves on.
    upgrade().catch(() => {});
  });
  return ports;
}
