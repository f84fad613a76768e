/**
 * The SSH transport (`ssh`): players run `ssh -p 2222 play@host` and get
 * the session a telnet player gets: lines in, text out, the window size and
 * terminal type from the pty request (reported in `connect.data.telnet`
 * like NAWS and TTYPE), and hidden input at the app's word. The client's
 * terminal is raw under SSH, so the server does the line editing: it echoes
 * what is typed (and erases on backspace) unless the app hid it, Ctrl-C
 * throws the line being typed away, and the escape sequences of arrow,
 * function and Alt keys are dropped (a line-based app has no cursor to
 * move; they would reach it as garbage such as `[A`).
 *
 * Anyone may log in with any user name and no password (SSH's `none`
 * authentication: the app does its own login, as MUDs do), or, with
 * `authorizedKeysFile`, only the holders of the keys listed there.
 *
 * @module
 */
import net, { type AddressInfo, type Server } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { RemoteAddress, TelnetInfo } from '@imi/core';
import ssh2 from 'ssh2';
import { closeServer, listenOn } from './socket-transport.js';
import { fingerprint, loadAuthorizedKeys, loadHostKey, type AuthorizedKey } from './ssh-keys.js';
import { DEFAULT_SSH_HOST_KEY_FILE, NULL_SINK, type ChannelSink, type SshListenerOptions, type Transport, type TransportAddress, type TransportContext, type UserChannel } from './transport.js';

/** How long a connection may take from its first byte to an open shell: scanners and stalled logins never become users. */
const LOGIN_TIMEOUT_MS = 20_000;

const CR = 0x0d;
const LF = 0x0a;
const BS = 0x08;
const DEL = 0x7f;
/** Ctrl-C. */
const ETX = 0x03;
const ESC = 0x1b;

/** Where the input is in a terminal escape sequence (ECMA-48): `ESC [ … final` (CSI), `ESC O x` (SS3), `ESC x`. */
const enum Escape {
  None,
  /** After ESC. */
  Esc,
  /** After `ESC [`: parameter and intermediate bytes (0x20-0x3f) until a final byte (0x40-0x7e). */
  Csi,
  /** After `ESC O`: one more byte. */
  Ss3,
}

/** A {@link ChannelSink.onDiscardLine} among the input bytes, in order. */
const DISCARD = Symbol('discard the line');

/** One SSH user: the shell channel of their connection. */
export class SshChannel implements UserChannel {
  readonly transport = 'ssh';
  readonly remote: RemoteAddress;
  /** The terminal info, told to the app in `connect.data.telnet` as a telnet user's is. */
  readonly telnet: TelnetInfo;
  private readonly client: ssh2.Connection;
  private readonly stream: ssh2.ServerChannel;
  private sink: ChannelSink = NULL_SINK;
  private readonly decoder = new StringDecoder('utf8');
  /** Characters of the line being typed as echoed (so a backspace erases only what is on screen). */
  private lineChars = 0;
  /** Where the input is in an escape sequence, which may span reads. */
  private escape = Escape.None;
  /** The last byte read was a CR (a CR LF is one line end). */
  private afterCr = false;
  private closed = false;

  /**
   * @param client - the SSH connection
   * @param stream - its shell channel
   * @param remote - the peer's address
   * @param info - the terminal info from the pty request and the login
   */
  constructor(client: ssh2.Connection, stream: ssh2.ServerChannel, remote: RemoteAddress, info: TelnetInfo) {
    this.client = client;
    this.stream = stream;
    this.remote = remote;
    this.telnet = info;
    client.on('error', (error: Error) => this.sink.onError('error', error));
    client.on('close', () => this.close());
    stream.on('close', () => {
      this.close();
      client.end();
    });
  }

  get writableLength(): number {
    return this.stream.writableLength;
  }

  get destroyed(): boolean {
    return this.closed || this.stream.destroyed;
  }

  attach(sink: ChannelSink): void {
    this.sink = sink;
    this.stream.on('data', (chunk: Buffer) => this.input(chunk));
    this.stream.on('end', () => sink.onEnd());
    if (this.closed) sink.onClose();
  }

