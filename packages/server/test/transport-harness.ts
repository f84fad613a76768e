// Test peers for the transports: a telnet client written by hand (it answers
// negotiation like a MUD client, and inflates MCCP2, following a compressed
// stream that ends and a new one that starts, as a MUD client must across a
// copyover), a WebSocket user, and a self-signed certificate made with openssl.
import net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import WebSocket from 'ws';
import { TELNET, TELNET_OPTION, escapeIac } from '@imi/server';
import { waitFor } from './harness.js';

const { IAC, DO, DONT, WILL, WONT, SB, SE, GA, EOR: EOR_COMMAND } = TELNET;
const { ECHO, TTYPE, NAWS, MCCP2, GMCP, SGA, EOR } = TELNET_OPTION;
const VERBS: Record<number, string> = { [WILL]: 'WILL', [WONT]: 'WONT', [DO]: 'DO', [DONT]: 'DONT' };

/** How a {@link TelnetPeer} behaves. */
export interface TelnetPeerOptions {
  /** Answer negotiation (default true); false: a raw client that ignores it (netcat on a telnet port). */
  answer?: boolean;
  /** Window size sent with NAWS. */
  size?: [number, number];
  /** Terminal types given one per TTYPE SEND, the last repeated. */
  ttypes?: string[];
  /** Accept GMCP (default true). */
  gmcp?: boolean;
  /** Accept MCCP2 (default false). */
  mccp2?: boolean;
  /** Accept EOR (`DO EOR`, as Mudlet and TinTin++ do; default false: `DONT EOR`, as a client that does not know it). */
  eor?: boolean;
  /** Ask the server to suppress go-ahead (`DO SGA` at connect; default false). */
  sga?: boolean;
  /** Connect over TLS, trusting this CA certificate. */
  ca?: string;
  /** More options whose `WILL` is answered `DO` (MSDP 69, MSSP 70); others are refused. */
  agree?: number[];
}

/** A received subnegotiation. */
export interface Subnegotiation {
  option: number;
  data: Buffer;
}

/** A telnet client on a raw socket. */
export class TelnetPeer {
  readonly socket: net.Socket;
  /** The text received, protocol removed. */
  text = '';
  /** Commands received, as `"WILL 1"`, `"DO 31"`. */
  readonly commands: string[] = [];
  /** Subnegotiations received. */
  readonly subs: Subnegotiation[] = [];
  /** Every byte that arrived on the wire. */
  wireBytes = 0;
  /** The telnet stream as received (after MCCP2 inflation): text and commands, byte for byte. */
  readonly stream: number[] = [];
  /** `IAC GA` and `IAC EOR` received, as `"GA"`/`"EOR"` with the text received before each. */
  readonly marks: Array<{ mark: 'GA' | 'EOR'; textBefore: string }> = [];
  closed = false;
  /** Set once the server started MCCP2. */
  compressed = false;
  /** Compressed streams the server started (`IAC SB MCCP2 IAC SE`). */
  mccp2Starts = 0;
  /** Compressed streams that ended cleanly (the bytes after one are plain telnet again). */
  mccp2Ends = 0;
  /** Inflate errors: garbage in a compressed stream. */
  inflateErrors = 0;
  private readonly options: Required<Omit<TelnetPeerOptions, 'ca' | 'agree'>>;
  private readonly agree: ReadonlySet<number>;
  private readonly decoder = new StringDecoder('utf8');
  private inflate: zlib.Inflate | undefined;
  /** What arrived since the current compressed stream started, to find where it ended. */
  private compressedChunks: Buffer[] = [];
  private state: 'data' | 'iac' | 'verb' | 'sb' | 'sbdata' | 'sbiac' = 'data';
  private verb = 0;
  private subOption = 0;
  private sub: number[] = [];
  private ttypeIndex = 0;

