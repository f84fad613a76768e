/**
 * The WebSocket transport (`ws`, or `ws+tls`): one text message is one line
 * in, one output is one text message out; pings keep idle connections
 * honest. With `web` on, the same HTTP server also serves the browser
 * client page at `/`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { RemoteAddress } from '@imi/core';
import { closeServer, listenOn, secureContextOptions } from './socket-transport.js';
import {
  DEFAULT_WS_MAX_PAYLOAD_BYTES,
  DEFAULT_WS_PING_INTERVAL_MS,
  NULL_SINK,
  transportName,
  type ChannelSink,
  type Transport,
  type TransportAddress,
  type TransportContext,
  type UserChannel,
  type WsListenerOptions,
} from './transport.js';

const LF = 0x0a;
const LINE_END = Buffer.from('\n');
/** Where the page's files are: `packages/server/web/`, next to `dist/` and `src/`. */
const WEB_ROOT = new URL('../../web/', import.meta.url);
/** The browser page's files, by request path. */
const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/client.js': { file: 'client.js', type: 'text/javascript; charset=utf-8' },
  '/client.css': { file: 'client.css', type: 'text/css; charset=utf-8' },
};
/** Sent with every page file: the page talks to its own origin only. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A WebSocket user. */
class WsChannel implements UserChannel {
  readonly transport: string;
  readonly remote: RemoteAddress;
  readonly telnet = undefined;
  /** Whether the peer answered (or sent anything) since the last ping. */
  alive = true;
  private readonly ws: WebSocket;
  private readonly socket: Duplex;
  private sink: ChannelSink = NULL_SINK;

  constructor(ws: WebSocket, socket: Duplex, transport: string, remote: RemoteAddress, forget: (channel: WsChannel) => void) {
    this.ws = ws;
    this.socket = socket;
    this.transport = transport;
    this.remote = remote;
    ws.on('error', (error: Error & { code?: string }) => {
      this.sink.onError(error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'limit' : 'error', error);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('close', () => {
      forget(this);
      this.sink.onClose();
    });
  }

  get writableLength(): number {
    return this.ws.bufferedAmount;
  }

  get destroyed(): boolean {
    return this.ws.readyState === this.ws.CLOSED;
  }

  attach(sink: ChannelSink): void {
    this.sink = sink;
    this.ws.on('message', (data: RawData) => {
      this.alive = true;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      // One message, one line: it ends the line even without a line end of its own.
      sink.onData(bytes);
      if (bytes.length === 0 || bytes[bytes.length - 1] !== LF) sink.onData(LINE_END);
    });
  }

  write(text: string): void {
    this.ws.send(text);
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  end(): void {
    this.ws.close(1000);
  }

  destroy(): void {
    this.ws.terminate();
  }

  /** Pings, or drops a peer that did not answer the previous ping. */
  keepAlive(): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (!this.alive) {
      this.sink.onError('timeout');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }
}

/** Listens for WebSocket users (and serves the browser client page when asked). */
export class WsTransport implements Transport {
  private readonly options: WsListenerOptions;
  private readonly host: string;
  private readonly name: string;
  private readonly path: string | undefined;
  private readonly onListenerError: (error: Error) => void;
  private readonly channels = new Set<WsChannel>();
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private page: Map<string, { body: Buffer; type: string }> | undefined;

  /**
   * @param options - the listener's options
   * @param context - the intermediary's defaults
   */
  constructor(options: WsListenerOptions, context: TransportContext) {
    this.options = options;
    this.host = options.host ?? context.host;
    this.name = transportName(options);
    this.path = options.path ?? (options.web === true ? '/ws' : undefined);
    this.onListenerError = context.onListenerError;
  }

  async listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress> {
    const options = this.options;
    if (options.web === true) this.page = this.loadPage();
    const server = options.tls === undefined ? createHttpServer() : createHttpsServer(secureContextOptions(options.tls));
    const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes ?? DEFAULT_WS_MAX_PAYLOAD_BYTES, perMessageDeflate: false });
    server.on('request', (request, response) => this.serve(request, response));
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => {});
      if (this.path !== undefined && pathOf(request) !== this.path) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        const raw = request.socket as Socket;
        const remote = { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0 };
        (raw as Socket).setNoDelay?.(true);
        const channel = new WsChannel(ws, socket, this.name, remote, (gone) => this.channels.delete(gone));
        this.channels.add(channel);
        accept(channel);
      });
    });
    server.on('clientError', (_error, socket) => socket.destroy());
    await listenOn(server, options.port, this.host, backlog, fd);
    server.on('error', (error) => this.onListenerError(error));
    this.server = server;
    this.wss = wss;
    const pingMs = options.pingIntervalMs ?? DEFAULT_WS_PING_INTERVAL_MS;
    if (pingMs > 0) {
      this.pingTimer = setInterval(() => {
        for (const channel of this.channels) channel.keepAlive();
      }, pingMs);
      this.pingTimer.unref();
    }
    const address: TransportAddress = { transport: this.name, port: (server.address() as AddressInfo).port, host: this.host };
    if (this.path !== undefined) address.path = this.path;
    if (options.web === true) address.web = true;
    return address;
  }

  close(): Promise<void> {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.wss?.close();
    const closed = closeServer(this.server);
    // Browsers keep idle HTTP connections open; they must not hold up close().
    this.server?.closeIdleConnections();
    return closed;
  }

  private loadPage(): Map<string, { body: Buffer; type: string }> {
    const files = new Map<string, { body: Buffer; type: string }>();
    for (const [path, { file, type }] of Object.entries(PAGE_FILES)) {
      let text = readFileSync(new URL(file, WEB_ROOT), 'utf8');
      if (file === 'index.html') text = text.replace('__IMI_WS_PATH__', escapeHtml(this.path ?? '/ws'));
      files.set(path, { body: Buffer.from(text), type });
    }
    return files;
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    const file = this.page?.get(pathOf(request));
    if (file === undefined) {
      response.writeHead(this.page === undefined ? 426 : 404, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      response.end(this.page === undefined ? 'This port speaks WebSocket.\n' : 'Not found.\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' });
      response.end();
      return;
    }
    response.writeHead(200, { ...PAGE_HEADERS, 'content-type': file.type, 'content-length': file.body.length });
    response.end(request.method === 'HEAD' ? undefined : file.body);
  }
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
