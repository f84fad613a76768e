/**
 * Test helpers: real intermediaries on port 0, users as raw TCP sockets, and
 * a recording TCP proxy between the app and the intermediary so tests can
 * read the raw frames each side wrote (and cut the link at will).
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { FrameDecoder } from '@imi/core';
import { Intermediary } from '@imi/server';
import type { ImiError } from '@imi/core';
import { Client, type ClientOptions } from '../src/index.js';

/** Options of the intermediary as the tests use them. */
export type ImiOptions = ConstructorParameters<typeof Intermediary>[0];

/** A running intermediary with its ports. */
export interface RunningImi {
  imi: Intermediary;
  externalPort: number;
  clientPort: number;
}

const cleanups: (() => Promise<void> | void)[] = [];

/** Registers a cleanup run by {@link runCleanups} (in reverse order). */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** Runs and clears every registered cleanup; call it in `afterEach`. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch {
      // best effort: a failed cleanup must not hide the test's own result
    }
  }
}

/** Starts a real intermediary on free ports of 127.0.0.1 (closed by {@link runCleanups}). */
export async function startImi(options: ImiOptions = {}): Promise<RunningImi> {
  // The intermediary logs nothing unless given a logger.
  const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', ...options });
  const ports = await imi.listen();
  onCleanup(() => imi.close());
  return { imi, ...ports };
}

/**
 * Polls `predicate` until it is true. Waiting is not what is tested: the
 * deadline only turns a hang into a readable failure.
 */
export async function waitFor(predicate: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with the arguments of the next `event` of an emitter. */
export function nextEvent<T extends unknown[]>(emitter: { once(event: string, fn: (...args: never[]) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, ((...args: T) => resolve(args)) as never));
}

/** A user: a raw TCP socket to the intermediary's user port, with what it received so far. */
export class User {
  readonly socket: Socket;
  received = '';
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.received += text;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  /** Connects a user (closed by {@link runCleanups}). */
  static async connect(port: number): Promise<User> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const user = new User(socket);
    onCleanup(() => {
      socket.destroy();
    });
    return user;
  }

  /** Sends one line (CRLF added). */
  line(text: string): void {
    this.socket.write(text + '\r\n');
  }

  /** Waits until what the user received contains `text`. */
  async waitFor(text: string): Promise<void> {
    await waitFor(() => this.received.includes(text), `user to receive ${JSON.stringify(text)} (got ${JSON.stringify(this.received)})`);
  }

  /** Closes the connection. */
  end(): void {
    this.socket.end();
  }
}

/** A decoded frame as seen on the wire. */
export type Frame = Record<string, unknown> & { param?: string; data?: Record<string, unknown>; ack?: number; seq?: number };

/** Decodes a stream of frames (NDJSON, back to back, batches) into plain objects. */
export class FrameLog {
  readonly frames: Frame[] = [];
  /** Raw chunks as they arrived, for write-boundary checks. */
  readonly chunks: string[] = [];
  private readonly decoder = new FrameDecoder<Frame>(
    { validate: (value) => value as Frame },
    { onMessage: (frame) => this.frames.push(frame), onError: () => {} },
  );

  write(chunk: Buffer): void {
    this.chunks.push(chunk.toString('utf8'));
    this.decoder.write(chunk);
  }

  /** Frames with this `param`. */
  of(param: string): Frame[] {
    return this.frames.filter((frame) => frame.param === param);
  }
}

/**
 * A TCP proxy between the app and the intermediary's app port that records
 * both directions and can cut the link or refuse new connections, to play
 * a network outage without restarting the intermediary.
 */
export class LinkProxy {
  /** What the app wrote (app → intermediary). */
  appFrames = new FrameLog();
  /** What the intermediary wrote (intermediary → app). */
  imiFrames = new FrameLog();
  /** What the app wrote while {@link blackhole} was on: never forwarded. */
  swallowed = new FrameLog();
  /** While true, what the app writes is dropped instead of forwarded (a link dying silently). */
  blackhole = false;
  connections = 0;
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private portNumber = 0;

  private constructor(private readonly targetPort: number) {}

  /** Starts a proxy to `targetPort` on a free port (closed by {@link runCleanups}). */
  static async start(targetPort: number): Promise<LinkProxy> {
    const proxy = new LinkProxy(targetPort);
    await proxy.listen(0);
    onCleanup(() => proxy.stop());
    return proxy;
  }

  /** The port the app should connect to. */
  get port(): number {
    return this.portNumber;
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer((app) => {
      this.connections++;
      const imi = net.connect(this.targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [app, imi];
      this.pairs.add(pair);
      app.setNoDelay(true);
      imi.setNoDelay(true);
      app.on('data', (chunk: Buffer) => {
        if (this.blackhole) {
          this.swallowed.write(chunk);
          return;
        }
        this.appFrames.write(chunk);
        imi.write(chunk);
      });
      imi.on('data', (chunk: Buffer) => {
        this.imiFrames.write(chunk);
        app.write(chunk);
      });
      const close = (): void => {
        this.pairs.delete(pair);
        app.destroy();
        imi.destroy();
      };
      app.on('close', close);
      imi.on('close', close);
      app.on('error', () => {});
      imi.on('error', () => {});
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.portNumber = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  /** Destroys every proxied connection (both sides see the link drop). */
  cut(): void {
    for (const [app, imi] of this.pairs) {
      app.destroy();
      imi.destroy();
    }
    this.pairs.clear();
  }

  /** Stops accepting app connections (attempts are refused), keeping the port for {@link resume}. */
  async refuse(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    // close() stops listening at once; its callback would wait for the proxied connections too.
    server?.close();
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Accepts connections again on the same port. */
  async resume(): Promise<void> {
    await this.listen(this.portNumber);
  }

  /** Cuts everything and stops listening. */
  async stop(): Promise<void> {
    this.cut();
    await this.refuse();
  }
}

/** A client with quick reconnects (10 ms, then up to `maxDelayMs`) and no ticks, closed after the test; errors are collected, not printed. */
export function makeClient(options: ClientOptions, maxDelayMs = 100): { app: Client; errors: ImiError[] } {
  const app = new Client({ tickIntervalMs: 0, reconnect: { initialDelayMs: 10, maxDelayMs }, ...options });
  const errors: ImiError[] = [];
  app.on('error', (error) => errors.push(error));
  onCleanup(() => app.close());
  return { app, errors };
}
