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

/** What {@link isolateTaps} keeps of a tap as it was registered, for {@link callHook}. */
interface TapOrigin {
  readonly fn: AnyTapFn;
  readonly sync: boolean;
  readonly fail: (args: unknown[], cause: unknown) => undefined;
}

const ORIGIN = Symbol('imi.tapOrigin');

interface TapWithOrigin {
  [ORIGIN]?: TapOrigin;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

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
      (tap as TapWithOrigin)[ORIGIN] = { fn: original, sync: type === 'sync', fail };
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

/**
 * Calls a hook made by {@link isolateTaps} with the same results as
 * `hook.promise(...args)`, but without a promise per tap when every tap was
 * registered with `tap` and returns a plain value: the common case (a
 * `buildResponse` that upper-cases a line) then costs no microtask at all.
 * A tap that returns a promise is awaited and the rest run after it; hooks
 * with taps of other kinds, or with interceptors of their own, go through
 * tapable.
 *
 * @param waterfall - true for a waterfall hook: `args[0]` is the value each
 *   tap gets and may replace (by returning something other than `undefined`)
 * @returns the waterfall's result (`undefined` for a series hook), or a
 *   promise of it when some tap had to be awaited
 */
export function callHook(hook: { readonly taps: readonly unknown[]; promise(...args: never[]): Promise<unknown> }, args: unknown[], waterfall: boolean): unknown {
  const taps = hook.taps as TapWithOrigin[];
  let direct = (hook as unknown as { interceptors: unknown[] }).interceptors.length === 1;
  for (let i = 0; direct && i < taps.length; i++) direct = taps[i]![ORIGIN]?.sync === true;
  if (!direct) return (hook.promise as (...a: unknown[]) => Promise<unknown>)(...args);
  return runTaps(taps, 0, args, waterfall);
}

function runTaps(taps: TapWithOrigin[], from: number, args: unknown[], waterfall: boolean): unknown {
  for (let i = from; i < taps.length; i++) {
    const origin = taps[i]![ORIGIN]!;
    let result: unknown;
    try {
      result = origin.fn(...args);
    } catch (cause) {
      origin.fail(args, cause);
      continue;
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => {
          if (waterfall && value !== undefined) args[0] = value;
          return runTaps(taps, i + 1, args, waterfall);
        },
        (cause: unknown) => {
          origin.fail(args, cause);
          return runTaps(taps, i + 1, args, waterfall);
        },
      );
    }
    if (waterfall && result !== undefined) args[0] = result;
  }
  return waterfall ? args[0] : undefined;
}
