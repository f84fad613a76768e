/**
 * Every option of the intermediary and its default (`resolve-options.ts`
 * checks them).
 *
 * @module
 */
import { DEFAULT_MAX_FRAME_BYTES } from '@imi/core';
import type { Logger } from 'pino';
import type { IntermediaryPlugin } from './api.js';
import type { ListenerOptions, Transport } from './users/transport.js';

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
/**
 * Default {@link IntermediaryOptions.maxErrorFramesPerSecond}: `error` frames
 * a second to one app connection. An app that errs in a loop would otherwise
 * get a frame per mistake, fill its write buffer and be dropped as hung.
 */
export const DEFAULT_MAX_ERROR_FRAMES_PER_SECOND = 5;
/** Default {@link IntermediaryOptions.errorFrameBurst}: `error` frames one app connection may get at once. */
export const DEFAULT_ERROR_FRAME_BURST = 20;
/** Default {@link IntermediaryOptions.maxErrorLogLinesPerSecond}: log lines a second per `IMI_*` code. */
export const DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND = 10;
/** Default {@link IntermediaryOptions.errorLogBurst}: log lines per `IMI_*` code at once. */
export const DEFAULT_ERROR_LOG_BURST = 20;
/** Default {@link IntermediaryOptions.errorSummaryIntervalMs}: a summary of suppressed reports at most once a second per code. */
export const DEFAULT_ERROR_SUMMARY_INTERVAL_MS = 1_000;
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
/** Default {@link IntermediaryOptions.closeTimeoutMs}: how long a closed user socket (and `close()`) may take to flush. */
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
/**
 * Default {@link IntermediaryOptions.halfCloseGraceMs}: 5 s. A reply takes
 * milliseconds; an app restarting takes seconds, and a scripted client
 * (`nc -q1`) hangs up on its own after a second or so anyway.
 */
export const DEFAULT_HALF_CLOSE_GRACE_MS = 5_000;
/**
 * Default {@link IntermediaryOptions.keepAliveMs}: 60 s of silence before the
 * first TCP keepalive probe. Short enough that a user whose network vanished
 * is gone in minutes rather than hours (the kernel's default is 2 h), long
 * enough to cost nothing: one empty packet a minute on an idle connection.
 */
export const DEFAULT_KEEP_ALIVE_MS = 60_000;
/**
 * Default {@link IntermediaryOptions.telnetProbeMs}: off. TCP keepalive
 * already finds a dead peer that is connected directly, and finds it sooner
 * (a probe in flight makes the kernel retransmit for many minutes instead of
 * sending keepalives); the probe is for users behind a TCP proxy.
 */
