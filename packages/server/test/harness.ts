// Test harness: real sockets on 127.0.0.1, port 0. Users are raw `net`
// sockets reading bytes; the app is a raw socket speaking the wire protocol
// by hand (NDJSON, or back-to-back JSON like the original Perl client).
import net from 'node:net';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { afterEach } from 'vitest';
import { Intermediary, type IntermediaryOptions, type ListeningPorts, type Session } from '@imi/server';

/**
 * Starts an intermediary on free ports with quiet, test-friendly defaults.
 * `RawUser.close()` is a half-close, and most test apps never answer: a
 * short `halfCloseGraceMs` keeps a user who leaves from waiting the real
 * default for an answer (half-close.test.ts tests that wait).
 */
export async function startIntermediary(options: IntermediaryOptions = {}): Promise<{ imi: Intermediary; ports: ListeningPorts }> {
  const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', legacyHelloWaitMs: 50, halfCloseGraceMs: 200, ...options });
  const ports = await imi.listen();
  return { imi, ports };
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what: string | (() => string) = 'condition'): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Bytes the intermediary holds for a user's unfinished line. The sessions it
 * hands out have an `inputBufferedBytes` getter that the {@link Session}
 * interface does not list; tests use it to know that a byte has been read
 * before sending the next one.
 */
export function pendingInputBytes(imi: Intermediary, id: string): number {
  const session = imi.session(id) as (Session & { readonly inputBufferedBytes?: number }) | undefined;
  if (session?.inputBufferedBytes === undefined) throw new Error(`no session ${id} with inputBufferedBytes`);
  return session.inputBufferedBytes;
}

/** Resolves after `ms` (used to split writes into separate TCP segments, never to assert speed). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How many times `needle` occurs in `haystack`. */
export function count(haystack: string, needle: string): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) n++;
  return n;
}

/** A user on a raw TCP socket. */
export class RawUser {
  readonly socket: net.Socket;
  /** Everything received, decoded as a UTF-8 stream (a character split across chunks is joined). */
  received = '';
  /** Everything received, as bytes. */
  private readonly chunks: Buffer[] = [];
  closed = false;
  private readonly decoder = new StringDecoder('utf8');

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += this.decoder.write(chunk);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawUser> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawUser(socket);
  }

  /** Every byte received so far. */
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Sends a line ended by CRLF (what telnet sends). */
  send(line: string): void {
    this.socket.write(line + '\r\n');
  }

  /** Writes text or bytes as is. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the received text contains `text`. */
  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.received.includes(text), timeoutMs, () => `user to receive ${JSON.stringify(text.length > 80 ? text.slice(0, 40) + '…' + text.slice(-40) : text)} (got ${this.received.length} chars, ending ${JSON.stringify(this.received.slice(-200))})`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'user socket to close');
  }

  close(): void {
    this.socket.end();
  }
}

/** A parsed frame from the intermediary. */
export type Frame = { param: string; data: Record<string, unknown>; txn_id: string; seq?: number; redelivered?: boolean };

const arrivals = new WeakMap<Frame, number>();
let arrivalCounter = 0;

/**
 * When a frame arrived, as a number growing across every {@link RawApp} of
 * the test process (to compare arrival order on two app sockets).
 */
export function arrivalOf(frame: Frame): number {
  const at = arrivals.get(frame);
  if (at === undefined) throw new Error('not a received frame');
  return at;
}

/** How a {@link RawApp} behaves. */
export interface RawAppOptions {
  /** Sent first, as `{"param":"hello","data":{"protocol":1,...hello}}`. */
  hello?: Record<string, unknown>;
  /** Answer `ping` with `pong` (default true). */
  answerPings?: boolean;
  /** Called for each frame as it arrives; what it returns (if anything) is sent back. */
  respond?: (frame: Frame) => unknown;
  /** Written after each message the app sends: `"\n"` (default) or `""` (back to back, the Perl style). */
  separator?: string;
}