  /** The client's window changed (`window-change`): reported like a NAWS resize. */
  resize(width: number, height: number): void {
    const old = this.telnet.naws;
    if (old !== undefined && old.width === width && old.height === height) return;
    this.telnet.naws = { width, height };
    this.sink.onMetadata();
  }

  /** The pty is raw: a bare LF would not return the carriage, so each becomes CR LF. */
  write(text: string): void {
    if (!this.stream.writable) return;
    this.stream.write(text.replace(/(?<!\r)\n/g, '\r\n'));
  }

  cork(): void {
    this.stream.cork();
  }

  uncork(): void {
    this.stream.uncork();
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  end(): void {
    if (this.stream.writable) this.stream.end();
    else this.client.end();
  }

  destroy(): void {
    this.stream.destroy();
    this.client.end();
  }

  /** Hides (`false`) or shows what the user types: the server does the echoing under SSH. */
  setEcho(visible: boolean): boolean {
    if (this.telnet.echo !== visible) {
      this.telnet.echo = visible;
      this.sink.onMetadata();
    }
    return true;
  }

  /**
   * Input from the raw terminal: Enter sends CR (or CR LF, or LF), which
   * becomes one LF for the line splitter; BS and DEL go on to it (it applies
   * them to the line); Ctrl-C discards the line; escape sequences are
   * dropped. The echo mirrors that: typed text, the erase of the last
   * character, `^C` and a new line; nothing of it while the app hides input.
   */
  private input(chunk: Buffer): void {
    const visible = this.telnet.echo;
    let echo = '';
    let start = 0;
    const out: Array<Buffer | typeof DISCARD> = [];
    const text = (end: number): void => {
      if (end <= start) return;
      out.push(chunk.subarray(start, end));
      const typed = this.decoder.write(chunk.subarray(start, end)).replace(/[\x00-\x1f\x7f]/g, '');
      for (const _ of typed) this.lineChars++;
      if (visible) echo += typed;
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.escape !== Escape.None) {
        const next = escapeStep(this.escape, byte);
        if (next === undefined) {
          // Not part of a sequence (a control byte, as Esc then Enter): read it as input.
          this.escape = Escape.None;
          i--;
        } else {
          this.escape = next;
          start = i + 1;
        }
        continue;
      }
      if (byte !== CR && byte !== LF && byte !== BS && byte !== DEL && byte !== ETX && byte !== ESC) continue;
      text(i);
      start = i + 1;
      if (byte === LF && this.afterCr) {
        this.afterCr = false;
        continue;
      }
      this.afterCr = byte === CR;
      if (byte === CR || byte === LF) {
        out.push(LINE_END);
        this.lineChars = 0;
        echo += '\r\n';
      } else if (byte === ETX) {
        out.push(DISCARD);
        this.lineChars = 0;
        if (visible) echo += '^C\r\n';
      } else if (byte === ESC) {
        this.escape = Escape.Esc;
      } else {
        out.push(chunk.subarray(i, i + 1));
        if (this.lineChars > 0) {
          this.lineChars--;
          if (visible) echo += '\b \b';
        }
      }
    }
    text(chunk.length);
    if (chunk.length > 0 && chunk[chunk.length - 1] !== CR && chunk[chunk.length - 1] !== LF) this.afterCr = false;
    if (echo !== '' && this.stream.writable) this.stream.write(echo);
    for (const item of out) {
      if (item === DISCARD) this.sink.onDiscardLine?.();
      else this.sink.onData(item);
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.onClose();
  }
}

const LINE_END = Buffer.from([LF]);

/** The state after `byte` inside an escape sequence, or undefined when the byte is not part of one. */
function escapeStep(state: Escape, byte: number): Escape | undefined {
  if (byte < 0x20 || byte >= 0x7f) return byte === ESC ? Escape.Esc : undefined;
  if (state === Escape.Esc) return byte === 0x5b ? Escape.Csi : byte === 0x4f ? Escape.Ss3 : Escape.None;
  if (state === Escape.Csi) return byte < 0x40 ? Escape.Csi : Escape.None;
  return Escape.None;
}

/** Listens for SSH users. */
export class SshTransport implements Transport {
  private readonly options: SshListenerOptions;
  private readonly host: string;
  private readonly onListenerError: (error: Error) => void;
  private server: Server | undefined;

  /** The listening server, once listening (a handover passes its descriptor on). */
  get listener(): Server | undefined {
    return this.server;
  }

