/**
 * The stream transports: plain lines over TCP (`tcp`), over TLS (`tls`),
 * and telnet over either (`telnet`, `telnet+tls`).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { ImiError, type RemoteAddress } from '@imi/core';
import { DEFAULT_MSSP_NAME, DEFAULT_PROXY_HEADER_TIMEOUT_MS, DEFAULT_PROXY_TRUSTED_ADDRESSES } from '../options.js';
import { proxyTrustList, readProxyHeader } from './proxy-protocol.js';
import type { MsspTable } from './telnet/mssp.js';
import { TelnetChannel } from './telnet/telnet-channel.js';
import {
  DEFAULT_TELNET_NEGOTIATION_MS,
  NULL_SINK,
  socketErrorReason,
  transportName,
  type ChannelSink,
  type TcpListenerOptions,
  type TelnetListenerOptions,
  type TlsFiles,
  type Transport,
  type TransportAddress,
  type ProxyProtocolSettings,
  type TransportContext,
  type UserChannel,
} from './transport.js';

/** How long a TLS client may take to finish its handshake, in ms. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Where a socket's listeners find its channel (the listeners are shared, as `ws` does it). */
const kChannel = Symbol('imi.socketChannel');

/** A user's socket with its channel attached. */
interface ChannelSocket extends Socket {
  [kChannel]: SocketChannel;
}

/**
 * Plain lines on a socket (TCP or TLS): the bytes go to the sink as they
 * are read, text is written as it is. The hot path adds one call per chunk
 * and nothing allocated. The socket's listeners are functions shared by
 * every channel, not closures: an idle user costs no function objects.
 */
export class SocketChannel implements UserChannel {
  readonly transport: string;
  readonly remote: RemoteAddress;
  readonly telnet = undefined;
  /** The user's socket (a handover passes its descriptor on). */
  readonly socket: Socket;
  private sink: ChannelSink = NULL_SINK;
  /** Set between {@link cork} and {@link uncork}. */
  private holding = false;
  /**
   * The text written while corked, joined, for one `socket.write` at the
   * uncork: a byte stream has no message edges to keep, and this skips the
   * stream's own cork buffer (an entry per write, then a flush).
   */
  private held: string | undefined;

