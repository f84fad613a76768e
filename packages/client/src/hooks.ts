/**
 * The client's tapable hooks, one per moment of a user's life, mirroring
 * the original Perl client's `connect_hook`, `input_hook`,
 * `disconnect_hook` and `build_response`.
 *
 * @module
 */
import { AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import { HandlerError } from './errors.js';
import { Session } from './session.js';

/**
 * The hooks of a {@link Client}, in the order they run for a user. Every
 * hook is asynchronous: taps may be plain functions (`tap`), return a
 * promise (`tapPromise`, or an `async` function given to `tap`), or take a
 * callback (`tapAsync`). Taps run one after the other, by `stage` then
 * registration order.
 *
 * A tap that throws or rejects is reported through the client's `error`
 * event as a {@link HandlerError} naming the hook and the tap; the other taps
 * still run (a waterfall goes on with the value it had), and the input is
 * still acknowledged.
 */
export interface ClientHooks {
  /** A user connected, or was announced in a resync (`session.resumed`). Runs after the `connect` event's listeners are called. */
  readonly connect: AsyncSeriesHook<[Session]>;
  /** A user sent a line (end-of-line stripped). Runs before `buildResponse`. */
  readonly input: AsyncSeriesHook<[Session, string]>;
  /**
   * Builds the reply to a line: a waterfall that starts with `undefined`;
   * each tap gets the reply so far and returns a new one (returning
   * `undefined` keeps it). If the result is a string it is sent to the user,
   * in the same write as the input's ack. The original's `build_response`.
   */
  readonly buildResponse: AsyncSeriesWaterfallHook<[string | undefined, Session, string]>;
  /** A user is gone; `reason` is the intermediary's (`"closed"`, `"timeout"`, …) or `"gone"` after a resync. */
  readonly disconnect: AsyncSeriesHook<[Session, string]>;
}

type AnyTapFn = (...args: unknown[]) => unknown;

/**
 * Makes every tap of `hook` a promise tap that cannot fail: an error is
 * reported, named after the hook and the tap, and the tap yields
 * `undefined` (so a waterfall keeps its value and a series goes on).
 *
 * Converting `sync` taps to `promise` also makes `tap('x', async () => …)`
 * work as an author would expect: tapable would otherwise pass the promise
 * on as the tap's result, unawaited.
 */
export function isolateTaps(hook: AsyncSeriesHook<never> | AsyncSeriesWaterfallHook<never>, hookName: string, report: (error: HandlerError) => void): void {
  hook.intercept({
    register: (tap) => {
      const original = tap.fn as AnyTapFn;
      const tapName = tap.name;
      const type = tap.type;
      const fail = (args: unknown[], cause: unknown): undefined => {
        const session = args.find((arg): arg is Session => arg instanceof Session);
        report(new HandlerError('hook', hookName, tapName, cause, session?.id));
        return undefined;
      };
      const run =
        type === 'async'
          ? (args: unknown[]) =>
              new Promise<unknown>((resolve, reject) => {
                original(...args, (error: unknown, result?: unknown) => (error ? reject(error) : resolve(result)));
              })
          : (args: unknown[]) => original(...args);
      tap.type = 'promise';
      tap.fn = (...args: unknown[]): Promise<unknown> => {
        try {
          return Promise.resolve(run(args)).then(undefined, (cause: unknown) => fail(args, cause));
        } catch (cause) {
          return Promise.resolve(fail(args, cause));
        }
      };
      return tap;
    },
  });
}
