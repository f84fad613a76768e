/**
 * The client's own error class. Codes come from the one table in
 * `@imi/core`; this only adds where a handler failure happened, so a log line
 * names the hook and the plugin that broke.
 *
 * @module
 */
import { ImiError } from '@imi/core';

/** Where a failing handler was attached. */
export type HandlerKind = 'hook' | 'event';

/**
 * A tap or an event listener threw or rejected. Always code `IMI_PLUGIN`;
 * the original error is the `cause`. It is reported through the client's
 * `error` event and the work goes on (the input is still acknowledged).
 */
export class HandlerError extends ImiError {
  /** A tapable hook tap, or an event listener. */
  readonly kind: HandlerKind;
  /** The hook's name (`"buildResponse"`) or the event's (`"input"`). */
  readonly hook: string;
  /** The tap's name for hooks (`"Shout"`); `undefined` for event listeners. */
  readonly tap: string | undefined;

  /**
   * @param kind - hook tap or event listener
   * @param hook - the hook or event name
   * @param tap - the tap name (hooks only)
   * @param cause - what the handler threw or rejected with
   * @param sessionId - the user the handler ran for, if any
   */
  constructor(kind: HandlerKind, hook: string, tap: string | undefined, cause: unknown, sessionId: string | undefined) {
    const where = kind === 'hook' ? `hook "${hook}" tap "${tap ?? '?'}"` : `"${hook}" event listener`;
    const options = sessionId === undefined ? { cause } : { cause, sessionId };
    super('IMI_PLUGIN', `${where} failed${sessionId === undefined ? '' : ` for session ${sessionId}`}: ${describe(cause)}`, options);
    this.name = 'HandlerError';
    this.kind = kind;
    this.hook = hook;
    this.tap = tap;
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  try {
    return String(cause);
  } catch {
    return 'unprintable value';
  }
}
