/**
 * Every option of the intermediary, its default, and the check that turns
 * an impossible value into a clear `IMI_CONFIG` error before anything
 * listens.
 *
 * @module
 */
import { DEFAULT_MAX_FRAME_BYTES, ImiError } from '@imi/core';
import type { Logger } from 'pino';
import type { IntermediaryPlugin } from './api.js';
import { proxyTrustList } from './users/proxy-protocol.js';
import { isTransport, type ListenerOptions, type Transport } from './users/transport.js';
import { normalizeOrigin } from './users/origin.js';

/** Default {@link IntermediaryOptions.externalPort}: where users connect. */
export const DEFAULT_EXTERNAL_PORT = 6715;
/** Default {@link IntermediaryOptions.clientPort}: where the app connects. */
export const DEFAULT_CLIENT_PORT = 9000;
/** Default {@link IntermediaryOptions.host}: every interface, IPv4 and IPv6. */
export const DEFAULT_HOST = '::';
/** Default {@link IntermediaryOptions.clientHost}: loopback only, so the app port is never public by accident. */
export const DEFAULT_CLIENT_HOST = '127.0.0.1';
/** Default {@link IntermediaryOptions.adminHost}: loopback only, so the admin API is never public by accident. */
export const DEFAULT_ADMIN_HOST = '127.0.0.1';
/**
 * Default {@link IntermediaryOptions.backlog}. Node's default of 511 (and the
 * original's 128) makes a thousand users arriving at once wait on SYN
 * retries; the kernel caps it at `net.core.somaxconn` anyway.
 */
export const DEFAULT_BACKLOG = 4096;
/** Default {@link IntermediaryOptions.maxLineBytes}: 8 KiB. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024;
/** Default {@link IntermediaryOptions.helloTimeoutMs}: 5 s for an app to authenticate. */
export const DEFAULT_HELLO_TIMEOUT_MS = 5_000;
/**
 * Default {@link IntermediaryOptions.legacyHelloWaitMs}: without a token, how
 * long to wait for an optional `hello` before treating the app as a legacy
 * one that never sends it. SDK apps send it at once, so they never wait.
 */
export const DEFAULT_LEGACY_HELLO_WAIT_MS = 250;
/** Default {@link IntermediaryOptions.heartbeatIntervalMs}: a `ping` every 5 s. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000;
/** Default {@link IntermediaryOptions.heartbeatTimeoutMs}: an app silent for 15 s is dropped. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 15_000;
/** Default {@link IntermediaryOptions.maxQueuedLinesPerSession}. */
export const DEFAULT_MAX_QUEUED_LINES_PER_SESSION = 100;
/** Default {@link IntermediaryOptions.maxQueuedBytesPerSession}: 64 KiB. */
export const DEFAULT_MAX_QUEUED_BYTES_PER_SESSION = 64 * 1024;
/** Default {@link IntermediaryOptions.maxQueuedBytesTotal}: 64 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES_TOTAL = 64 * 1024 * 1024;
/** Default {@link IntermediaryOptions.maxUnackedTotal}: inputs kept for redelivery, in all. */
export const DEFAULT_MAX_UNACKED_TOTAL = 100_000;
/** Default {@link IntermediaryOptions.maxDepTxns}: txn ids one message may wait for. */
export const DEFAULT_MAX_DEP_TXNS = 64;
/** Default {@link IntermediaryOptions.maxHeldMessages}: messages waiting for their `dep_txns`. */
export const DEFAULT_MAX_HELD_MESSAGES = 1_000;
/** Default {@link IntermediaryOptions.depWaitTimeoutMs}: how long a message waits for its `dep_txns`. */
export const DEFAULT_DEP_WAIT_TIMEOUT_MS = 5_000;
/** Default {@link IntermediaryOptions.processedTxnMemory}: app txn ids remembered for `dep_txns`. */
export const DEFAULT_PROCESSED_TXN_MEMORY = 65_536;
/** Default {@link IntermediaryOptions.maxOutputBufferBytes}: 1 MiB waiting to be written to one user. */
export const DEFAULT_MAX_OUTPUT_BUFFER_BYTES = 1024 * 1024;
/** Default {@link IntermediaryOptions.maxAppBufferBytes}: 32 MiB waiting to be written to the app. */
export const DEFAULT_MAX_APP_BUFFER_BYTES = 32 * 1024 * 1024;
/** Default {@link IntermediaryOptions.maxConnections}: users connected at once. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Default {@link IntermediaryOptions.maxConnectionsPerIp}: users connected at once from one address. */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 64;
/** Default {@link IntermediaryOptions.connectRatePerIp}: new connections a second from one address. */
export const DEFAULT_CONNECT_RATE_PER_IP = 10;
/** Default {@link IntermediaryOptions.inputRatePerSession}: lines a second from one user. */
export const DEFAULT_INPUT_RATE_PER_SESSION = 50;
/** Default {@link IntermediaryOptions.inputBurstPerSession}: lines a user may send at once before the rate applies. */
export const DEFAULT_INPUT_BURST_PER_SESSION = 100;
/** Default {@link IntermediaryOptions.maxDelayedLinesPerSession}: lines held back by the rate limit before more are dropped. */
export const DEFAULT_MAX_DELAYED_LINES_PER_SESSION = 100;
/** Default {@link IntermediaryOptions.closeTimeoutMs}: how long `close()` lets sockets flush. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * Default {@link IntermediaryOptions.proxyHeaderTimeoutMs}: 5 s (like
 * `helloTimeoutMs`). A proxy sends the header as it connects, so this only
 * bounds how long a broken or hostile peer holds a socket.
 */