  /**
   * @param options - the listener's options
   * @param context - the intermediary's defaults
   */
  constructor(options: SshListenerOptions, context: TransportContext) {
    this.options = options;
    this.host = options.host ?? context.host;
    this.onListenerError = context.onListenerError;
  }

  /**
   * @param fd - a listening socket inherited from the process this one
   *   succeeds (an upgrade): listen on it instead of binding the port
   */
  async listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress> {
    const hostKey = loadHostKey(this.options.hostKeyFile ?? DEFAULT_SSH_HOST_KEY_FILE);
    const keys = this.options.authorizedKeysFile === undefined ? undefined : loadAuthorizedKeys(this.options.authorizedKeysFile);
    const ssh = new ssh2.Server({ hostKeys: [hostKey] }, (client, info) => this.connection(client, info, keys, accept));
    // Our own net.Server hands its sockets to ssh2 (injectSocket): the
    // listener is then a plain server an upgrade can pass to its successor
    // like the others (SSH users themselves cannot be passed: their crypto
    // state lives in this process).
    const server = net.createServer({ noDelay: true }, (socket) => ssh.injectSocket(socket));
    await listenOn(server, this.options.port, this.host, backlog, fd);
    server.on('error', (error: Error) => this.onListenerError(error));
    this.server = server;
    return { transport: 'ssh', port: (server.address() as AddressInfo).port, host: this.host };
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private connection(client: ssh2.Connection, info: ssh2.ClientInfo, keys: AuthorizedKey[] | undefined, accept: (channel: UserChannel) => void): void {
    let user = '';
    let keyFingerprint: string | undefined;
    let opened = false;
    const timer = setTimeout(() => client.end(), LOGIN_TIMEOUT_MS);
    timer.unref();
    client.on('error', () => {});
    client.on('close', () => clearTimeout(timer));
    client.on('authentication', (context) => {
      if (keys === undefined) {
        user = context.username;
        context.accept();
        return;
      }
      if (context.method !== 'publickey') {
        context.reject(['publickey']);
        return;
      }
      const key = keys.find((listed) => listed.blob.equals(context.key.data));
      if (key === undefined) {
        context.reject(['publickey']);
        return;
      }
      // Without a signature the client only asks whether the key would do.
      if (context.signature === undefined || context.blob === undefined) {
        context.accept();
        return;
      }
      if (!key.verify(context.blob, context.signature, context.hashAlgo)) {
        context.reject(['publickey']);
        return;
      }
      user = context.username;
      keyFingerprint = fingerprint(key.blob);
      context.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession, rejectSession) => {
        // One player, one shell: a second session on the connection is refused.
        if (opened) {
          rejectSession();
          return;
        }
        const session = acceptSession();
        let pty: { term: string; cols: number; rows: number } | undefined;
        let channel: SshChannel | undefined;
        session.on('pty', (ok, _no, request) => {
          pty = { term: request.term, cols: request.cols, rows: request.rows };
          ok?.();
        });
        session.on('window-change', (ok, _no, size) => {
          ok?.();
          if (channel !== undefined) channel.resize(size.cols, size.rows);
          else if (pty !== undefined) Object.assign(pty, { cols: size.cols, rows: size.rows });
        });
        session.on('env', (ok) => ok?.());
        // A game, not a shell: no commands, no subsystems (sftp).
        session.on('exec', (_ok, no) => no?.());
        session.on('subsystem', (_ok, no) => no?.());
        session.on('shell', (ok, no) => {
          if (opened) {
            no?.();
            return;
          }
          opened = true;
          clearTimeout(timer);
          const stream = ok();
          const telnet: TelnetInfo = { echo: true, sga: false, gmcp: false, mccp2: false, eor: false, ssh: keyFingerprint === undefined ? { user } : { user, keyFingerprint } };
          if (pty !== undefined) {
            if (pty.cols > 0 && pty.rows > 0) telnet.naws = { width: pty.cols, height: pty.rows };
            if (pty.term !== '') telnet.ttype = [pty.term.slice(0, 64)];
          }
          channel = new SshChannel(client, stream, { address: info.ip, port: info.port }, telnet);
          accept(channel);
        });
      });
    });
  }
}
