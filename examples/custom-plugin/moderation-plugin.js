// @ts-check
// A plugin for the intermediary, in the style of webpack's: a small class
// with a PLUGIN_NAME, whose apply() taps hooks under that name (so a log
// line says which plugin broke which hook). See docs/plugins.md.

/** @typedef {import('@imi/server').Intermediary} Intermediary */
/** @typedef {import('@imi/server').IntermediaryPlugin} IntermediaryPlugin */
/** @typedef {import('@imi/server').Session} Session */

/**
 * An IPv4 user on a dual-stack listener shows up as `::ffff:1.2.3.4`: compare
 * the plain address.
 *
 * @param {string} address
 * @returns {string}
 */
export function plainAddress(address) {
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

/**
 * Refuses users from banned addresses, masks bad words in what users type
 * (the app never sees them), and logs every departure.
 *
 * @implements {IntermediaryPlugin}
 */
export class ModerationPlugin {
  static PLUGIN_NAME = 'ModerationPlugin';

  /**
   * @param {object} options
   * @param {Iterable<string>} [options.banned] addresses turned away at connect
   * @param {Iterable<string>} [options.words] words masked with `*` in users' lines (whole words, any case)
   * @param {(line: string) => void} [options.log] where the audit lines go
   */
  constructor({ banned = [], words = [], log = (line) => console.log(line) } = {}) {
    this.banned = new Set([...banned].map(plainAddress));
    const list = [...words].map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = list.length === 0 ? undefined : new RegExp(`\\b(?:${list.join('|')})\\b`, 'gi');
    this.log = log;
    /** Lines changed by the filter so far. */
    this.masked = 0;
  }

  /** @param {Intermediary} imi */
  apply(imi) {
    const name = ModerationPlugin.PLUGIN_NAME;

    // connect is a bail hook: returning a Refusal turns the user away (its
    // message is written, the connection closed) and the app never hears
    // of them. Returning undefined lets them in.
    imi.hooks.connect.tap(name, (session) => {
      const address = plainAddress(session.remote.address);
      if (!this.banned.has(address)) return undefined;
      this.log(`[moderation] refused ${address}`);
      return { message: 'You are banned from this server.\r\n' };
    });

    // input is a synchronous waterfall, run for every line: return the new
    // line, or false to swallow it. A line an earlier tap swallowed arrives
    // as false: pass it on.
    imi.hooks.input.tap(name, (line) => {
      const pattern = this.pattern;
      if (line === false || pattern === undefined) return line;
      const clean = line.replace(pattern, (word) => '*'.repeat(word.length));
      if (clean !== line) this.masked++;
      return clean;
    });

    // disconnect is a plain notification: an audit line per departure.
    imi.hooks.disconnect.tap(name, (session, reason) => {
      const seconds = ((Date.now() - session.connectedAt) / 1000).toFixed(1);
      this.log(`[moderation] ${plainAddress(session.remote.address)} left after ${seconds} s (${reason})`);
    });
  }
}