export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5_000;
/**
 * Default {@link IntermediaryOptions.proxyTrustedAddresses}: loopback only
 * (a proxy on this host, such as nginx `stream` or a local HAProxy). A proxy
 * elsewhere must be named: the PROXY ports fail closed.
 */
export const DEFAULT_PROXY_TRUSTED_ADDRESSES: readonly string[] = Object.freeze(['127.0.0.0/8', '::1']);
/** Default {@link IntermediaryOptions.msspName}: what MSSP crawlers are told the server is called when neither the options nor the app name it. */
export const DEFAULT_MSSP_NAME = 'imi';
/** Default {@link IntermediaryOptions.appDownNotice}. */
export const DEFAULT_APP_DOWN_NOTICE = '\r\n*** The application is restarting. Stay connected: nothing you type is lost. ***\r\n';
/** Default {@link IntermediaryOptions.shutdownNotice}. */
export const DEFAULT_SHUTDOWN_NOTICE = '\r\n*** The server is shutting down. ***\r\n';
/** Default {@link IntermediaryOptions.lineTooLongNotice}; `{limit}` is replaced by the byte limit. */
export const DEFAULT_LINE_TOO_LONG_NOTICE = '\r\n*** Your line was too long and was cut to {limit} bytes. ***\r\n';
/** Default {@link IntermediaryOptions.refusedNotice}; `{reason}` is replaced by why. */
export const DEFAULT_REFUSED_NOTICE = '*** Connection refused: {reason}. Try again later. ***\r\n';
/** Default {@link IntermediaryOptions.rateLimitNotice}. */
export const DEFAULT_RATE_LIMIT_NOTICE = '\r\n*** You are typing too fast: some lines were dropped. ***\r\n';
/** Default {@link IntermediaryOptions.queueFullNotice}. */
export const DEFAULT_QUEUE_FULL_NOTICE = '\r\n*** Too much typed while the application is away: your oldest lines were dropped. ***\r\n';

/** What to do with a second app while one is connected. */
export type AppPolicy = 'refuse' | 'replace';

/** What to do with users' input while no app is connected. */
export type WhileAppDownPolicy = 'queue' | 'drop';

