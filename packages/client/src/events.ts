/**
 * The client's typed events, and the dispatcher that calls their listeners
 * so that a throwing or rejecting listener is reported instead of cutting
 * the others short or killing the app.
 *
 * @module
 */
import type { ImiError, JsonValue, TelnetInfo } from '@imi/core';
import { EventEmitter } from 'eventemitter3';
import { HandlerError } from './errors.js';
import type { Session } from './session.js';

/**
 * Events of a {@link Client}. Listeners of `connect`, `input` and
 * `disconnect` may be `async`: the client awaits what they return before it
 * acknowledges the event, and everything they send while it is handled goes
 * out in one write with that ack.
 *
 * A listener that throws or rejects is reported through `error` as a
 * `HandlerError` (code `IMI_PLUGIN`, with the session id); the other
 * listeners still run.
 */
export interface ClientEvents {
  /**
   * A user connected. `session.resumed` is `true` when the app hears of
   * them in a resync (it just started, or restarted), with what it stored
   * in `session.state`. After a short link outage, users this process
   * already knew are not announced again.
   */
  connect: (session: Session) => void | Promise<void>;
  /** A user sent a line (end-of-line stripped). */
  input: (session: Session, line: string) => void | Promise<void>;
  /**
   * A user is gone: `reason` is the intermediary's (`"closed"`, `"timeout"`,
   * `"kicked"`, …), or `"gone"` when a resync no longer listed them (they
   * left while the link was down).
   */
  disconnect: (session: Session, reason: string) => void | Promise<void>;
  /**
   * A telnet user's negotiated options changed (they resized their window,
   * their client turned GMCP on, …); `session.telnet` is already updated.
   * Not acked; in order with the user's other events. Info the intermediary
   * sends again unchanged (it does after a reconnect) is not an event.
   */
  telnet: (session: Session, info: Readonly<TelnetInfo>) => void;
  /**
   * A GMCP message from a telnet user's MUD client: the package (e.g.
   * `"Core.Hello"`, `"Char.Login.Credentials"`) and its parsed JSON payload
   * (undefined when it had none). Not acked and not queued while the app is
   * away; in order with the user's other events. MSDP variables come here
   * too, with `protocol` `"msdp"`: the variable's name as `packageName`,
   * its value as text, an array or an object.
   */
  gmcp: (session: Session, packageName: string, value: JsonValue | undefined, protocol: 'gmcp' | 'msdp') => void;
  /** A resync is complete: {@link Client.sessions} now matches the intermediary's `count` live users. */
  synced: (count: number) => void;
  /** Every `tickIntervalMs` from `connect()` to `close()`, link up or down; `n` counts from 1. */
  tick: (n: number) => void;
  /** The link to the intermediary is usable (after each resync, the first one included). */
  linkUp: () => void;
  /**
   * The link to the intermediary broke after a `linkUp`; the client keeps
   * outgoing messages (bounded) and reconnects. `reason` says why.
   */
  linkDown: (reason: ImiError) => void;
  /** The next connection attempt is `attempt` (from 1), in `delayMs`; `cause` is what failed. */
  reconnecting: (attempt: number, delayMs: number, cause: ImiError) => void;
  /** Everything queued for the socket was written after the socket had asked the client to wait. */
  drain: () => void;
  /**
   * Something went wrong that the app should know about but that did not
   * stop the client: a handler failed (`IMI_PLUGIN`), the intermediary
   * refused a message (`IMI_UNKNOWN_ID`, `IMI_LIMIT`, …), a frame from it was
   * broken. Fatal errors (`IMI_AUTH`, `IMI_REPLACED`, giving up on
   * reconnecting) come here too unless a `connect()` call is waiting to
   * reject with them. Without a listener, errors are printed with
   * `console.error` rather than lost.
   */
  error: (error: ImiError) => void;
  /** The client closed: by `close()` (`reason` undefined) or for a fatal error (`reason`). */
  close: (reason: ImiError | undefined) => void;
}

interface ListenerRecord {
  fn: (...args: unknown[]) => unknown;
  context: unknown;
  once: boolean;
}

function isListenerRecord(value: unknown): value is ListenerRecord {
  return typeof value === 'object' && value !== null && typeof (value as { fn?: unknown }).fn === 'function';
}

/**
 * Calls every listener of `event` like `emitter.emit` would (in order,
 * `once` listeners removed first), but one at a time inside try/catch, and
 * collects what they return so promises can be awaited.
 *
 * eventemitter3 has no public way to get at `once` flags and contexts, so
 * this reads its listener store (stable across v5); if that shape ever
 * changes it falls back to `listeners()`, losing only `once` semantics.
 *
 * @returns the listeners' return values, and the errors they threw synchronously
 */
export function invokeListeners<E extends EventEmitter.ValidEventTypes>(
  emitter: EventEmitter<E>,
  event: string,
  args: readonly unknown[],
): { results: unknown[]; errors: unknown[] } {
  const key = typeof EventEmitter.prefixed === 'string' ? EventEmitter.prefixed + event : event;
  const store = (emitter as unknown as { _events?: Record<string, unknown> })._events;
  const stored = store?.[key];
  const list: unknown[] = stored === undefined ? [] : Array.isArray(stored) ? [...stored] : [stored];
  const records: ListenerRecord[] =
    store !== undefined && list.every(isListenerRecord)
      ? (list as ListenerRecord[])
      : (emitter.listeners(event as never) as unknown as ListenerRecord['fn'][]).map((fn) => ({ fn, context: emitter, once: false }));
  const results: unknown[] = [];
  const errors: unknown[] = [];
  for (const record of records) {
    if (record.once) emitter.removeListener(event as never, record.fn as never, undefined, true);
    try {
      results.push(record.fn.apply(record.context, args as unknown[]));
    } catch (error) {
      errors.push(error);
    }
  }
  return { results, errors };
}

/**
 * Reports an error through the emitter's `error` event; never throws, and
 * never loses an error for want of a listener (it is printed then).
 */
export function reportError(emitter: EventEmitter<ClientEvents>, error: ImiError): void {
  if (emitter.listenerCount('error') === 0) {
    console.error('[imi client]', error);
    return;
  }
  const { errors } = invokeListeners(emitter, 'error', [error]);
  for (const thrown of errors) console.error('[imi client] an "error" listener threw', thrown, 'while handling', error);
}

/** Emits an event whose listeners are not awaited; what they throw or reject with is reported as a {@link HandlerError}. */
export function emitReporting(emitter: EventEmitter<ClientEvents>, event: Exclude<keyof ClientEvents, 'error'>, args: unknown[], report: (error: ImiError) => void): void {
  const { results, errors } = invokeListeners(emitter, event, args);
  for (const error of errors) report(new HandlerError('event', event, undefined, error, undefined));
  for (const result of results) {
    if (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function') {
      Promise.resolve(result).then(undefined, (error: unknown) => report(new HandlerError('event', event, undefined, error, undefined)));
    }
  }
}
