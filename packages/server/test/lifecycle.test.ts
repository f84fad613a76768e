// Options, listen() and close(): the intermediary's own life.
import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ImiError } from '@imi/core';
import {
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_OPTIONS,
  DEFAULT_SHUTDOWN_NOTICE,
  Intermediary,
  resolveOptions,
  type IntermediaryOptions,
  type IntermediaryPlugin,
} from '@imi/server';
import { sleep, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();

/** Rejects if `promise` has not settled within `ms`: for "does not hang" checks, never for speed. */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

function configErrorOf(options: IntermediaryOptions): ImiError {
  try {
    new Intermediary(options);
  } catch (error) {
    return error as ImiError;
  }
  throw new Error(`no error for ${JSON.stringify(options)}`);
}

describe('options', () => {
  it.each<[IntermediaryOptions, RegExp]>([
    [{ externalPort: -1 }, /externalPort/],
    [{ externalPort: 65536 }, /externalPort/],
    [{ clientPort: 1.5 }, /clientPort/],
    [{ clientPort: Number.NaN }, /clientPort/],
    [{ maxLineBytes: 0 }, /maxLineBytes/],
    [{ maxLineBytes: -10 }, /maxLineBytes/],
    [{ maxFrameBytes: Number.POSITIVE_INFINITY }, /maxFrameBytes/],
    [{ helloTimeoutMs: 0 }, /helloTimeoutMs/],
    [{ maxQueuedLinesPerSession: 0 }, /maxQueuedLinesPerSession/],
    [{ closeTimeoutMs: Number.NaN }, /closeTimeoutMs/],
    [{ legacyHelloWaitMs: -1 }, /legacyHelloWaitMs/],
    [{ heartbeatIntervalMs: -5 }, /heartbeatIntervalMs/],
    [{ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 1000 }, /heartbeatTimeoutMs.*heartbeatIntervalMs/],
    [{ appPolicy: 'kill' as never }, /appPolicy/],
    [{ whileAppDown: 'ignore' as never }, /whileAppDown/],
    [{ token: '' }, /token/],
    [{ idleTimeoutMs: 0 }, /idleTimeoutMs/],
    [{ maxDepTxns: '3' as never }, /maxDepTxns/],
  ])('rejects %j with IMI_CONFIG naming the option', (options, pattern) => {
    const error = configErrorOf(options);
    expect(error).toBeInstanceOf(ImiError);
    expect(error.code).toBe('IMI_CONFIG');
    expect(error.message).toMatch(pattern);
  });

  it('fills in every default, and an undefined option means its default', () => {
    const imi = new Intermediary({ maxLineBytes: undefined, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 1 });
    expect(imi.options.maxLineBytes).toBe(DEFAULT_MAX_LINE_BYTES);
    expect(imi.options.heartbeatIntervalMs).toBe(0); // 0 switches heartbeats off, so any timeout is fine
    expect(Object.isFrozen(imi.options)).toBe(true);
    const resolved = resolveOptions({});
    expect(resolved).toEqual(DEFAULT_OPTIONS);
    expect(resolved.clientHost).toBe('127.0.0.1'); // the app port is loopback-only by default
    expect(resolved.appPolicy).toBe('refuse');
    expect(resolved.whileAppDown).toBe('queue');
  });

  it('applies plugins in the constructor, in order', () => {
    const order: string[] = [];
    const make = (name: string): IntermediaryPlugin => ({ apply: () => void order.push(name) });
    new Intermediary({ plugins: [make('a'), make('b')] });
    expect(order).toEqual(['a', 'b']);
  });
});

describe('listen()', () => {
  it('resolves with the real ports and emits "listening"', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1' });
    const heard: unknown[] = [];
    imi.on('listening', (ports) => heard.push(ports));
    try {
      const ports = await imi.listen();
      expect(ports.externalPort).toBeGreaterThan(0);
      expect(ports.clientPort).toBeGreaterThan(0);
      expect(heard).toEqual([ports]);
    } finally {
      await imi.close();
    }
  });

  it('rejects when a port is taken, and close() still works', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const taken = (blocker.address() as net.AddressInfo).port;
    const imi = new Intermediary({ externalPort: 0, clientPort: taken, host: '127.0.0.1' });
    try {
      await expect(imi.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await imi.close();
      blocker.close();
    }
  });

  it('refuses to listen again after close(): IMI_CLOSED', async () => {
    const { imi } = await scope.start();
    await imi.close();
    await expect(imi.listen()).rejects.toMatchObject({ code: 'IMI_CLOSED' });
  });
});