/** Options of {@link Intermediary}; every one has a default. */
export interface IntermediaryOptions {
  /** Port users connect to. Default {@link DEFAULT_EXTERNAL_PORT}; 0 picks a free one. */
  externalPort?: number;
  /** Address the user port binds to. Default {@link DEFAULT_HOST}. */
  host?: string;
  /** Port the app connects to. Default {@link DEFAULT_CLIENT_PORT}; 0 picks a free one. */
  clientPort?: number;
  /** Address the app port binds to. Default {@link DEFAULT_CLIENT_HOST} (loopback). */
  clientHost?: string;
  /**
   * More listeners for users, besides the plain TCP one on `externalPort`:
   * telnet, TLS, WebSocket (with the browser client page), each on its own
   * port; or a {@link Transport} of your own. Users of every listener sit in
   * the same app and speak the same protocol to it; `connect.data.transport`
   * says which. Default: none.
   *
   * ```ts
   * listeners: [
   *   { kind: 'telnet', port: 4000 },
   *   { kind: 'ws', port: 8080, web: true },
   *   { kind: 'telnet', port: 4443, tls: { cert: 'cert.pem', key: 'key.pem' } },
   * ]
   * ```
   */
  listeners?: Array<ListenerOptions | Transport>;
  /**
   * Port of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`,
   * `/sessions`, `/broadcast`; see docs/operations.md). Default: none (no
   * admin listener); 0 picks a free one.
   */
  adminPort?: number;
  /** Address the admin port binds to. Default {@link DEFAULT_ADMIN_HOST} (loopback). */
  adminHost?: string;
  /**
   * Bearer token the admin API requires (`Authorization: Bearer <token>`).
   * Default: {@link IntermediaryOptions.token}. With neither, the admin
   * listener may only bind to a loopback address (and says in the log that
   * it is open to this host).
   */
  adminToken?: string;
  /** Listen backlog of both ports. Default {@link DEFAULT_BACKLOG}. */
  backlog?: number;
  /** Shared secret the app must send in `hello`. Default: none (any local app may connect). */
  token?: string;
  /** A second app is refused (`IMI_APP_BUSY`) or replaces the first. Default `"refuse"`. */
  appPolicy?: AppPolicy;
  /** With a token: how long an app has to send a valid `hello`. Default {@link DEFAULT_HELLO_TIMEOUT_MS}. */
  helloTimeoutMs?: number;
  /** Without a token: how long to wait for an optional `hello`. Default {@link DEFAULT_LEGACY_HELLO_WAIT_MS}. */
  legacyHelloWaitMs?: number;
  /** Interval between `ping`s to the app. Default {@link DEFAULT_HEARTBEAT_INTERVAL_MS}; 0 disables heartbeats. */
  heartbeatIntervalMs?: number;
  /** An app that sends nothing for this long is dropped. Default {@link DEFAULT_HEARTBEAT_TIMEOUT_MS}. */
  heartbeatTimeoutMs?: number;
  /** Longest user line, in bytes; longer lines are cut. Default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
  /** Largest frame from the app, in bytes. Default 1 MiB (`DEFAULT_MAX_FRAME_BYTES` of `@imi/core`). */
  maxFrameBytes?: number;
  /** Queue users' input while no app is connected, or drop it. Default `"queue"`. */
  whileAppDown?: WhileAppDownPolicy;
  /** Lines kept per user while no app is connected (and unacked per user). Default {@link DEFAULT_MAX_QUEUED_LINES_PER_SESSION}. */
  maxQueuedLinesPerSession?: number;
  /** Bytes kept per user while no app is connected (and unacked per user). Default {@link DEFAULT_MAX_QUEUED_BYTES_PER_SESSION}. */
  maxQueuedBytesPerSession?: number;
  /** Bytes of queued input kept in all. Default {@link DEFAULT_MAX_QUEUED_BYTES_TOTAL}. */
  maxQueuedBytesTotal?: number;
  /** Unacked inputs kept for redelivery, in all. Default {@link DEFAULT_MAX_UNACKED_TOTAL}. */
  maxUnackedTotal?: number;
  /** Most txn ids one app message may list in `dep_txns`. Default {@link DEFAULT_MAX_DEP_TXNS}. */
  maxDepTxns?: number;
  /** Most app messages held waiting for `dep_txns`. Default {@link DEFAULT_MAX_HELD_MESSAGES}. */
  maxHeldMessages?: number;
  /** How long a message waits for its `dep_txns` before it is processed anyway. Default {@link DEFAULT_DEP_WAIT_TIMEOUT_MS}. */
  depWaitTimeoutMs?: number;
  /** How many processed app txn ids are remembered for `dep_txns`. Default {@link DEFAULT_PROCESSED_TXN_MEMORY}. */
  processedTxnMemory?: number;
  /** Output waiting for a slow user, in bytes, before they are disconnected (`"slow"`). Default {@link DEFAULT_MAX_OUTPUT_BUFFER_BYTES}. */
  maxOutputBufferBytes?: number;
  /** Events waiting for a slow app, in bytes, before it is treated as hung. Default {@link DEFAULT_MAX_APP_BUFFER_BYTES}. */
  maxAppBufferBytes?: number;
  /** Most users connected at once; more are refused with {@link IntermediaryOptions.refusedNotice}. Default {@link DEFAULT_MAX_CONNECTIONS}. */
  maxConnections?: number;
  /** Most users connected at once from one address. Default {@link DEFAULT_MAX_CONNECTIONS_PER_IP}. */
  maxConnectionsPerIp?: number;
  /** New connections a second from one address (bursts of twice that). Default {@link DEFAULT_CONNECT_RATE_PER_IP}. */
  connectRatePerIp?: number;
  /** Lines a second from one user; the excess is delayed, then dropped with a notice. Default {@link DEFAULT_INPUT_RATE_PER_SESSION}. */
  inputRatePerSession?: number;
  /** Lines a user may send in a burst before `inputRatePerSession` applies. Default {@link DEFAULT_INPUT_BURST_PER_SESSION}. */
  inputBurstPerSession?: number;
  /** Lines held back by the input rate before more are dropped (the user's reading is paused meanwhile). Default {@link DEFAULT_MAX_DELAYED_LINES_PER_SESSION}. */
  maxDelayedLinesPerSession?: number;
  /**
   * Apply the per-address limits (`maxConnectionsPerIp`, `connectRatePerIp`)
   * and `inputRatePerSession` to loopback users too. Default false: loopback
   * peers are local proxies (a WebSocket gateway, stunnel), tools and tests,
   * which carry many users on one address.
   */
  limitLoopback?: boolean;
  /**
   * The `externalPort` listener expects a PROXY protocol header (v1 or v2)
   * first on every connection, and takes the user's address from it (the
   * other listeners each have their own `proxyProtocol`). See
   * docs/transports.md. Default false.
   */
  proxyProtocol?: boolean;
  /**
   * Who may connect to a listener with `proxyProtocol`: IP addresses and
   * CIDR subnets (`"10.0.0.0/8"`, `"fd00::/8"`; `"0.0.0.0/0"` and `"::/0"`
   * for any). A connection from elsewhere is closed unread and reported as
   * `IMI_PROXY_UNTRUSTED`. Default {@link DEFAULT_PROXY_TRUSTED_ADDRESSES}.
   */
  proxyTrustedAddresses?: readonly string[];
  /**
   * How long a connection to a listener with `proxyProtocol` may take to
   * send its whole PROXY header, in ms; then it is closed and reported as
   * `IMI_BAD_PROXY_HEADER`. Default {@link DEFAULT_PROXY_HEADER_TIMEOUT_MS}.
   */
  proxyHeaderTimeoutMs?: number;
  /**
   * The server's name told to MUD listing crawlers (MSSP's `NAME`) on telnet
   * listeners with `mssp`, unless the app gives its own `NAME` in its `mssp`
   * message. Default {@link DEFAULT_MSSP_NAME}.
   */
  msspName?: string;
  /** Told to a user refused by a connection limit. Default {@link DEFAULT_REFUSED_NOTICE}. */
  refusedNotice?: string | false;
  /** Told to a user once per burst whose lines were dropped by the input rate. Default {@link DEFAULT_RATE_LIMIT_NOTICE}. */
  rateLimitNotice?: string | false;
  /** How long `close()` waits for sockets to flush before destroying them. Default {@link DEFAULT_CLOSE_TIMEOUT_MS}. */
  closeTimeoutMs?: number;
  /** Told to each user once per app outage; `false` for silence. Default {@link DEFAULT_APP_DOWN_NOTICE}. */
  appDownNotice?: string | false;
  /** Told to each user on shutdown; `false` for silence. Default {@link DEFAULT_SHUTDOWN_NOTICE}. */
  shutdownNotice?: string | false;
  /** Told to a user whose line was cut. Default {@link DEFAULT_LINE_TOO_LONG_NOTICE}. */
  lineTooLongNotice?: string | false;
  /** Told to a user once when their queued input overflows. Default {@link DEFAULT_QUEUE_FULL_NOTICE}. */
  queueFullNotice?: string | false;
  /** Written to every user as they connect, before the app hears of them. Default: none. */
  banner?: string;
  /** Users who send nothing for this long are disconnected (`"timeout"`). Default: off. */
  idleTimeoutMs?: number;
  /** Plugins, applied in order in the constructor. */
  plugins?: IntermediaryPlugin[];
  /** A pino logger. Default: silent. */
  logger?: Logger;
}

