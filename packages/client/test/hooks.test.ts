import { describe, expect, it } from 'vitest';
import { AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import { callHook, isolateTaps } from '../src/hooks.js';
import type { HandlerError } from '../src/errors.js';

function waterfall(): { hook: AsyncSeriesWaterfallHook<[string | undefined, string]>; reported: HandlerError[] } {
  const hook = new AsyncSeriesWaterfallHook<[string | undefined, string]>(['reply', 'line']);
  const reported: HandlerError[] = [];
  isolateTaps(hook as never, 'buildResponse', (error) => reported.push(error));
  return { hook, reported };
}

/** callHook's result, awaited if it is a promise. */
async function direct(hook: AsyncSeriesWaterfallHook<[string | undefined, string]>, line: string): Promise<unknown> {
  return await callHook(hook, [undefined, line], true);
}

describe('callHook (the direct path for plain taps)', () => {
  it('gives what hook.promise() gives: stages, undefined keeping the value, a throwing tap reported and skipped', async () => {
    const { hook, reported } = waterfall();
    hook.tap({ name: 'Late', stage: 10 }, (reply) => `${reply}!`);
    hook.tap('Echo', (_reply, line) => line);
    hook.tap('Keep', () => undefined);
    hook.tap('Broken', () => {
      throw new Error('broke');
    });
    hook.tap({ name: 'First', stage: -10 }, () => 'ignored by Echo');
    const viaTapable = await hook.promise(undefined, 'abc');
    const viaDirect = await direct(hook, 'abc');
    expect(viaDirect).toBe('abc!');
    expect(viaDirect).toBe(viaTapable);
    expect(reported.map((e) => e.tap)).toEqual(['Broken', 'Broken']);
  });

  it('returns a plain value, not a promise, when every tap is a plain function', () => {
    const { hook } = waterfall();
    hook.tap('Upper', (reply, line) => (reply ?? line).toUpperCase());
    expect(callHook(hook, [undefined, 'abc'], true)).toBe('ABC');
  });

  it('awaits a tap that returns a promise and runs the later taps after it, in order', async () => {
    const { hook, reported } = waterfall();
    const order: string[] = [];
    hook.tap('Sync', (_reply, line) => {
      order.push('sync');
      return line;
    });
    hook.tap('Async', (async (reply: string) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push('async');
      return `${reply}+async`;
    }) as never);
    hook.tap('Rejects', (async () => {
      throw new Error('rejected');
    }) as never);
    hook.tap('After', (reply) => {
      order.push('after');
      return `${reply}+after`;
    });
    const result = callHook(hook, [undefined, 'x'], true);
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toBe('x+async+after');
    expect(order).toEqual(['sync', 'async', 'after']);
    expect(reported.map((e) => e.tap)).toEqual(['Rejects']);
  });

  it('leaves hooks with tapPromise/tapAsync taps or interceptors of their own to tapable', async () => {
    const { hook } = waterfall();
    hook.tap('Echo', (_reply, line) => line);
    hook.tapAsync('Newline', (reply, _line, callback) => callback(null, `${reply}\n`));
    expect(await direct(hook, 'a')).toBe('a\n');

    const intercepted = waterfall();
    const calls: string[] = [];
    intercepted.hook.intercept({ call: () => calls.push('call') });
    intercepted.hook.tap('Echo', (_reply, line) => line);
    expect(await direct(intercepted.hook, 'b')).toBe('b');
    expect(calls).toEqual(['call']);
  });

  it('runs series hooks too, resolving to undefined', async () => {
    const hook = new AsyncSeriesHook<[string]>(['line']);
    isolateTaps(hook as never, 'input', () => {});
    const seen: string[] = [];
    hook.tap('A', (line) => {
      seen.push(`a ${line}`);
    });
    hook.tap('B', (line) => {
      seen.push(`b ${line}`);
    });
    expect(callHook(hook, ['l'], false)).toBeUndefined();
    expect(seen).toEqual(['a l', 'b l']);
  });
});
