import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'eventemitter3';
import { invokeListeners } from '../src/events.js';

describe('invokeListeners', () => {
  it('calls every listener in order, with its context, and returns what they return', () => {
    const emitter = new EventEmitter();
    const context = { name: 'ctx' };
    const calls: string[] = [];
    emitter.on('x', (a: number) => {
      calls.push(`first ${a}`);
      return 1;
    });
    emitter.on(
      'x',
      function (this: { name: string }, a: number) {
        calls.push(`second ${a} ${this.name}`);
        return Promise.resolve(2);
      },
      context,
    );
    const { results, errors } = invokeListeners(emitter, 'x', [7]);
    expect(calls).toEqual(['first 7', 'second 7 ctx']);
    expect(results[0]).toBe(1);
    expect(results[1]).toBeInstanceOf(Promise);
    expect(errors).toEqual([]);
  });

  it('keeps going after a throwing listener and hands back the error', () => {
    const emitter = new EventEmitter();
    const calls: string[] = [];
    const boom = new Error('boom');
    emitter.on('x', () => {
      throw boom;
    });
    emitter.on('x', () => calls.push('after'));
    const { errors } = invokeListeners(emitter, 'x', []);
    expect(errors).toEqual([boom]);
    expect(calls).toEqual(['after']);
  });

  it('honours once() and removeListener() like emit()', () => {
    const emitter = new EventEmitter();
    const calls: string[] = [];
    const kept = (): void => {
      calls.push('on');
    };
    const removed = (): void => {
      calls.push('removed');
    };
    emitter.once('x', () => calls.push('once'));
    emitter.on('x', kept);
    emitter.on('x', removed);
    emitter.off('x', removed);
    invokeListeners(emitter, 'x', []);
    invokeListeners(emitter, 'x', []);
    expect(calls).toEqual(['once', 'on', 'on']);
    expect(emitter.listenerCount('x')).toBe(1);
  });

  it('returns nothing for an event without listeners', () => {
    expect(invokeListeners(new EventEmitter(), 'nothing', [])).toEqual({ results: [], errors: [] });
  });
});
