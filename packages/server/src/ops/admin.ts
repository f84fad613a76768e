/**
 * The admin HTTP listener (`adminPort`): Prometheus metrics, health and
 * readiness probes, and the admin's hands while the app is down — list
 * sessions, broadcast, kick. Plain `node:http`, JSON answers, bearer token.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { IntermediaryApi, IntermediaryStats } from '../api.js';
import { IntermediaryMetrics } from './metrics.js';
import type { ClusterHolderStats } from '../cluster/holder.js';
import { HttpError, integerParam, isJson, isTrue, parseJsonObject, readBody, round, sendJson } from './admin-http.js';

export { ADMIN_MAX_BODY_BYTES } from './admin-http.js';

/** Sessions listed by `GET /sessions` when no `limit` is given. */
export const ADMIN_DEFAULT_SESSIONS_LIMIT = 1_000;
/** Most sessions one `GET /sessions` lists (`limit` is capped to it). */
export const ADMIN_MAX_SESSIONS_LIMIT = 10_000;
/** Sampling interval of the event-loop delay reported by `/stats`. */
const EVENT_LOOP_RESOLUTION_MS = 10;
/** Most admin HTTP connections open at once. */
const MAX_ADMIN_CONNECTIONS = 64;

/** Where and how the admin listener runs. */
export interface AdminServerOptions {
  /** Port to bind (0: any free one). */
  port: number;
  /** Address to bind. */
  host: string;
  /** Bearer token required on every route but `/healthz` and `/readyz`; none: open (loopback only, enforced by the options check). */
  token: string | undefined;
  /** The metrics to serve; created (with Node's default metrics) when not given. */
  metrics?: IntermediaryMetrics;
  /** Runs `POST /upgrade`: resolves with what to answer, rejects with an `ImiError` (answered 409); undefined when this process cannot upgrade itself. */
  upgrade?: () => Promise<object> | undefined;
}

/** One session as `GET /sessions` lists it. */
export interface AdminSessionInfo {
  /** The session id. */
  id: string;
  /** `"tcp"`, `"telnet"`, … */
  transport: string;
  /** The user's address. */
  remote: { address: string; port: number };
  /** When the user connected (ISO 8601). */
  connectedSince: string;
  /** The keys of the state apps stored for the user (not the values: they may hold personal data). */
  stateKeys: string[];
  /** Lines queued for the next app. */
  queuedLines: number;
  /** Bytes queued for the next app. */
  queuedBytes: number;
  /** Inputs sent to an acking app and not acked yet. */
  unacked: number;
}

/** What `GET /stats` answers (and `imi-server status` prints). */
export interface AdminStatsResponse {
  /** The intermediary's counters. */
  stats: IntermediaryStats;
  /** Cluster mode (`imi-server --redis`): the holder's counters (docs/cluster.md, "Metrics"). */
  cluster?: ClusterHolderStats;
  /** Whether both ports listen and `close()` was not called. */
  listening: boolean;
  /** Seconds since the admin listener started. */
  uptimeSeconds: number;
  /** The process. */
  process: {
    /** Resident set size. */
    rssBytes: number;
    /** V8 heap in use. */
    heapUsedBytes: number;
    /** V8 heap allocated. */
    heapTotalBytes: number;
    /** Mean event-loop delay since the previous `/stats`, in ms. */
    eventLoopDelayMeanMs: number;
    /** 99th percentile of the event-loop delay since the previous `/stats`, in ms. */
    eventLoopDelayP99Ms: number;
    /** The Node.js version. */
    nodeVersion: string;
    /** The process id. */
    pid: number;
  };
}

interface Route {
  /** Methods allowed (HEAD is allowed wherever GET is). */
  methods: readonly string[];
  /** Whether the route needs the token. */
  open?: boolean;
  handle(request: IncomingMessage, response: ServerResponse, url: URL, param: string | undefined): Promise<void> | void;
}

function digest(token: string): Buffer {
  // Hash first so timingSafeEqual compares equal lengths and leaks no length.
  return createHash('sha256').update(token).digest();
}