/** The options with every default filled in. */
export type ResolvedOptions = Required<Omit<IntermediaryOptions, 'token' | 'banner' | 'idleTimeoutMs' | 'adminPort' | 'adminToken' | 'logger' | 'plugins'>> &
  Pick<IntermediaryOptions, 'token' | 'banner' | 'idleTimeoutMs' | 'adminPort' | 'adminToken'>;

/** The defaults, as one object spread under the user's options. */
export const DEFAULT_OPTIONS: ResolvedOptions = {
  externalPort: DEFAULT_EXTERNAL_PORT,
  host: DEFAULT_HOST,
  clientPort: DEFAULT_CLIENT_PORT,
  clientHost: DEFAULT_CLIENT_HOST,
  listeners: [],
  adminHost: DEFAULT_ADMIN_HOST,
  backlog: DEFAULT_BACKLOG,
  appPolicy: 'refuse',
  helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS,
  legacyHelloWaitMs: DEFAULT_LEGACY_HELLO_WAIT_MS,
  heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  heartbeatTimeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  whileAppDown: 'queue',
  maxQueuedLinesPerSession: DEFAULT_MAX_QUEUED_LINES_PER_SESSION,
  maxQueuedBytesPerSession: DEFAULT_MAX_QUEUED_BYTES_PER_SESSION,
  maxQueuedBytesTotal: DEFAULT_MAX_QUEUED_BYTES_TOTAL,
  maxUnackedTotal: DEFAULT_MAX_UNACKED_TOTAL,
  maxDepTxns: DEFAULT_MAX_DEP_TXNS,
  maxHeldMessages: DEFAULT_MAX_HELD_MESSAGES,
  depWaitTimeoutMs: DEFAULT_DEP_WAIT_TIMEOUT_MS,
  processedTxnMemory: DEFAULT_PROCESSED_TXN_MEMORY,
  maxOutputBufferBytes: DEFAULT_MAX_OUTPUT_BUFFER_BYTES,
  maxAppBufferBytes: DEFAULT_MAX_APP_BUFFER_BYTES,
  closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
  maxConnections: DEFAULT_MAX_CONNECTIONS,
  maxConnectionsPerIp: DEFAULT_MAX_CONNECTIONS_PER_IP,
  connectRatePerIp: DEFAULT_CONNECT_RATE_PER_IP,
  inputRatePerSession: DEFAULT_INPUT_RATE_PER_SESSION,
  inputBurstPerSession: DEFAULT_INPUT_BURST_PER_SESSION,
  maxDelayedLinesPerSession: DEFAULT_MAX_DELAYED_LINES_PER_SESSION,
  limitLoopback: false,
  proxyProtocol: false,
  proxyTrustedAddresses: DEFAULT_PROXY_TRUSTED_ADDRESSES,
  proxyHeaderTimeoutMs: DEFAULT_PROXY_HEADER_TIMEOUT_MS,
  msspName: DEFAULT_MSSP_NAME,
  refusedNotice: DEFAULT_REFUSED_NOTICE,
  rateLimitNotice: DEFAULT_RATE_LIMIT_NOTICE,
  appDownNotice: DEFAULT_APP_DOWN_NOTICE,
  shutdownNotice: DEFAULT_SHUTDOWN_NOTICE,
  lineTooLongNotice: DEFAULT_LINE_TOO_LONG_NOTICE,
  queueFullNotice: DEFAULT_QUEUE_FULL_NOTICE,
};

