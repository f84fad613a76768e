/**
 * The WebSocket transport (`ws`, or `ws+tls`): one text message is one line
 * in, one output is one text message out; pings keep idle connections
 * honest. With `web` on, the same HTTP server also serves the browser
 * client page at `/`. Upgrades from a browser page of another origin are
 * refused (403, `IMI_BAD_ORIGIN`) unless `allowedOrigins` lets them in.
 * A client that offers the {@link WS_CONTROL_PROTOCOL} subprotocol also gets
 * control messages (echo off/on) as binary frames of JSON, never mixed up
 * with output, which is always text frames.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { ImiError } from '@imi/core';
import { closeServer, listenOn, secureContextOptions } from './socket-transport.js';
import { normalizeOrigin } from './origin.js';
import { WS_CONTROL_PROTOCOL, WsChannel } from './ws-channel.js';
import { readResumeRequest, WS_CLOSE_CODES, WS_RESUME_HELLO_MS, WS_RESUME_PROTOCOL, type WsResumeSettings } from './ws-resume.js';
import {
  DEFAULT_WS_MAX_PAYLOAD_BYTES,
  DEFAULT_WS_PING_INTERVAL_MS,
  transportName,
  type Transport,
  type TransportAddress,
  type TransportContext,
  type UserChannel,
  type WsListenerOptions,
} from './transport.js';

export { WS_CONTROL_PROTOCOL };

/** The longest Origin quoted in a log line. */
const MAX_LOGGED_ORIGIN = 200;
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

/** Listens for WebSocket users (and serves the browser client page when asked). */
export class WsTransport implements Transport {
  private readonly options: WsListenerOptions;
  private readonly host: string;
  private readonly name: string;
  private readonly path: string | undefined;
  private readonly onListenerError: (error: Error) => void;
  private readonly report: ((error: ImiError) => void) | undefined;
  /** `allowedOrigins` with its default filled in (as the log names it). */
  private readonly allowedOrigins: readonly string[];
  /** Whether any Origin may connect (`*`). */
  private readonly anyOrigin: boolean;
  /** Whether the page's own origin may connect (`self`). */
  private readonly selfOrigin: boolean;
  /** The other allowed origins, normalized (`https://example.com`, no default port). */
  private readonly origins: ReadonlySet<string>;
  private readonly resume: WsResumeSettings | undefined;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private page: Map<string, { body: Buffer; type: string }> | undefined;