/**
 * The admin listener. {@link Intermediary.listen} starts one when
 * `adminPort` is set and {@link Intermediary.close} stops it; you rarely
 * create one yourself.
 *
 * Routes (JSON unless said otherwise; every one but the probes needs
 * `Authorization: Bearer <token>` when a token is set):
 *
 * - `GET /healthz` — the process is alive.
 * - `GET /readyz` — both ports listen; `?app=1`: and an app is connected. 503 otherwise.
 * - `GET /metrics` — Prometheus text.
 * - `GET /stats` — {@link AdminStatsResponse}.
 * - `GET /sessions?limit=&offset=&sort=` — `{ total, offset, limit, sessions: AdminSessionInfo[] }`, oldest first, or deepest queues first with `sort=queue`.
 * - `GET /sessions/:id` — one {@link AdminSessionInfo}.
 * - `DELETE /sessions/:id` — kick (reason `kicked`); optional farewell in `?farewell=`, a JSON body `{"farewell": "…"}`, or the text itself as any other content type.
 * - `POST /broadcast` — a JSON body `{"text": "…", "except": ["id", …]}`, or the text itself as any other content type.
 */
export class AdminServer {
  /** The metrics served on `/metrics`. */
  readonly metrics: IntermediaryMetrics;
  private readonly server: http.Server;
  private readonly tokenDigest: Buffer | undefined;
  private readonly routes: Map<string, Route>;
  private readonly eventLoopDelay: IntervalHistogram;
  private startedAt = 0;
  private boundPort: number | undefined;
  private closing: Promise<void> | undefined;

