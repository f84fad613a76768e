/**
 * Built-in plugins. They are switched on by options (`banner`,
 * `appDownNotice`, `idleTimeoutMs`) and double as examples of the plugin
 * style: a class with a `PLUGIN_NAME`, taps named after it, no access to
 * anything a third-party plugin could not reach.
 *
 * @module
 */
import type { IntermediaryApi, IntermediaryPlugin } from './api.js';
import type { Session } from './hooks.js';

/** Writes a banner to every user as they connect, before the app hears of them. */
export class WelcomeBannerPlugin implements IntermediaryPlugin {
  /** The tap name. */
  static readonly PLUGIN_NAME = 'WelcomeBannerPlugin';

  /** @param banner - the text, written verbatim (include your own `\r\n`) */
  constructor(private readonly banner: string) {}

  /** Taps `connect`. */
  apply(intermediary: IntermediaryApi): void {
    intermediary.hooks.connect.tap(WelcomeBannerPlugin.PLUGIN_NAME, (session) => {
      session.write(this.banner);
      return undefined;
    });
  }
}

/**
 * Tells each user, once per app outage, that the app is away and their
 * input is kept: when the app drops, when they connect during the outage,
 * and when they type before they were told.
 */
export class AppDownNoticePlugin implements IntermediaryPlugin {
  /** The tap name. */
  static readonly PLUGIN_NAME = 'AppDownNoticePlugin';
  /**
   * The `stage` of its `connect` tap: after taps of the default stage (0), so
   * a user a plugin refuses is not first told to stay connected.
   */
  static readonly CONNECT_STAGE = 100;
  private told = new WeakSet<Session>();

  /** @param notice - the text, written verbatim */
  constructor(private readonly notice: string) {}

  /** Taps `clientConnect`, `clientDisconnect`, `connect` and `noClient`. */
  apply(intermediary: IntermediaryApi): void {
    const tell = (session: Session): void => {
      if (this.told.has(session)) return;
      this.told.add(session);
      session.write(this.notice);
    };
    intermediary.hooks.clientConnect.tap(AppDownNoticePlugin.PLUGIN_NAME, () => {
      this.told = new WeakSet();
    });
    intermediary.hooks.clientDisconnect.tap(AppDownNoticePlugin.PLUGIN_NAME, () => {
      // A replaced app leaves with its successor already connected: no outage.
      if (intermediary.appConnected) return;
      for (const session of intermediary.sessions()) tell(session);
    });
    intermediary.hooks.connect.tap({ name: AppDownNoticePlugin.PLUGIN_NAME, stage: AppDownNoticePlugin.CONNECT_STAGE }, (session) => {
      if (!intermediary.appConnected) tell(session);
      return undefined;
    });
    intermediary.hooks.noClient.tap(AppDownNoticePlugin.PLUGIN_NAME, (session) => tell(session));
  }
}

/** Disconnects users who send nothing for `idleTimeoutMs` (reason `"timeout"`). */
export class IdleTimeoutPlugin implements IntermediaryPlugin {
  /** The tap name. */
  static readonly PLUGIN_NAME = 'IdleTimeoutPlugin';
  private readonly lastInput = new Map<string, number>();

  /**
   * @param idleTimeoutMs - how long a user may stay silent
   * @param notice - written before the close
   */
  constructor(
    private readonly idleTimeoutMs: number,
    private readonly notice = '\r\n*** Disconnected for inactivity. ***\r\n',
  ) {}

  /** Taps `connect`, `input` and `disconnect`; sweeps on an unref'd timer. */
  apply(intermediary: IntermediaryApi): void {
    const name = IdleTimeoutPlugin.PLUGIN_NAME;
    intermediary.hooks.connect.tap(name, (session) => {
      this.lastInput.set(session.id, Date.now());
      return undefined;
    });
    intermediary.hooks.input.tap(name, (line, session) => {
      this.lastInput.set(session.id, Date.now());
      return line;
    });
    intermediary.hooks.disconnect.tap(name, (session) => {
      this.lastInput.delete(session.id);
    });
    let timer: NodeJS.Timeout | undefined;
    intermediary.on('listening', () => {
      const sweepMs = Math.max(10, Math.min(1000, Math.floor(this.idleTimeoutMs / 4)));
      timer = setInterval(() => {
        const now = Date.now();
        for (const [id, last] of this.lastInput) {
          if (now - last < this.idleTimeoutMs) continue;
          this.lastInput.delete(id);
          intermediary.session(id)?.close(this.notice, 'timeout');
        }
      }, sweepMs);
      timer.unref();
    });
    intermediary.on('close', () => clearInterval(timer));
  }
}