  /** The listening server, once listening (a handover passes its descriptor on). */
  get listener(): Server | undefined {
    return this.server;
  }

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
    this.report = context.report;
    this.resume = context.wsResume;
    const allowed = options.allowedOrigins ?? (options.web === true ? ['self'] : ['*']);
    this.allowedOrigins = allowed;
    this.anyOrigin = allowed.includes('*');
    this.selfOrigin = allowed.includes('self');
    this.origins = new Set(allowed.filter((entry) => entry !== '*' && entry !== 'self').map((entry) => normalizeOrigin(entry) ?? entry));
  }

  async listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress> {
    const options = this.options;
    if (options.web === true) this.page = this.loadPage();
    const server = options.tls === undefined ? createHttpServer() : createHttpsServer(secureContextOptions(options.tls));
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayloadBytes ?? DEFAULT_WS_MAX_PAYLOAD_BYTES,
      perMessageDeflate: false,
      // The control subprotocol when offered; otherwise the first one offered, as ws always did.
      handleProtocols: (protocols) => (protocols.has(WS_CONTROL_PROTOCOL) ? WS_CONTROL_PROTOCOL : (protocols.values().next().value ?? false)),
    });
    server.on('request', (request, response) => this.serve(request, response));
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => {});
      if (this.path !== undefined && pathOf(request) !== this.path) {
        refuseUpgrade(socket, '404 Not Found');
        return;
      }
      const origin = request.headers.origin;
      if (!this.originAllowed(origin, request.headers.host)) {
        const raw = request.socket;
        const quoted = JSON.stringify(origin!.length > MAX_LOGGED_ORIGIN ? origin!.slice(0, MAX_LOGGED_ORIGIN) + '…' : origin);
        this.report?.(
          new ImiError(
            'IMI_BAD_ORIGIN',
            `WebSocket upgrade from ${raw.remoteAddress ?? '?'} refused (403): Origin ${quoted} is not allowed on the ${this.name} listener on port ${(raw.localPort ?? 0).toString()} (allowedOrigins: ${JSON.stringify(this.allowedOrigins)})`,
          ),
        );
        refuseUpgrade(socket, '403 Forbidden');
        return;
      }
      const resuming = offers(request, WS_RESUME_PROTOCOL);
      wss.handleUpgrade(request, socket, head, (ws) => {
        const raw = request.socket as Socket;
        const remote = { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0 };
        (raw as Socket).setNoDelay?.(true);
        if (resuming && ws.protocol === WS_CONTROL_PROTOCOL) {
          this.awaitResume(ws, socket, remote.address);
          return;
        }
        const info = { transport: this.name, remote, protocol: ws.protocol, maxPayload: wss.options.maxPayload ?? DEFAULT_WS_MAX_PAYLOAD_BYTES, pingIntervalMs: options.pingIntervalMs ?? DEFAULT_WS_PING_INTERVAL_MS };
        accept(new WsChannel(ws, socket, info, this.resume));
      });
    });
    server.on('clientError', (_error, socket) => socket.destroy());
    await listenOn(server, options.port, this.host, backlog, fd);
    server.on('error', (error) => this.onListenerError(error));
    this.server = server;
    this.wss = wss;
    const address: TransportAddress = { transport: this.name, port: (server.address() as AddressInfo).port, host: this.host };
    if (this.path !== undefined) address.path = this.path;
    if (options.web === true) address.web = true;
    return address;
  }

  /**
   * Whether an upgrade with this Origin may go on. No Origin: not a browser
   * (browsers always send one on a WebSocket upgrade), so no cross-site risk:
   * allowed. `self` is the origin the request itself names: the listener's
   * scheme (`http`, `https` with TLS) and the `Host` header; on a plain
   * listener `https://` + Host too (a TLS-terminating proxy in front: only
   * who owns the host name can serve that origin).
   */
  private originAllowed(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined || this.anyOrigin) return true;
    const normalized = normalizeOrigin(origin);
    if (normalized === undefined) return false;
    if (this.origins.has(normalized)) return true;
    if (!this.selfOrigin || host === undefined || host === '') return false;
    const schemes = this.options.tls === undefined ? ['http', 'https'] : ['https'];
    return schemes.some((scheme) => normalizeOrigin(`${scheme}://${host}`) === normalized);
  }

  close(): Promise<void> {
    this.wss?.close();
    const closed = closeServer(this.server);
    // Browsers keep idle HTTP connections open; they must not hold up close().
    this.server?.closeIdleConnections();
    return closed;
  }

  /**
   * A client that offered `imi.resume` sends `{"type":"resume","token","received"}`
   * first: a good token hands it its session; anything else closes the
   * connection with a code the page understands (see {@link WS_CLOSE_CODES}).
   * A resume is not a new session (`maxConnections`, `maxConnectionsPerIp`
   * do not count it again) but is a connection (`connectRatePerIp` does).
   */
  private awaitResume(ws: WebSocket, socket: Duplex, address: string): void {
    const refuse = (code: number, reason: string, why?: string): void => {
      if (why !== undefined) this.report?.(new ImiError('IMI_WS_RESUME_REFUSED', `WebSocket resume from ${address} refused (close ${code}): ${why}`));
      ws.close(code, reason);
      setTimeout(() => ws.terminate(), 2_000).unref();
    };
    ws.on('error', () => {});
    const timer = setTimeout(() => refuse(WS_CLOSE_CODES.badResume, 'no resume message', `no resume message within ${WS_RESUME_HELLO_MS} ms`), WS_RESUME_HELLO_MS);
    ws.once('close', () => clearTimeout(timer));
    ws.once('message', (data: RawData) => {
      clearTimeout(timer);
      const settings = this.resume;
      const request = readResumeRequest(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));
      if (request === undefined) return refuse(WS_CLOSE_CODES.badResume, 'bad resume message', 'the first message was not a valid resume message');
      if (settings === undefined || settings.windowMs === 0) return refuse(WS_CLOSE_CODES.badToken, 'sessions cannot be resumed here', 'resumes are off (wsResumeWindowMs 0)');
      if (settings.busy()) return refuse(WS_CLOSE_CODES.retry, 'try again');
      if (!settings.admitResume(address)) return refuse(WS_CLOSE_CODES.retry, 'too many connections: try again', 'connectRatePerIp');
      const found = settings.tokens.take(request.token, this.name);
      if (found === undefined) return refuse(WS_CLOSE_CODES.badToken, 'unknown, expired or used token', 'unknown, expired or already used token');
      const channel = found.holder as WsChannel;
      const outcome = channel.reattach(ws, socket, request.received);
      if (outcome === 'bad-count') {
        settings.tokens.restore(found.hash, channel);
        return refuse(WS_CLOSE_CODES.badResume, 'bad resume message', `the client claims ${request.received} output messages, more than were sent`);
      }
      if (outcome === 'output-lost') {
        channel.destroy();
        return refuse(WS_CLOSE_CODES.outputLost, 'missed output no longer kept', `output the client missed overflowed wsResumeBufferBytes (${settings.bufferBytes}); the session is closed`);
      }
    });
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

/** Answers an upgrade with an HTTP error and closes (at the latest 2 s later, for a peer that never reads). */
function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  const timer = setTimeout(() => socket.destroy(), 2_000).unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Whether the upgrade request offers this subprotocol. */
function offers(request: IncomingMessage, protocol: string): boolean {
  const header = request.headers['sec-websocket-protocol'];
  return header !== undefined && header.split(',').some((entry) => entry.trim() === protocol);
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
