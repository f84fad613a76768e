import { describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import { Client, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TICK_INTERVAL_MS, resolveClientOptions } from '../src/index.js';

describe('client options', () => {
  it('fills in every default', () => {
    const options = resolveClientOptions();
    expect(options.host).toBe(DEFAULT_HOST);
    expect(options.port).toBe(DEFAULT_PORT);
    expect(options.acks).toBe(true);
    expect(options.tickIntervalMs).toBe(DEFAULT_TICK_INTERVAL_MS);
    expect(options.token).toBeUndefined();
    expect(options.onAppBusy).toBe('reject');
    expect(typeof options.reconnect).toBe('function');
  });

  it('accepts a policy function, backoff options or false for reconnect', () => {
    const policy = (attempt: number): number => attempt * 10;
    expect(resolveClientOptions({ reconnect: policy }).reconnect).toBe(policy);
    expect(resolveClientOptions({ reconnect: { initialDelayMs: 7, jitter: 0 } }).reconnect?.(1)).toBe(7);
    expect(resolveClientOptions({ reconnect: false }).reconnect).toBeUndefined();
  });

  it('throws IMI_CONFIG from the constructor for impossible values', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ port: 0 }, 'port'],
      [{ port: 70_000 }, 'port'],
      [{ tickIntervalMs: -1 }, 'tickIntervalMs'],
      [{ acks: 'yes' }, 'acks'],
      [{ onAppBusy: 'wait' }, 'onAppBusy'],
      [{ maxOutgoingBytes: 0 }, 'maxOutgoingBytes'],
      [{ maxReplyHoldMs: -5 }, 'maxReplyHoldMs'],
      [{ reconnect: 42 }, 'reconnect'],
    ];
    for (const [options, name] of bad) {
      let thrown: unknown;
      try {
        new Client(options as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, name).toBeInstanceOf(ImiError);
      expect((thrown as ImiError).code).toBe('IMI_CONFIG');
      expect((thrown as ImiError).message).toContain(name);
    }
  });
});