describe('close()', () => {
  it('tells the app (shutdown) and every user (the notice), closes everything, emits "close", and is idempotent', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope);
    const second = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    let closeEvents = 0;
    imi.on('close', () => closeEvents++);
    const first = imi.close('maintenance');
    expect(imi.close('other')).toBe(first);
    await first;
    const [shutdown] = await app.waitForParam('shutdown');
    expect(shutdown!.data['reason']).toBe('maintenance');
    await app.waitClosed();
    for (const u of [user, second]) {
      await u.waitClosed();
      expect(u.received).toBe(DEFAULT_SHUTDOWN_NOTICE);
    }
    expect(closeEvents).toBe(1);
    expect(app.of('disconnect')).toEqual([]); // the app was told shutdown, not each user
    const late = net.connect({ port: ports.externalPort, host: '127.0.0.1' });
    const [error] = (await once(late, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });

  it('shutdownNotice: false closes users silently', async () => {
    const { imi, user } = await withAppAndUser(scope, { shutdownNotice: false });
    await imi.close();
    await user.waitClosed();
    expect(user.received).toBe('');
  });

  it('destroys what has not closed after closeTimeoutMs (a user who never closes their side)', async () => {
    const { imi, ports } = await scope.start({ closeTimeoutMs: 200, appDownNotice: false });
    const stubborn = net.connect({ port: ports.externalPort, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    stubborn.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    stubborn.on('error', () => {});
    await waitFor(() => imi.stats().sessions === 1);
    try {
      await settlesWithin(imi.close(), 5000, 'close()');
      expect(received).toBe(DEFAULT_SHUTDOWN_NOTICE);
      expect(imi.stats().sessions).toBe(0);
    } finally {
      stubborn.destroy();
    }
  });

  it('is not held up by a user a connect tap refused after they typed something', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { imi, ports } = await scope.start({
      closeTimeoutMs: 60_000,
      plugins: [{ apply: (i) => i.hooks.connect.tapPromise('BanAll', async () => (await gate, { message: 'no\r\n' })) }],
    });
    const user = await scope.user(ports.externalPort);
    user.send('let me in'); // waits, unread, while the tap runs
    await sleep(50);
    release();
    await user.waitClosed();
    expect(user.received).toBe('no\r\n');
    await settlesWithin(imi.close(), 5000, 'close()');
  });

  it('closes a user whose connect tap is still running, who is then never let in', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { imi, ports } = await scope.start({
      closeTimeoutMs: 60_000,
      appDownNotice: false,
      plugins: [{ apply: (i) => i.hooks.connect.tapPromise('Slow', () => gate) }],
    });
    let opened = 0;
    imi.on('sessionOpen', () => opened++);
    const user = await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessionsOpened === 1);
    await settlesWithin(imi.close(), 5000, 'close()');
    await user.waitClosed();
    expect(user.received).toBe(DEFAULT_SHUTDOWN_NOTICE);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(opened).toBe(0);
    expect(imi.stats().sessions).toBe(0);
  });

  it('closes an app that is still in its handshake', async () => {
    const { imi, ports } = await scope.start({ token: 't', helloTimeoutMs: 60_000 });
    const app = await scope.app(ports.clientPort);
    await sleep(50); // let the intermediary accept it (nothing on the wire tells)
    expect(app.closed).toBe(false);
    await settlesWithin(imi.close(), 5000, 'close()');
    await app.waitClosed();
    expect(app.of('shutdown')).toEqual([]); // never accepted, so never told
  });
});