  /**
   * @param intermediary - the intermediary it serves
   * @param options - see {@link AdminServerOptions}
   */
  constructor(
    private readonly intermediary: IntermediaryApi,
    private readonly options: AdminServerOptions,
  ) {
    this.metrics = options.metrics ?? new IntermediaryMetrics(intermediary);
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
    this.eventLoopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.routes = new Map<string, Route>([
      ['/healthz', { methods: ['GET'], open: true, handle: (_q, response) => sendJson(response, 200, { status: 'ok' }) }],
      ['/readyz', { methods: ['GET'], open: true, handle: (_q, response, url) => this.readyz(response, url) }],
      ['/metrics', { methods: ['GET'], handle: (_q, response) => this.serveMetrics(response) }],
      ['/stats', { methods: ['GET'], handle: (_q, response) => sendJson(response, 200, this.statsResponse()) }],
      ['/sessions', { methods: ['GET'], handle: (_q, response, url) => this.listSessions(response, url) }],
      ['/sessions/:id', { methods: ['GET', 'DELETE'], handle: (request, response, url, id) => this.oneSession(request, response, url, id!) }],
      ['/broadcast', { methods: ['POST'], handle: (request, response) => this.broadcast(request, response) }],
      ['/upgrade', { methods: ['POST'], handle: async (_q, response) => sendJson(response, 200, await this.upgrade()) }],
    ]);
    this.server = http.createServer({ maxHeaderSize: 16 * 1024 }, (request, response) => {
      void this.handle(request, response);
    });
    this.server.maxConnections = MAX_ADMIN_CONNECTIONS;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 15_000;
    this.server.keepAliveTimeout = 5_000;
    this.server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** The bound port (after {@link listen}). */
  get port(): number | undefined {
    return this.boundPort;
  }

  /**
   * The listening HTTP server: an upgrade or `--supervise` passes its
   * descriptor on.
   *
   * @internal
   */
  get listener(): http.Server {
    return this.server;
  }

  /**
   * Binds the admin port.
   *
   * @returns the real port (when 0 was asked)
   * @throws the listen error (e.g. `EADDRINUSE`)
   */
  listen(fd?: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(fd === undefined ? { port: this.options.port, host: this.options.host } : { fd }, () => {
        this.server.off('error', onError);
        this.server.on('error', (error) => this.intermediary.logger.error({ err: error }, 'admin listener error'));
        this.startedAt = performance.now();
        this.eventLoopDelay.enable();
        this.boundPort = (this.server.address() as AddressInfo).port;
        resolve(this.boundPort);
      });
    });
  }

  /** Stops listening and ends every admin connection, idle or not. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.eventLoopDelay.disable();
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  // -------------------------------------------------------------- routing

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      let url: URL;
      try {
        url = new URL(request.url ?? '/', 'http://admin.invalid');
      } catch {
        throw new HttpError(400, 'malformed request target');
      }
      const { route, param } = this.match(url.pathname);
      if (!route?.open && !this.authorized(request)) {
        throw new HttpError(401, 'missing or wrong admin token (send "Authorization: Bearer <token>")', { 'www-authenticate': 'Bearer realm="imi-admin"' });
      }
      if (route === undefined) throw new HttpError(404, `no route ${url.pathname}`);
      const method = request.method === 'HEAD' && route.methods.includes('GET') ? 'GET' : request.method ?? '';
      if (!route.methods.includes(method)) {
        const allow = route.methods.includes('GET') ? [...route.methods, 'HEAD'] : route.methods;
        throw new HttpError(405, `${request.method ?? '?'} is not allowed on ${url.pathname}`, { allow: allow.join(', ') });
      }
      await route.handle(request, response, url, param);
    } catch (error) {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof HttpError) {
        for (const [name, value] of Object.entries(error.headers)) response.setHeader(name, value);
        sendJson(response, error.status, { error: error.message });
        return;
      }
      this.intermediary.logger.error({ err: error, path: request.url?.slice(0, 200) }, 'admin request failed');
      sendJson(response, 500, { error: 'internal error' });
    }
  }

  private match(pathname: string): { route: Route | undefined; param: string | undefined } {
    const exact = this.routes.get(pathname);
    if (exact !== undefined) return { route: exact, param: undefined };
    const prefix = '/sessions/';
    if (pathname.startsWith(prefix) && pathname.length > prefix.length && !pathname.includes('/', prefix.length)) {
      let id: string;
      try {
        id = decodeURIComponent(pathname.slice(prefix.length));
      } catch {
        return { route: undefined, param: undefined };
      }
      return { route: this.routes.get('/sessions/:id'), param: id };
    }
    return { route: undefined, param: undefined };
  }

  private authorized(request: IncomingMessage): boolean {
    if (this.tokenDigest === undefined) return true;
    const header = request.headers.authorization;
    if (typeof header !== 'string' || !/^bearer /i.test(header)) return false;
    return timingSafeEqual(digest(header.slice(7).trim()), this.tokenDigest);
  }

  // --------------------------------------------------------------- routes

  private async upgrade(): Promise<object> {
    const running = this.options.upgrade?.();
    if (running === undefined) throw new HttpError(409, 'this intermediary cannot upgrade itself: it runs inside another program, not as imi-server');
    try {
      return await running;
    } catch (error) {
      throw new HttpError(409, (error as Error).message);
    }
  }

  private readyz(response: ServerResponse, url: URL): void {
    const listening = this.listening();
    const appConnected = this.intermediary.appConnected;
    const needApp = isTrue(url.searchParams.get('app'));
    const ready = listening && (!needApp || appConnected);
    sendJson(response, ready ? 200 : 503, { ready, listening, appConnected });
  }

  private async serveMetrics(response: ServerResponse): Promise<void> {
    const text = await this.metrics.render();
    response.statusCode = 200;
    response.setHeader('content-type', this.metrics.contentType);
    response.setHeader('cache-control', 'no-store');
    response.end(text);
  }

  private statsResponse(): AdminStatsResponse {
    const memory = process.memoryUsage();
    const delay = this.eventLoopDelay;
    // Each sample is the time between two ticks of a timer of EVENT_LOOP_RESOLUTION_MS: the delay is the excess.
    const meanMs = delay.count > 0 ? Math.max(0, delay.mean / 1e6 - EVENT_LOOP_RESOLUTION_MS) : 0;
    const p99Ms = delay.count > 0 ? Math.max(0, delay.percentile(99) / 1e6 - EVENT_LOOP_RESOLUTION_MS) : 0;
    delay.reset();
    const cluster = this.metrics.clusterHolderStats;
    return {
      stats: this.intermediary.stats(),
      ...(cluster === undefined ? {} : { cluster }),
      listening: this.listening(),
      uptimeSeconds: Math.round((performance.now() - this.startedAt) / 1000),
      process: {
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        heapTotalBytes: memory.heapTotal,
        eventLoopDelayMeanMs: round(meanMs),
        eventLoopDelayP99Ms: round(p99Ms),
        nodeVersion: process.version,
        pid: process.pid,
      },
    };
  }

  private listSessions(response: ServerResponse, url: URL): void {
    const limit = Math.min(ADMIN_MAX_SESSIONS_LIMIT, integerParam(url, 'limit', ADMIN_DEFAULT_SESSIONS_LIMIT));
    const offset = integerParam(url, 'offset', 0);
    const sort = url.searchParams.get('sort');
    if (sort !== null && sort !== 'queue' && sort !== 'connected') throw new HttpError(400, 'sort must be "connected" (the default: oldest first) or "queue" (deepest queued + unacked first)');
    const sessions: AdminSessionInfo[] = [];
    let total = 0;
    if (sort === 'queue') {
      // One number per session, sorted: O(n log n) per request, for top.
      const depths: { id: string; depth: number }[] = [];
      for (const session of this.intermediary.sessions()) {
        const queues = this.intermediary.sessionQueues(session.id)!;
        depths.push({ id: session.id, depth: queues.queuedLines + queues.unacked });
      }
      total = depths.length;
      depths.sort((a, b) => b.depth - a.depth);
      for (const { id } of depths.slice(offset, offset + limit)) sessions.push(this.describe(id)!);
    } else {
      let index = 0;
      for (const session of this.intermediary.sessions()) {
        total++;
        if (index++ < offset || sessions.length >= limit) continue;
        sessions.push(this.describe(session.id)!);
      }
    }
    sendJson(response, 200, { total, offset, limit, sessions });
  }

  private async oneSession(request: IncomingMessage, response: ServerResponse, url: URL, id: string): Promise<void> {
    const info = this.describe(id);
    if (request.method === 'DELETE') {
      // Read the body first, so an unknown id does not leave it unread on a kept-alive connection.
      let farewell = url.searchParams.get('farewell') ?? undefined;
      const body = await readBody(request);
      if (body.length > 0 && isJson(request)) {
        const parsed = parseJsonObject(body);
        if (parsed['farewell'] !== undefined) {
          if (typeof parsed['farewell'] !== 'string') throw new HttpError(400, 'farewell must be a string');
          farewell = parsed['farewell'];
        }
      } else if (body.length > 0) {
        farewell = body.toString('utf8');
      }
      const session = this.intermediary.session(id);
      if (session === undefined || info === undefined) throw new HttpError(404, `no live session ${JSON.stringify(id.slice(0, 64))}`);
      session.close(farewell, 'kicked');
      this.intermediary.logger.info({ session: id, farewell: farewell !== undefined }, 'admin kicked a user');
      sendJson(response, 200, { kicked: id });
      return;
    }
    if (info === undefined) throw new HttpError(404, `no live session ${JSON.stringify(id.slice(0, 64))}`);
    sendJson(response, 200, info);
  }

  private async broadcast(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request);
    let text: string;
    let except: Set<string> | undefined;
    if (isJson(request)) {
      const parsed = parseJsonObject(body);
      if (typeof parsed['text'] !== 'string') throw new HttpError(400, 'the JSON body needs "text" (a string)');
      text = parsed['text'];
      const list = parsed['except'];
      if (list !== undefined) {
        if (!Array.isArray(list) || !list.every((id) => typeof id === 'string')) throw new HttpError(400, '"except" must be an array of session ids');
        except = new Set(list as string[]);
      }
    } else {
      text = body.toString('utf8');
    }
    if (text.length === 0) throw new HttpError(400, 'nothing to broadcast');
    const sent = this.intermediary.broadcast(text, except);
    this.intermediary.logger.info({ sent, bytes: Buffer.byteLength(text) }, 'admin broadcast');
    sendJson(response, 200, { sent });
  }

  // -------------------------------------------------------------- helpers

  /** The admin listener starts once both ports listen and stops first thing in `close()`. */
  private listening(): boolean {
    return this.boundPort !== undefined && this.closing === undefined;
  }

  private describe(id: string): AdminSessionInfo | undefined {
    const session = this.intermediary.session(id);
    const queues = this.intermediary.sessionQueues(id);
    if (session === undefined || queues === undefined) return undefined;
    return {
      id: session.id,
      transport: session.transport,
      remote: { address: session.remote.address, port: session.remote.port },
      connectedSince: new Date(session.connectedAt).toISOString(),
      stateKeys: Object.keys(session.state),
      queuedLines: queues.queuedLines,
      queuedBytes: queues.queuedBytes,
      unacked: queues.unacked,
    };
  }
}
