// Test harness: real sockets on 127.0.0.1, port 0. Users are raw `net`
// sockets reading lines; the app is a raw socket speaking NDJSON.
import net from 'node:net';
import { once } from 'node:events';
import { Intermediary, type IntermediaryOptions, type ListeningPorts } from '@imi/server';

/** Starts an intermediary on free ports with quiet, test-friendly defaults. */
export async function startIntermediary(options: IntermediaryOptions = {}): Promise<{ imi: Intermediary; ports: ListeningPorts }> {
  const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', legacyHelloWaitMs: 50, ...options });
  const ports = await imi.listen();
  return { imi, ports };
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A user on a raw TCP socket. */
export class RawUser {
  readonly socket: net.Socket;
  received = '';
  closed = false;

  private constructor(socket: net.Socket) {
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

  static async connect(port: number): Promise<RawUser> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new RawUser(socket);
  }

  send(line: string): void {
    this.socket.write(line + '\r\n');
  }

  /** Waits until the received text contains `text`. */
  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.received.includes(text), timeoutMs, `user to receive ${JSON.stringify(text)} (got ${JSON.stringify(this.received.slice(-200))})`);
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

/** An app on a raw socket: writes NDJSON, parses every frame it gets. */
export class RawApp {
  readonly socket: net.Socket;
  readonly frames: Frame[] = [];
  /** Every chunk as it arrived (to check what travelled in one write). */
  readonly chunks: string[] = [];
  closed = false;
  private buffer = '';
  private answerPings = true;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.chunks.push(text);
      this.buffer += text;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        if (line.trim() === '') continue;
        const frame = JSON.parse(line) as Frame;
        this.frames.push(frame);
        if (frame.param === 'ping' && this.answerPings) this.send({ param: 'pong', data: { ts: frame.data['ts'] } });
      }
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  /** Connects; sends `hello` first when given. */
  static async connect(port: number, hello?: Record<string, unknown>): Promise<RawApp> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    const app = new RawApp(socket);
    if (hello !== undefined) app.send({ param: 'hello', data: { protocol: 1, ...hello } });
    return app;
  }

  /** Stops answering pings (a hung app). */
  ignorePings(): void {
    this.answerPings = false;
  }

  send(message: unknown): void {
    this.socket.write(JSON.stringify(message) + '\n');
  }

  sendRaw(text: string): void {
    this.socket.write(text);
  }

  output(id: string, value: string, extra: Record<string, unknown> = {}): void {
    this.send({ param: 'output', data: { id, value }, ...extra });
  }

  of(param: string): Frame[] {
    return this.frames.filter((frame) => frame.param === param);
  }

  async waitForFrame(predicate: (frame: Frame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<Frame> {
    let found: Frame | undefined;
    await waitFor(() => (found = this.frames.find(predicate)) !== undefined, timeoutMs, what);
    return found!;
  }

  async waitForParam(param: string, count = 1, timeoutMs = 5000): Promise<Frame[]> {
    await waitFor(() => this.of(param).length >= count, timeoutMs, `${count} ${param} frame(s), got ${JSON.stringify(this.frames.map((f) => f.param))}`);
    return this.of(param);
  }

  /** Waits for `synced` and returns the connects of the resync. */
  async synced(timeoutMs = 5000): Promise<Frame> {
    return this.waitForFrame((frame) => frame.param === 'synced', timeoutMs, 'synced');
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