export const DEFAULT_TELNET_PROBE_MS = 0;
/** Default {@link IntermediaryOptions.msspName}: what MSSP crawlers are told the server is called when neither the options nor the app name it. */
export const DEFAULT_MSSP_NAME = 'imi';
/** Default {@link IntermediaryOptions.wsResumeWindowMs}: 60 s. */
export const DEFAULT_WS_RESUME_WINDOW_MS = 60_000;
/** Default {@link IntermediaryOptions.wsResumeBufferBytes}: 256 KiB. */
export const DEFAULT_WS_RESUME_BUFFER_BYTES = 256 * 1024;
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
  /**
   * With a token: how long an app has to send a valid `hello`. Without: how long a first frame the app has begun to send
   * may take to be whole (then the app is taken for a legacy one). In ms. Default {@link DEFAULT_HELLO_TIMEOUT_MS}.
   */
  helloTimeoutMs?: number;
  /**
   * Without a token: how long, in ms, an app that has sent nothing is waited for before it is taken for a legacy one
   * (no `hello`, no acks). Once a first frame has begun (blank lines do not count) that frame decides, within
   * `helloTimeoutMs`; a `hello` of the wrong shape, or a first frame over `maxFrameBytes`, is refused. Default
   * {@link DEFAULT_LEGACY_HELLO_WAIT_MS}.
   */
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
  /**
   * `error` frames a second to one app connection (refilled continuously,
   * after {@link IntermediaryOptions.errorFrameBurst}). The rest are counted
   * (`stats().errors`, `imi_errors_total` count every one) and told to the app
   * as one `error` frame per code per `errorSummaryIntervalMs`, with
   * `suppressed` set. Default {@link DEFAULT_MAX_ERROR_FRAMES_PER_SECOND}.
   */
  maxErrorFramesPerSecond?: number;
  /** `error` frames one app connection may get at once before `maxErrorFramesPerSecond` applies. Default {@link DEFAULT_ERROR_FRAME_BURST}. */
  errorFrameBurst?: number;
  /**
   * Log lines a second per `IMI_*` code (after {@link IntermediaryOptions.errorLogBurst});
   * the rest are counted and logged as one summary line per code per
   * `errorSummaryIntervalMs`. Default {@link DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND}.
   */
  maxErrorLogLinesPerSecond?: number;
  /** Log lines per `IMI_*` code at once before `maxErrorLogLinesPerSecond` applies. Default {@link DEFAULT_ERROR_LOG_BURST}. */
  errorLogBurst?: number;
  /** How long after the first suppressed report (log line or `error` frame) its summary comes, in ms. Default {@link DEFAULT_ERROR_SUMMARY_INTERVAL_MS}. */
  errorSummaryIntervalMs?: number;
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
  /**
   * How long a user socket the intermediary closed (kicked, timed out, done
   * after a half-close, shut down by `close()`) may take to flush its last
   * output before it is destroyed, in ms. The app hears `disconnect` at
   * once; only the socket lingers. Default {@link DEFAULT_CLOSE_TIMEOUT_MS}.
   */
  closeTimeoutMs?: number;
  /**
   * After a user half-closed (sent FIN but still reads: `printf … | nc`), how
   * long their session stays open for the app's answer to what they sent,
   * in ms; it closes (`closed`) as soon as the app answered. 0 closes once
   * their last line is delivered. Default {@link DEFAULT_HALF_CLOSE_GRACE_MS}.
   */
  halfCloseGraceMs?: number;
  /**
   * TCP keepalive on `tcp`, `tls` and `telnet` users: silence before the
   * first probe, in ms. A peer whose network vanished is then disconnected
   * (`timeout`) once the kernel's probes go unanswered. 0: off. Default
   * {@link DEFAULT_KEEP_ALIVE_MS}.
   */
  keepAliveMs?: number;
  /**
   * Telnet users: send `IAC NOP` (ignored by every client) this often, in ms,
   * so a dead peer behind a TCP proxy fails a write and is disconnected. 0:
   * off. Default {@link DEFAULT_TELNET_PROBE_MS}.
   */
  telnetProbeMs?: number;
  /**
   * WebSocket users speaking `imi.v1`: how long a session whose connection
   * dropped (without a normal close) is kept for the client to resume it
   * with its token, in ms. The app hears nothing meanwhile; after it, it
   * hears `disconnect` (`timeout`). 0: no resumes (a drop ends the
   * session). Default {@link DEFAULT_WS_RESUME_WINDOW_MS}.
   */
  wsResumeWindowMs?: number;
  /**
   * WebSocket users speaking `imi.v1`: the most output, in bytes, kept for
   * a replay after a resume (what the client has not acknowledged). While
   * the user is connected the oldest is dropped past it; while they are
   * disconnected, output past it closes the session at once (`closed`).
   * Default {@link DEFAULT_WS_RESUME_BUFFER_BYTES}.
   */
  wsResumeBufferBytes?: number;
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
  maxErrorFramesPerSecond: DEFAULT_MAX_ERROR_FRAMES_PER_SECOND,
  errorFrameBurst: DEFAULT_ERROR_FRAME_BURST,
  maxErrorLogLinesPerSecond: DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND,
  errorLogBurst: DEFAULT_ERROR_LOG_BURST,
  errorSummaryIntervalMs: DEFAULT_ERROR_SUMMARY_INTERVAL_MS,
  closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
  halfCloseGraceMs: DEFAULT_HALF_CLOSE_GRACE_MS,
  keepAliveMs: DEFAULT_KEEP_ALIVE_MS,
  telnetProbeMs: DEFAULT_TELNET_PROBE_MS,
  wsResumeWindowMs: DEFAULT_WS_RESUME_WINDOW_MS,
  wsResumeBufferBytes: DEFAULT_WS_RESUME_BUFFER_BYTES,
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