/** An app on a raw socket: writes JSON by hand, parses every frame it gets. */
export class RawApp {
  readonly socket: net.Socket;
  readonly frames: Frame[] = [];
  /** Every chunk as it arrived (to check what travelled in one write). */
  readonly chunks: string[] = [];
  /** Lines that were not one JSON object (the intermediary must never send any). */
  readonly badLines: string[] = [];
  closed = false;
  private buffer = '';
  private answerPings: boolean;
  private readonly separator: string;
  private readonly respond: ((frame: Frame) => unknown) | undefined;

  private constructor(socket: net.Socket, options: RawAppOptions) {
    this.socket = socket;
    this.answerPings = options.answerPings ?? true;
    this.separator = options.separator ?? '\n';
    this.respond = options.respond;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.chunks.push(text);
      this.buffer += text;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        let frame: Frame;
        try {
          frame = JSON.parse(line) as Frame;
        } catch {
          this.badLines.push(line);
          continue;
        }
        if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
          this.badLines.push(line);
          continue;
        }
        this.frames.push(frame);
        arrivals.set(frame, ++arrivalCounter);
        if (frame.param === 'ping' && this.answerPings) this.send({ param: 'pong', data: { ts: frame.data['ts'] } });
        if (this.respond) {
          const answer = this.respond(frame);
          if (answer !== undefined) this.send(answer);
        }
      }
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  /** Connects; sends `hello` first when given (a record, or options with `hello`). */
  static async connect(port: number, helloOrOptions?: Record<string, unknown> | RawAppOptions, maybeOptions: RawAppOptions = {}): Promise<RawApp> {
    const options: RawAppOptions = isOptions(helloOrOptions) ? helloOrOptions : { ...maybeOptions, ...(helloOrOptions === undefined ? {} : { hello: helloOrOptions }) };
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const app = new RawApp(socket, options);
    if (options.hello !== undefined) app.send({ param: 'hello', data: { protocol: 1, ...options.hello } });
    return app;
  }

  /** Stops answering pings (a hung app). */
  ignorePings(): void {
    this.answerPings = false;
  }

  send(message: unknown): void {
    this.socket.write(JSON.stringify(message) + this.separator);
  }

  sendRaw(text: string | Buffer): void {
    this.socket.write(text);
  }

  output(id: string, value: string, extra: Record<string, unknown> = {}): void {
    this.send({ param: 'output', data: { id, value }, ...extra });
  }

  of(param: string): Frame[] {
    return this.frames.filter((frame) => frame.param === param);
  }

  /** The `error` frames received (barrier replies left out), optionally only those with `code`. */
  errors(code?: string): Frame[] {
    return this.frames.filter(
      (frame) => frame.param === 'error' && !isBarrierReply(frame) && (code === undefined || frame.data['code'] === code),
    );
  }

  /**
   * A round trip through the intermediary: sends a message it must reject
   * (an unknown param with a known `txn_id`) and waits for that rejection.
   * The intermediary handles an app's frames in order and writes to the app
   * in order, so once it is back, everything sent before has been processed
   * and every frame written in answer has arrived. Barrier replies are left
   * out of {@link errors}, not out of `stats().errors.IMI_UNKNOWN_PARAM`.
   */
  async barrier(timeoutMs = 5000): Promise<void> {
    const txnId = `${BARRIER_PREFIX}${++barrierCounter}`;
    this.send({ param: BARRIER_PARAM, data: {}, txn_id: txnId });
    await this.waitForFrame((frame) => frame.param === 'error' && frame.data['txn_id'] === txnId, timeoutMs, `barrier ${txnId}`);
  }

  /** The frames received other than `ping` (heartbeats come on their own schedule) and barrier replies. */
  get traffic(): Frame[] {
    return this.frames.filter((frame) => frame.param !== 'ping' && !isBarrierReply(frame));
  }

  async waitForFrame(predicate: (frame: Frame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<Frame> {
    let found: Frame | undefined;
    await waitFor(() => (found = this.frames.find(predicate)) !== undefined, timeoutMs, () => `${what}, got ${JSON.stringify(this.frames.map((f) => f.param))}`);
    return found!;
  }

  async waitForParam(param: string, count = 1, timeoutMs = 5000): Promise<Frame[]> {
    await waitFor(() => this.of(param).length >= count, timeoutMs, () => `${count} ${param} frame(s), got ${JSON.stringify(this.frames.map((f) => f.param))}`);
    return this.of(param);
  }

  /** Waits for an `error` frame with `code`. */
  async waitForError(code: string, timeoutMs = 5000): Promise<Frame> {
    return this.waitForFrame((frame) => frame.param === 'error' && frame.data['code'] === code, timeoutMs, `error ${code}`);
  }

  /** Waits for `synced`. */
  async synced(timeoutMs = 5000): Promise<Frame> {
    return this.waitForFrame((frame) => frame.param === 'synced', timeoutMs, 'synced');
  }

  /** Waits for the `connect` of the next new user (not a resync) and returns its id. */
  async nextUserId(known = 0, timeoutMs = 5000): Promise<string> {
    const connects = () => this.of('connect').filter((frame) => frame.data['resumed'] === false);
    await waitFor(() => connects().length > known, timeoutMs, 'a connect');
    return connects()[known]!.data['id'] as string;
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'app socket to close');
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const BARRIER_PARAM = 'imi-test-barrier';
const BARRIER_PREFIX = 'barrier-';
let barrierCounter = 0;

function isBarrierReply(frame: Frame): boolean {
  const txnId = frame.data['txn_id'];
  return frame.data['code'] === 'IMI_UNKNOWN_PARAM' && typeof txnId === 'string' && txnId.startsWith(BARRIER_PREFIX);
}

function isOptions(value: unknown): value is RawAppOptions {
  if (typeof value !== 'object' || value === null) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => ['hello', 'answerPings', 'respond', 'separator'].includes(key));
}

/**
 * The original Perl client (IO::Multiplex::Intermediary::Client), by hand:
 * no hello, JSON written back to back with no newline, and an answer to
 * every event: `null` to `connect` and unknown params, an echo `output` to
 * `input`, and `{"param":"disconnect","data":{"success":1}}` to `disconnect`.
 */
export function perlAnswer(frame: Frame): unknown {
  switch (frame.param) {
    case 'connect':
      return { param: 'null' };
    case 'input':
      return { param: 'output', data: { value: frame.data['value'], id: frame.data['id'] }, txn_id: randomUUID(), dep_txns: [] };
    case 'disconnect':
      return { param: 'disconnect', data: { success: 1 }, txn_id: randomUUID() };
    default:
      return { param: 'null' };
  }
}

/**
 * Per-test bookkeeping: everything started through it is torn down after
 * each test (sockets destroyed first, then the intermediary closed).
 */
export function testScope(): {
  start(options?: IntermediaryOptions): Promise<{ imi: Intermediary; ports: ListeningPorts }>;
  user(port: number): Promise<RawUser>;
  app(port: number, helloOrOptions?: Record<string, unknown> | RawAppOptions): Promise<RawApp>;
} {
  const intermediaries: Intermediary[] = [];
  const sockets: Array<RawUser | RawApp> = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.socket.destroy();
    await Promise.all(intermediaries.splice(0).map((imi) => imi.close()));
  });
  return {
    async start(options = {}) {
      const started = await startIntermediary(options);
      intermediaries.push(started.imi);
      return started;
    },
    async user(port) {
      const u = await RawUser.connect(port);
      sockets.push(u);
      return u;
    },
    async app(port, helloOrOptions) {
      const a = await RawApp.connect(port, helloOrOptions);
      sockets.push(a);
      return a;
    },
  };
}

/**
 * Starts an intermediary with an app (hello sent, resync done) and one user
 * already announced: the usual starting point.
 */
export async function withAppAndUser(
  scope: ReturnType<typeof testScope>,
  options: IntermediaryOptions = {},
  hello: Record<string, unknown> = { name: 'test' },
): Promise<{ imi: Intermediary; ports: ListeningPorts; app: RawApp; user: RawUser; id: string }> {
  const { imi, ports } = await scope.start(options);
  const app = await scope.app(ports.clientPort, hello);
  await app.synced();
  const user = await scope.user(ports.externalPort);
  const id = await app.nextUserId();
  return { imi, ports, app, user, id };
}
