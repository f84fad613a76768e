// A WebSocket user on the `ws` package that speaks imi.v1 like the browser
// page does: keeps the resume token it is given, counts output messages,
// and — when its connection drops — reconnects offering `imi.resume`,
// presents the token and how many messages it has, then resends the lines
// the server says it did not get and the lines typed while away. Also a
// plain WebSocket user (no subprotocol) for the upgrade tests.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { User } from './upgrade-harness.js';

const everyone = new Set<{ ws: WebSocket; halt(): void }>();

/** Stops every user made here (no more reconnects) and drops their connections: call after each test. */
export function dropWsUsers(): void {
  for (const user of everyone) {
    user.halt();
    user.ws.terminate();
  }
  everyone.clear();
}

/** A control message as received. */
export type Control = Record<string, unknown> & { type: string };

/** What a {@link ResumingWsUser} is made with. */
export interface ResumingOptions extends WebSocket.ClientOptions {
  /** Reconnect and resume by itself when the connection drops (default true). */
  autoResume?: boolean;
  /** Delay before a reconnect, ms (default 50). */
  reconnectDelayMs?: number;
}

/** A resuming imi.v1 user. */
export class ResumingWsUser extends User {
  ws!: WebSocket;
  token: string | undefined;
  /** Every token given, in order. */
  readonly tokens: string[] = [];
  /** Output messages received in the session. */
  got = 0;
  /** Every output message, in order. */
  readonly messages: string[] = [];
  /** Control messages received. */
  readonly controls: Control[] = [];
  /** Close codes of every connection that ended. */
  readonly closes: Array<{ code: number; reason: string }> = [];
  /** Resumes accepted. */
  resumes = 0;
  /** Whether lines may go on the current connection. */
  ready = false;
  private unconfirmed: string[] = [];
  private confirmedBase = 0;
  private unsent: string[] = [];
  private stopped = false;

  private constructor(
    name: string,
    readonly url: string,
    private readonly options: ResumingOptions,
  ) {
    super(name);
  }

  /** Connects a new session and waits for its token. */
  static async connect(name: string, url: string, options: ResumingOptions = {}): Promise<ResumingWsUser> {
    const user = new ResumingWsUser(name, url, options);
    everyone.add(user);
    user.open(false);
    await once(user.ws, 'open');
    const deadline = Date.now() + 5000;
    while (user.token === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    if (user.token === undefined) throw new Error(`${name}: no session token`);
    return user;
  }

  get text(): string {
    return this.messages.join('');
  }

  /** Cuts the TCP connection under the WebSocket (no close frame): a network drop. */
  cut(): void {
    (this.ws as unknown as { _socket: Socket })._socket.destroy();
  }

  /** Types a line that never leaves (the socket is corked, then cut): it must be resent after the resume. */
  typeIntoTheVoid(line: string): void {
    const socket = (this.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    this.type(line);
    socket.destroy();
  }

  /** Stops reconnecting and closes normally (the session ends). */
  leave(): void {
    this.stopped = true;
    this.ws.close(1000);
  }

  /** No more typing, no more reconnects. */
  halt(): void {
    this.stop();
    this.stopped = true;
  }

  /** Sends one control message as the page does (binary JSON). */
  sendControl(message: object): void {
    this.ws.send(Buffer.from(JSON.stringify(message)));
  }

  /** Opens a connection: a new session, or a resume of the current one (with `received`, default what it has). */
  open(resume: boolean, received = this.got): WebSocket {
    const ws = new WebSocket(this.url, resume ? ['imi.v1', 'imi.resume'] : ['imi.v1'], this.options);
    this.ws = ws;
    this.ready = false;
    ws.on('open', () => {
      if (resume) this.sendControl({ type: 'resume', token: this.token, received });
      else this.becomeReady();
    });
    ws.on('message', (data: WebSocket.RawData, binary: boolean) => {
      if (ws !== this.ws) return;
      if (!binary) {
        this.got++;
        this.messages.push(String(data));
        return;
      }
      const message = JSON.parse(String(data)) as Control;
      this.controls.push(message);
      if (message.type !== 'session') return;
      this.token = message['token'] as string;
      this.tokens.push(this.token);
      if (message['resumed'] !== true) return;
      this.resumes++;
      const done = (message['received'] as number) - this.confirmedBase;
      const again = this.unconfirmed.slice(Math.max(0, done));
      this.confirmedBase = message['received'] as number;
      this.unconfirmed = [];
      this.unsent = [...again, ...this.unsent];
      this.becomeReady();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closes.push({ code, reason: String(reason) });
      if (ws !== this.ws) return;
      this.ready = false;
      if (this.stopped || this.options.autoResume === false || code === 4001 || code === 4002 || code === 4003) {
        this.closed = true;
        return;
      }
      setTimeout(() => this.open(true), this.options.reconnectDelayMs ?? 50);
    });
    ws.on('error', () => {});
    return ws;
  }

  protected sendLine(line: string): void {
    if (!this.ready) {
      this.unsent.push(line);
      return;
    }
    this.transmit(line);
  }

  private transmit(line: string): void {
    this.ws.send(line);
    this.unconfirmed.push(line);
  }

  private becomeReady(): void {
    this.ready = true;
    const lines = this.unsent;
    this.unsent = [];
    for (const line of lines) this.transmit(line);
  }
}

/** A WebSocket user without a subprotocol: lines out, messages in, nothing else. */
export class PlainWsUser extends User {
  readonly messages: string[] = [];
  /** The close frame's code (1006 when the connection died without one); undefined while open. */
  closeCode: number | undefined;

  private constructor(
    name: string,
    readonly ws: WebSocket,
  ) {
    super(name);
    ws.on('message', (data: WebSocket.RawData) => this.messages.push(String(data)));
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
    });
    ws.on('error', () => {});
  }

  static async connect(name: string, url: string, options: WebSocket.ClientOptions = {}): Promise<PlainWsUser> {
    const ws = new WebSocket(url, options);
    await once(ws, 'open');
    const user = new PlainWsUser(name, ws);
    everyone.add(user);
    return user;
  }

  get text(): string {
    return this.messages.join('');
  }

  /** No more typing. */
  halt(): void {
    this.stop();
  }

  protected sendLine(line: string): void {
    this.ws.send(line);
  }
}