  private constructor(socket: net.Socket, options: TelnetPeerOptions) {
    this.socket = socket;
    this.options = {
      answer: options.answer ?? true,
      size: options.size ?? [120, 40],
      ttypes: options.ttypes ?? ['MUDLET', 'XTERM-256COLOR', 'MTTS 2825'],
      gmcp: options.gmcp ?? true,
      mccp2: options.mccp2 ?? false,
      eor: options.eor ?? false,
      sga: options.sga ?? false,
    };
    this.agree = new Set(options.agree ?? []);
    socket.on('data', (chunk: Buffer) => {
      this.wireBytes += chunk.length;
      this.onWire(chunk);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, options: TelnetPeerOptions = {}): Promise<TelnetPeer> {
    let socket: net.Socket;
    if (options.ca === undefined) {
      socket = net.connect({ port, host: '127.0.0.1' });
      await once(socket, 'connect');
    } else {
      socket = tls.connect({ port, host: '127.0.0.1', ca: options.ca, servername: 'localhost' });
      await once(socket, 'secureConnect');
    }
    socket.setNoDelay(true);
    if (options.sga === true) socket.write(Buffer.from([IAC, DO, SGA]));
    return new TelnetPeer(socket, options);
  }

  /** Sends a line ended by CR LF. */
  send(line: string): void {
    this.socket.write(escapeIac(Buffer.from(line + '\r\n', 'utf8')));
  }

  /** Writes bytes as they are. */
  write(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.from(bytes));
  }

  /** Writes bytes one per write, with a pause between, so they travel in separate segments. */
  async writeSlowly(bytes: Buffer | number[]): Promise<void> {
    for (const byte of Buffer.from(bytes)) {
      this.socket.write(Buffer.from([byte]));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Tells the server a new window size (NAWS). */
  resize(width: number, height: number): void {
    this.write(nawsBytes(width, height));
  }

  /** Sends a GMCP message. */
  gmcp(packageName: string, json?: string): void {
    this.write(Buffer.concat([Buffer.from([IAC, SB, GMCP]), escapeIac(Buffer.from(json === undefined ? packageName : `${packageName} ${json}`)), Buffer.from([IAC, SE])]));
  }

  /** GMCP messages received, as `[package, json]`. */
  get gmcpMessages(): Array<[string, string]> {
    return this.subs
      .filter((sub) => sub.option === GMCP)
      .map((sub) => {
        const text = sub.data.toString('utf8');
        const space = text.indexOf(' ');
        return space === -1 ? [text, ''] : [text.slice(0, space), text.slice(space + 1)];
      });
  }

  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.text.includes(text), timeoutMs, () => `telnet user to receive ${JSON.stringify(text)} (got ${JSON.stringify(this.text.slice(-200))})`);
  }

  async waitForCommand(command: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.commands.includes(command), timeoutMs, () => `telnet command ${command} (got ${JSON.stringify(this.commands)})`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'telnet socket to close');
  }

  private onWire(chunk: Buffer): void {
    if (this.inflate === undefined) {
      this.parse(chunk);
      return;
    }
    this.compressedChunks.push(chunk);
    this.inflate.write(chunk);
  }

  /** Everything after `IAC SB MCCP2 IAC SE` is a zlib stream, up to its end. */
  private startInflate(rest: Buffer): void {
    this.compressed = true;
    this.mccp2Starts++;
    const inflate = zlib.createInflate();
    this.inflate = inflate;
    this.compressedChunks = [];
    inflate.on('data', (plain: Buffer) => this.parse(plain));
    inflate.on('error', () => this.inflateErrors++);
    inflate.on('end', () => {
      // The stream ended: whatever followed it on the wire is plain telnet again.
      this.mccp2Ends++;
      const after = Buffer.concat(this.compressedChunks).subarray(inflate.bytesWritten);
      this.inflate = undefined;
      this.compressedChunks = [];
      this.parse(after);
    });
    if (rest.length > 0) this.onWire(rest);
  }

  private reply(bytes: number[]): void {
    if (this.options.answer && !this.socket.destroyed) this.socket.write(Buffer.from(bytes));
  }

  private onCommand(verb: number, option: number): void {
    this.commands.push(`${VERBS[verb]} ${option}`);
    if (verb === DO && option === NAWS) {
      this.reply([IAC, WILL, NAWS]);
      if (this.options.answer) this.socket.write(nawsBytes(...this.options.size));
    } else if (verb === DO && option === TTYPE) this.reply([IAC, WILL, TTYPE]);
    else if (verb === WILL && option === GMCP) this.reply([IAC, this.options.gmcp ? DO : DONT, GMCP]);
    else if (verb === WILL && option === MCCP2) this.reply([IAC, this.options.mccp2 ? DO : DONT, MCCP2]);
    else if (verb === WILL && option === EOR) this.reply([IAC, this.options.eor ? DO : DONT, EOR]);
    else if (verb === WILL && option === SGA && this.options.sga) return; // the answer to our DO SGA
    else if (verb === WILL && option === ECHO) this.reply([IAC, DO, ECHO]);
    else if (verb === WONT && option === ECHO) this.reply([IAC, DONT, ECHO]);
    else if (verb === WILL && this.agree.has(option)) this.reply([IAC, DO, option]);
    else if (verb === DO) this.reply([IAC, WONT, option]);
    else if (verb === WILL) this.reply([IAC, DONT, option]);
  }

