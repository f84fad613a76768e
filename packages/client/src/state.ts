/**
 * What the client's parts share: the options, where the client is, the
 * current link, the live sessions, and how to report. The client owns one
 * {@link ClientState}; each part gets it instead of the client, so no part
 * depends on the class that composes them.
 *
 * @module
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'eventemitter3';
import type { ImiError } from '@imi/core';
import type { ClientEvents } from './events.js';
import type { ResolvedClientOptions } from './options.js';
import type { Session } from './session.js';
import type { Batch, Link } from './types.js';

/**
 * Where the client is:
 * - `idle`: constructed, `connect()` not called yet;
 * - `connecting`: opening a TCP connection to the intermediary;
 * - `resyncing`: connected, hearing of the live users;
 * - `up`: resynced, messages flow;
 * - `waiting`: the link is down, the next attempt is scheduled;
 * - `closing`: `close()` lets running handlers finish;
 * - `closed`: done for good.
 */
export type ClientStatus = 'idle' | 'connecting' | 'resyncing' | 'up' | 'waiting' | 'closing' | 'closed';

/** A promise with its settle functions, settled at most once. */
export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: ImiError) => void;
  settled: boolean;
}

/** The state the client's parts share, and the two ways they talk to the app. */
export interface ClientState {
  readonly options: ResolvedClientOptions;
  /** The client itself, seen only as the emitter of {@link ClientEvents}. */
  readonly emitter: EventEmitter<ClientEvents>;
  status: ClientStatus;
  /** The connection in use (connecting, resyncing or up), if any. */
  link: Link | undefined;
  /** The live users, as last told by the intermediary. */
  readonly sessions: Map<string, Session>;
  /** Sessions a resync found gone, until their `disconnect` event has run. */
  readonly leaving: Map<string, Session>;
  /** The batch of the event whose handlers are running, across their `await`s. */
  readonly batchStore: AsyncLocalStorage<Batch>;
  /** The first `connect()` call's promise, resolved by the first resync. */
  connectDeferred: Deferred | undefined;
  /** Reports through `error`; never throws. */
  report(error: ImiError): void;
  /** Emits an event whose listeners are not awaited, reporting their failures. */
  emitSafely(event: Exclude<keyof ClientEvents, 'error'>, args: unknown[]): void;
}

/** Makes a {@link Deferred}. */
export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: ImiError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const result: Deferred = {
    promise,
    resolve: () => {
      if (result.settled) return;
      result.settled = true;
      resolve();
    },
    reject: (error) => {
      if (result.settled) return;
      result.settled = true;
      reject(error);
    },
    settled: false,
  };
  return result;
}

/** Whether a value is a promise (or anything with a `then`). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** An error's message, or the value as a string. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