const PORT_OPTIONS = ['externalPort', 'clientPort'] as const;
const POSITIVE_OPTIONS = [
  'backlog',
  'helloTimeoutMs',
  'heartbeatTimeoutMs',
  'maxLineBytes',
  'maxFrameBytes',
  'maxQueuedLinesPerSession',
  'maxQueuedBytesPerSession',
  'maxQueuedBytesTotal',
  'maxUnackedTotal',
  'maxDepTxns',
  'maxHeldMessages',
  'depWaitTimeoutMs',
  'processedTxnMemory',
  'maxOutputBufferBytes',
  'maxAppBufferBytes',
  'closeTimeoutMs',
  'maxConnections',
  'maxConnectionsPerIp',
  'connectRatePerIp',
  'inputRatePerSession',
  'inputBurstPerSession',
  'maxDelayedLinesPerSession',
  'proxyHeaderTimeoutMs',
] as const;
const NON_NEGATIVE_OPTIONS = ['legacyHelloWaitMs', 'heartbeatIntervalMs'] as const;

function configError(message: string): ImiError {
  return new ImiError('IMI_CONFIG', message);
}

/** Whether a bind address is this host only. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.');
}

function checkAdminOptions(resolved: ResolvedOptions): void {
  const { adminPort, adminHost, adminToken } = resolved;
  if (adminPort !== undefined && (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535)) throw configError(`adminPort must be a port number (0-65535), got ${String(adminPort)}`);
  if (typeof adminHost !== 'string' || adminHost.length === 0) throw configError(`adminHost must be an address, got ${String(adminHost)}`);
  if (adminToken !== undefined && (typeof adminToken !== 'string' || adminToken.length === 0)) throw configError('adminToken must be a non-empty string');
  if (adminPort !== undefined && adminToken === undefined && resolved.token === undefined && !isLoopbackHost(adminHost)) {
    throw configError(`adminHost ${adminHost} is not a loopback address: set adminToken (or token) so the admin API is not open to the network`);
  }
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535;
}

function checkListener(entry: unknown, index: number): void {
  const where = `listeners[${index}]`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw configError(`${where} must be an object like {"kind": "telnet", "port": 4000}`);
  if (isTransport(entry as ListenerOptions | Transport)) return;
  const listener = entry as Record<string, unknown>;
  const kind = listener['kind'];
  if (kind !== 'tcp' && kind !== 'telnet' && kind !== 'ws' && kind !== 'ssh') throw configError(`${where}.kind must be "tcp", "telnet", "ws" or "ssh", got ${JSON.stringify(kind)}`);
  if (!isPort(listener['port'])) throw configError(`${where}.port must be a port number (0-65535), got ${String(listener['port'])}`);
  const host = listener['host'];
  if (host !== undefined && (typeof host !== 'string' || host.length === 0)) throw configError(`${where}.host must be an address`);
  const tlsFiles = listener['tls'];
  if (tlsFiles !== undefined) {
    const files = tlsFiles as Record<string, unknown> | null;
    if (typeof files !== 'object' || files === null || typeof files['cert'] !== 'string' || typeof files['key'] !== 'string' || files['cert'] === '' || files['key'] === '') {
      throw configError(`${where}.tls must be {"cert": "<file or PEM>", "key": "<file or PEM>"}`);
    }
  }
  const checkNumber = (name: string, allowZero: boolean): void => {
    const value = listener[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
      throw configError(`${where}.${name} must be ${allowZero ? 'zero or ' : ''}a positive number, got ${String(value)}`);
    }
  };
  const checkBoolean = (name: string): void => {
    if (listener[name] !== undefined && typeof listener[name] !== 'boolean') throw configError(`${where}.${name} must be true or false`);
  };
  if (kind === 'ssh') {
    // SSH brings its own encryption; a PROXY header is not read there.
    for (const name of ['tls', 'proxyProtocol']) if (listener[name] !== undefined && listener[name] !== false) throw configError(`${where}.${name} is not an option of "ssh" listeners`);
    for (const name of ['hostKeyFile', 'authorizedKeysFile']) {
      if (listener[name] !== undefined && (typeof listener[name] !== 'string' || listener[name] === '')) throw configError(`${where}.${name} must be a file path`);
    }
  } else if (kind === 'ws') {
    if (listener['proxyProtocol'] !== undefined && listener['proxyProtocol'] !== false) throw configError(`${where}.proxyProtocol is not supported on "ws" listeners yet (only "tcp" and "telnet")`);
  } else {
    checkBoolean('proxyProtocol');
  }
  if (kind === 'telnet') {
    checkBoolean('mccp2');
    checkBoolean('gmcp');
    checkNumber('negotiationMs', true);
    checkBoolean('nvtOutput');
    checkBoolean('eor');
    checkBoolean('mssp');
    checkBoolean('msdp');
  } else if (kind === 'ws') {
    const path = listener['path'];
    if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw configError(`${where}.path must start with "/", got ${JSON.stringify(path)}`);
    checkBoolean('web');
    if (listener['web'] === true && path === '/') throw configError(`${where}.path cannot be "/" with web: the page is served there`);
    checkNumber('maxPayloadBytes', false);
    checkNumber('pingIntervalMs', true);
    checkAllowedOrigins(listener['allowedOrigins'], where);
  }
}

function checkAllowedOrigins(value: unknown, where: string): void {
  if (value === undefined) return;
  const shape = `${where}.allowedOrigins must be a list of origins like ["https://example.com"], "self" or "*"`;
  if (!Array.isArray(value) || value.length === 0) throw configError(shape);
  for (const entry of value) {
    if (typeof entry !== 'string') throw configError(shape);
    if (entry !== '*' && entry !== 'self' && normalizeOrigin(entry) === undefined) {
      throw configError(`${where}.allowedOrigins: ${JSON.stringify(entry)} is not an origin (scheme http or https, host, optional port, no path), "self" or "*"`);
    }
  }
}

/**
 * Fills in defaults and rejects impossible values.
 *
 * @param options - what the user gave
 * @returns every option with a value
 * @throws ImiError `IMI_CONFIG` naming the option and what it accepts
 */
