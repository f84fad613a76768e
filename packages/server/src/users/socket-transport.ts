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
import { TelnetChannel } from './telnet/telnet-channel.js';
import {
  DEFAULT_TELNET_NEGOTIATION_MS,
  NULL_SINK,
  transportName,
  type ChannelSink,
  type TcpListenerOptions,
  type TelnetListenerOptions,
  type TlsFiles,
  type Transport,
  type TransportAddress,
  type TransportContext,
  type UserChannel,
} from './transport.js';

/** How long a TLS client may take to finish its handshake, in ms. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Plain lines on a socket (TCP or TLS): the bytes go to the sink as they
 * are read, text is written as it is. The hot path adds one call per chunk
 * and nothing allocated.
 */
export class SocketChannel implements UserChannel {
  readonly transport: string;
  readonly remote: RemoteAddress;
  readonly telnet = undefined;
  private readonly socket: Socket;
  private sink: ChannelSink = NULL_SINK;

  /**
   * @param socket - the user's socket (a `tls.TLSSocket` for `tls`)
   * @param transport - the transport's name
   */
  constructor(socket: Socket, transport: string) {
    this.socket = socket;
    this.transport = transport;
    this.remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    socket.setNoDelay(true);
    socket.on('error', (error) => this.sink.onError('error', error));
    socket.on('close', () => this.sink.onClose());
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  attach(sink: ChannelSink): void {
    this.sink = sink;
    this.socket.on('data', (chunk: Buffer) => sink.onData(chunk));
    this.socket.on('end', () => sink.onEnd());
  }

  write(text: string): void {
    this.socket.write(text);
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
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
  private server: Server | undefined;

  /**
   * @param options - the listener's options
   * @param context - the intermediary's defaults
   */
  constructor(options: TcpListenerOptions | TelnetListenerOptions, context: TransportContext) {
    this.options = options;
    this.host = options.host ?? context.host;
    this.name = transportName(options);
    this.onListenerError = context.onListenerError;
  }

  async listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress> {
    const options = this.options;
    const makeChannel =
      options.kind === 'telnet'
        ? (socket: Socket): UserChannel =>
            new TelnetChannel(socket, this.name, {
              mccp2: options.mccp2 ?? false,
              gmcp: options.gmcp ?? true,
              negotiationMs: options.negotiationMs ?? DEFAULT_TELNET_NEGOTIATION_MS,
            })
        : (socket: Socket): UserChannel => new SocketChannel(socket, this.name);
    let server: Server;
    if (options.tls === undefined) {
      server = net.createServer({ noDelay: true }, (socket) => accept(makeChannel(socket)));
    } else {
      const secure = secureContextOptions(options.tls);
      const tlsServer = tls.createServer({ ...secure, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS });
      // Users are handed over once their handshake is done: a port scanner never reaches the app.
      tlsServer.on('secureConnection', (socket) => accept(makeChannel(socket)));
      tlsServer.on('tlsClientError', () => {});
      server = tlsServer;
    }
    await listenOn(server, options.port, this.host, backlog, fd);
    server.on('error', (error) => this.onListenerError(error));
    this.server = server;
    return { transport: this.name, port: (server.address() as AddressInfo).port, host: this.host };
  }

  close(): Promise<void> {
    return closeServer(this.server);
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