  /**
   * @param socket - the user's socket (a `tls.TLSSocket` for `tls`)
   * @param transport - the transport's name
   * @param remote - the user's address when it is not the socket's peer (from a PROXY header)
   */
  constructor(socket: Socket, transport: string, remote?: RemoteAddress) {
    this.socket = socket;
    this.transport = transport;
    this.remote = remote ?? { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    // A user who half-closes (`printf … | nc`) still reads: their reply must get out.
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    (socket as ChannelSocket)[kChannel] = this;
    socket.on('error', SocketChannel.onSocketError);
    socket.on('close', SocketChannel.onSocketClose);
  }

  private static onSocketError(this: ChannelSocket, error: Error): void {
    this[kChannel].sink.onError(socketErrorReason(error), error);
  }

  private static onSocketClose(this: ChannelSocket): void {
    this[kChannel].sink.onClose();
  }

  private static onSocketData(this: ChannelSocket, chunk: Buffer): void {
    this[kChannel].sink.onData(chunk);
  }

  private static onSocketEnd(this: ChannelSocket): void {
    this[kChannel].sink.onEnd();
  }

  watchPeer(keepAliveMs: number): void {
    if (keepAliveMs > 0) this.socket.setKeepAlive(true, keepAliveMs);
  }

  get writableLength(): number {
    const held = this.held;
    return held === undefined ? this.socket.writableLength : this.socket.writableLength + Buffer.byteLength(held);
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  attach(sink: ChannelSink): void {
    this.sink = sink;
    this.socket.on('data', SocketChannel.onSocketData);
    this.socket.on('end', SocketChannel.onSocketEnd);
  }

  write(text: string): void {
    if (!this.holding) this.socket.write(text);
    else this.held = this.held === undefined ? text : this.held + text;
  }

  cork(): void {
    this.holding = true;
  }

  uncork(): void {
    this.holding = false;
    this.release();
  }

  /** Writes what was held while corked. */
  private release(): void {
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    this.socket.write(held);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    // What was held goes first, as the stream's end() would flush corked writes.
    this.holding = false;
    this.release();
    this.socket.end();
  }

  destroy(): void {
    this.holding = false;
    this.held = undefined;
    this.socket.destroy();
  }
}

/** Reads a PEM text, or the file it names. */
function readPem(value: string, what: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (error) {
    throw new ImiError('IMI_CONFIG', `cannot read the TLS ${what} file ${value}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Makes a TLS context from a certificate and key.
 *
 * @throws ImiError `IMI_CONFIG` when a file cannot be read or the PEM is not valid
 */
export function secureContextOptions(files: TlsFiles): { cert: string; key: string } {
  const options = { cert: readPem(files.cert, 'certificate'), key: readPem(files.key, 'key') };
  try {
    tls.createSecureContext(options);
  } catch (error) {
    throw new ImiError('IMI_CONFIG', `the TLS certificate or key is not valid: ${(error as Error).message}`, { cause: error });
  }
  return options;
}

/** Listens for `tcp`, `tls`, `telnet` or `telnet+tls` users. */
export class SocketTransport implements Transport {
  private readonly options: TcpListenerOptions | TelnetListenerOptions;
  private readonly host: string;
  private readonly name: string;
  private readonly onListenerError: (error: Error) => void;
  private readonly proxy: ProxyProtocolSettings | undefined;
  private readonly mssp: () => MsspTable;
  private server: Server | undefined;

  /** The listening server, once listening (a handover passes its descriptor on). */
  get listener(): Server | undefined {
    return this.server;
  }

  /** Connections still sending their PROXY header, with what abandons each. */
  private readonly awaitingHeader = new Map<Socket, () => void>();

  /**
   * @param options - the listener's options
   * @param context - the intermediary's defaults
   */
  constructor(options: TcpListenerOptions | TelnetListenerOptions, context: TransportContext) {
    this.options = options;
    this.host = options.host ?? context.host;
    this.name = transportName(options);
    this.onListenerError = context.onListenerError;
    this.mssp = context.mssp ?? ((): MsspTable => [['NAME', [DEFAULT_MSSP_NAME]]]);
    if (options.proxyProtocol === true) {
      this.proxy = context.proxy ?? { trustedAddresses: DEFAULT_PROXY_TRUSTED_ADDRESSES, headerTimeoutMs: DEFAULT_PROXY_HEADER_TIMEOUT_MS, report: () => {} };
    }
  }

  async listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress> {
    const options = this.options;
    const makeChannel =
      options.kind === 'telnet'
        ? (socket: Socket, remote?: RemoteAddress): UserChannel =>
            new TelnetChannel(socket, this.name, {
              mccp2: options.mccp2 ?? false,
              gmcp: options.gmcp ?? true,
              negotiationMs: options.negotiationMs ?? DEFAULT_TELNET_NEGOTIATION_MS,
              nvtOutput: options.nvtOutput ?? true,
              eor: options.eor ?? true,
              msdp: options.msdp ?? true,
              ...(options.mssp === false ? {} : { mssp: this.mssp }),
              ...(remote === undefined ? {} : { remote }),
            })
        : (socket: Socket, remote?: RemoteAddress): UserChannel => new SocketChannel(socket, this.name, remote);
    let server: Server;
    let tlsServer: tls.Server | undefined;
    /** PROXY + TLS: the header's address of each connection in its handshake, by the connection's `address|port`. */
    const headerRemotes = new Map<string, RemoteAddress>();
    const peerKey = (socket: Socket): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
    if (options.tls !== undefined) {
      const secure = secureContextOptions(options.tls);
      tlsServer = tls.createServer({ ...secure, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS });
      // Users are handed over once their handshake is done: a port scanner never reaches the app.
      tlsServer.on('secureConnection', (socket) => {
        const key = peerKey(socket);
        const remote = headerRemotes.get(key);
        headerRemotes.delete(key);
        accept(makeChannel(socket, remote));
      });
      tlsServer.on('tlsClientError', () => {});
    }
    const proxy = this.proxy;
    if (proxy !== undefined) {
      const trusted = proxyTrustList(proxy.trustedAddresses);
      // The header comes first on the raw connection, before any telnet
      // negotiation, banner or TLS handshake (as HAProxy's send-proxy sends
      // it): the socket is handed on once it has been read.
      server = net.createServer({ noDelay: true }, (socket) => {
        const abandon = readProxyHeader(socket, proxy, trusted, (remote) => {
          this.awaitingHeader.delete(socket);
          if (tlsServer === undefined) {
            // Resumed before the channel attaches: the flow starts next tick, put-back bytes first.
            socket.resume();
            accept(makeChannel(socket, remote));
            return;
          }
          const key = peerKey(socket);
          headerRemotes.set(key, remote);
          socket.once('close', () => headerRemotes.delete(key));
          // The TLS server wraps the socket as if it had accepted it (what it
          // does on 'connection'); it reads the put-back bytes first.
          tlsServer.emit('connection', socket);
        });
        if (socket.destroyed) return;
        this.awaitingHeader.set(socket, abandon);
        socket.once('close', () => this.awaitingHeader.delete(socket));
      });
    } else {
      server = tlsServer ?? net.createServer({ noDelay: true }, (socket) => accept(makeChannel(socket)));
    }
    await listenOn(server, options.port, this.host, backlog, fd);
    server.on('error', (error) => this.onListenerError(error));
    this.server = server;
    return { transport: this.name, port: (server.address() as AddressInfo).port, host: this.host };
  }

  close(): Promise<void> {
    const closed = closeServer(this.server);
    // Connections still sending their header are no users yet: nothing to flush.
    for (const abandon of this.awaitingHeader.values()) abandon();
    this.awaitingHeader.clear();
    return closed;
  }
}

/**
 * Binds a server, rejecting with the listen error.
 *
 * @param fd - a listening socket inherited from the process this one
 *   succeeds (an upgrade): listen on it instead of binding `port`
 */
export function listenOn(server: Server, port: number, host: string, backlog: number, fd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(fd === undefined ? { port, host, backlog } : { fd, backlog }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Stops a server accepting; resolves once its connections are gone. */
export function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (server === undefined || !server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