export function resolveOptions(options: IntermediaryOptions): ResolvedOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const resolved = { ...DEFAULT_OPTIONS, ...defined } as ResolvedOptions & { logger?: unknown; plugins?: unknown };
  delete resolved.logger;
  delete resolved.plugins;
  for (const name of PORT_OPTIONS) {
    const value = resolved[name];
    if (!Number.isInteger(value) || value < 0 || value > 65535) throw configError(`${name} must be a port number (0-65535), got ${String(value)}`);
  }
  for (const name of POSITIVE_OPTIONS) {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw configError(`${name} must be a positive number, got ${String(value)}`);
  }
  for (const name of NON_NEGATIVE_OPTIONS) {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw configError(`${name} must be zero or a positive number, got ${String(value)}`);
  }
  if (resolved.idleTimeoutMs !== undefined && !(resolved.idleTimeoutMs > 0)) throw configError(`idleTimeoutMs must be a positive number, got ${String(resolved.idleTimeoutMs)}`);
  if (resolved.appPolicy !== 'refuse' && resolved.appPolicy !== 'replace') throw configError(`appPolicy must be "refuse" or "replace", got ${String(resolved.appPolicy)}`);
  if (resolved.whileAppDown !== 'queue' && resolved.whileAppDown !== 'drop') throw configError(`whileAppDown must be "queue" or "drop", got ${String(resolved.whileAppDown)}`);
  if (typeof resolved.limitLoopback !== 'boolean') throw configError(`limitLoopback must be true or false, got ${String(resolved.limitLoopback)}`);
  if (typeof resolved.proxyProtocol !== 'boolean') throw configError(`proxyProtocol must be true or false, got ${String(resolved.proxyProtocol)}`);
  if (!Array.isArray(resolved.proxyTrustedAddresses)) throw configError('proxyTrustedAddresses must be an array of addresses or subnets like ["10.0.0.0/8"]');
  proxyTrustList(resolved.proxyTrustedAddresses);
  if (typeof resolved.msspName !== 'string' || !/^[^\x00-\x1f\x7f]{1,64}$/.test(resolved.msspName)) throw configError(`msspName must be 1-64 characters without control characters, got ${JSON.stringify(resolved.msspName)}`);
  if (resolved.token !== undefined && (typeof resolved.token !== 'string' || resolved.token.length === 0)) throw configError('token must be a non-empty string');
  checkAdminOptions(resolved);
  if (!Array.isArray(resolved.listeners)) throw configError('listeners must be an array of listeners like {"kind": "telnet", "port": 4000}');
  resolved.listeners.forEach((entry, index) => checkListener(entry, index));
  if (resolved.heartbeatIntervalMs > 0 && resolved.heartbeatTimeoutMs <= resolved.heartbeatIntervalMs) {
    throw configError(`heartbeatTimeoutMs (${resolved.heartbeatTimeoutMs}) must be longer than heartbeatIntervalMs (${resolved.heartbeatIntervalMs})`);
  }
  return resolved;
}