  private onSub(option: number, data: Buffer): void {
    this.subs.push({ option, data });
    if (option === TTYPE && data[0] === 1) {
      const names = this.options.ttypes;
      const name = names[Math.min(this.ttypeIndex++, names.length - 1)]!;
      this.reply([IAC, SB, TTYPE, 0, ...Buffer.from(name, 'latin1'), IAC, SE]);
    }
  }

  private parse(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      this.stream.push(byte);
      switch (this.state) {
        case 'data':
          if (byte === IAC) this.state = 'iac';
          else {
            // The whole run of text up to the next IAC at once.
            let end = chunk.indexOf(IAC, i + 1);
            if (end === -1) end = chunk.length;
            this.text += this.decoder.write(chunk.subarray(i, end));
            for (let k = i + 1; k < end; k++) this.stream.push(chunk[k]!);
            i = end - 1;
          }
          break;
        case 'iac':
          if (byte === IAC) {
            this.text += this.decoder.write(Buffer.from([IAC]));
            this.state = 'data';
          } else if (byte >= WILL && byte <= DONT) {
            this.verb = byte;
            this.state = 'verb';
          } else if (byte === SB) this.state = 'sb';
          else {
            if (byte === GA || byte === EOR_COMMAND) this.marks.push({ mark: byte === GA ? 'GA' : 'EOR', textBefore: this.text });
            this.state = 'data';
          }
          break;
        case 'verb':
          this.state = 'data';
          this.onCommand(this.verb, byte);
          break;
        case 'sb':
          this.subOption = byte;
          this.sub = [];
          this.state = 'sbdata';
          break;
        case 'sbdata':
          if (byte === IAC) this.state = 'sbiac';
          else this.sub.push(byte);
          break;
        case 'sbiac':
          if (byte === SE) {
            this.state = 'data';
            this.onSub(this.subOption, Buffer.from(this.sub));
            if (this.subOption === MCCP2) {
              this.startInflate(chunk.subarray(i + 1));
              return;
            }
          } else {
            this.sub.push(byte);
            this.state = 'sbdata';
          }
          break;
      }
    }
  }
}

/** IAC SB NAWS width height IAC SE, with IAC doubled. */
export function nawsBytes(width: number, height: number): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt16BE(width, 0);
  size.writeUInt16BE(height, 2);
  return Buffer.concat([Buffer.from([IAC, SB, NAWS]), escapeIac(size), Buffer.from([IAC, SE])]);
}

/**
 * A connected pair of sockets on 127.0.0.1: the server end for a channel or
 * `restoreSession`, the client end plays the user (what it receives is
 * kept). Both are added to `track`, for the caller to destroy.
 */
export async function socketPair(track: net.Socket[]): Promise<{ server: net.Socket; client: net.Socket; received: Buffer[] }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1' });
  const received: Buffer[] = [];
  client.on('data', (chunk: Buffer) => received.push(chunk));
  client.on('error', () => {});
  const [[server]] = await Promise.all([accepted, once(client, 'connect')]);
  listener.close();
  track.push(client, server);
  return { server, client, received };
}

/** A WebSocket user. */
export class WsUser {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  closed = false;
  closeCode: number | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: WebSocket.RawData) => this.messages.push(String(data)));
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
    });
    ws.on('error', () => {});
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<WsUser> {
    const ws = new WebSocket(url, options);
    const user = new WsUser(ws);
    await once(ws, 'open');
    return user;
  }

  /** Everything received, joined. */
  get text(): string {
    return this.messages.join('');
  }

  send(text: string | Buffer): void {
    this.ws.send(text);
  }

  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.text.includes(text), timeoutMs, () => `ws user to receive ${JSON.stringify(text)} (got ${JSON.stringify(this.messages.slice(-5))})`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'ws user to be closed');
  }
}

/** A self-signed certificate for `localhost` and 127.0.0.1, made with openssl in a temporary directory. */
export function makeCertificate(): { dir: string; certFile: string; keyFile: string; cert: string; key: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'imi-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { dir, certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
