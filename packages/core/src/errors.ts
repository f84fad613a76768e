/**
 * The one error table of imi. Every failure that crosses a package boundary
 * or the wire carries one of these stable codes; docs/errors.md has one row
 * per code.
 *
 * @module
 */

/**
 * Every `IMI_*` error code, with what it means and how to solve it.
 *
 * The keys are the codes sent on the wire in `error` frames and used in log
 * lines and metrics labels, so they never change once released.
 */
export const ERROR_TABLE = {
  IMI_BAD_FRAME: {
    description: 'A frame was not valid JSON, or was bigger than the frame limit.',
    howToSolve: 'Send one UTF-8 JSON object per line, each under maxFrameBytes (1 MiB by default).',
  },
  IMI_BAD_MESSAGE: {
    description: 'A frame was valid JSON but not a valid message: missing `param`, or a field of the wrong type.',
    howToSolve: 'Check the message against docs/protocol.md; the error message names the field.',
  },
  IMI_UNKNOWN_PARAM: {
    description: 'A message had a `param` this side does not know.',
    howToSolve: 'Use one of the params listed in docs/protocol.md, or upgrade the intermediary.',
  },
  IMI_UNKNOWN_ID: {
    description: 'A message named a user id that is not connected; it was dropped.',
    howToSolve: 'Expected when a user leaves while a reply is in flight; otherwise check the id.',
  },
  IMI_AUTH: {
    description: 'The app did not present the right token in `hello` in time.',
    howToSolve: 'Send `{"param":"hello","data":{"protocol":1,"token":"..."}}` first, with the token the intermediary was started with.',
  },
  IMI_APP_BUSY: {
    description: 'Another app is already connected and the policy is `refuse`.',
    howToSolve: 'Stop the other app, or start the intermediary with appPolicy "replace" for zero-downtime deploys.',
  },
  IMI_REPLACED: {
    description: 'A newer app connected under appPolicy "replace"; this app was handed over and closed.',
    howToSolve: 'Expected during a deploy: let the old app exit.',
  },
  IMI_DEP_TIMEOUT: {
    description: 'A message waited longer than depWaitTimeoutMs for its `dep_txns`; it was processed anyway.',
    howToSolve: 'Only list txn ids the intermediary will see; keep dependency chains short.',
  },
  IMI_LIMIT: {
    description: 'A configured limit was hit (connections, line or frame size, queue, rate, output buffer).',
    howToSolve: 'The message names the limit and its value; raise it in the options if the load is legitimate.',
  },
  IMI_PLUGIN: {
    description: 'A plugin tap or an event handler threw or rejected; the error was reported and the work went on.',
    howToSolve: 'The message names the hook: fix the plugin tapping it.',
  },
  IMI_LINK_DOWN: {
    description: 'The link between the app and the intermediary is down and the outgoing buffer is full or closed.',
    howToSolve: 'Wait for the `linkUp` event, or raise maxPendingOutgoing in the client options.',
  },
  IMI_CLOSED: {
    description: 'The object was closed; the call cannot proceed.',
    howToSolve: 'Do not use an intermediary or client after close().',
  },
  IMI_CONFIG: {
    description: 'An option or command-line flag had an impossible value.',
    howToSolve: 'The message names the option and what it accepts; see docs/operations.md.',
  },
  IMI_BAD_TELNET: {
    description: 'A telnet client broke the protocol (a subnegotiation without its IAC SE, a GMCP message without a valid package name); the bad part was dropped and input went on.',
    howToSolve: 'A client bug, or a client sending a 255 byte unescaped (cp1251 "я"): it must send IAC IAC for it. The user is not disconnected; the log names the session.',
  },
  IMI_BAD_SNAPSHOT: {
    description: 'A session snapshot given to restoreSession() had an unknown version `v`, a missing or mistyped field, or the id of a live session.',
    howToSolve: 'Restore snapshots taken by snapshotSession() of a compatible intermediary, unchanged; the message names the field.',
  },
  IMI_BAD_ORIGIN: {
    description: 'A WebSocket upgrade came from a browser page whose origin (`Origin` header) the listener does not allow; it was refused with HTTP 403 before any user was created.',
    howToSolve: 'Expected when another site tries to use your WebSocket. If the page is yours (served from another host, or through a proxy that rewrites Host), add its origin to the listener\'s allowedOrigins (`--ws-allowed-origins`).',
  },
  IMI_BAD_PROXY_HEADER: {
    description: 'A connection to a listener with proxyProtocol on did not start with a valid PROXY protocol header (v1 or v2) within proxyHeaderTimeoutMs and the size limit; it was closed before anything was written to it.',
    howToSolve: 'Make the proxy send the header (HAProxy `send-proxy` / `send-proxy-v2`, nginx `proxy_protocol on;`, the NLB target group attribute `proxy_protocol_v2.enabled`), or turn proxyProtocol off on that listener; the message says what was wrong.',
  },
  IMI_PROXY_UNTRUSTED: {
    description: 'A connection to a listener with proxyProtocol on came from an address not in proxyTrustedAddresses; it was closed unread.',
    howToSolve: 'Add the proxy\'s address or subnet to proxyTrustedAddresses, or firewall the port so that only the proxy reaches it; the message names the address.',
  },
  IMI_UPGRADE_FAILED: {
    description: 'An upgrade of the intermediary (`imi-server upgrade`, SIGUSR2) did not happen: the successor could not be started, exited or was not ready within upgradeTimeoutMs, refused the handover (an unknown version, a broken message), or another upgrade was under way. The old process kept serving everyone.',
    howToSolve: 'The log line names the cause; the successor\'s own log (same stderr) says more. Fix it (a broken build on disk, a version too old to read this one) and run the upgrade again; nothing was lost.',
  },
  IMI_WS_RESUME_REFUSED: {
    description: 'A WebSocket client asked to resume a session (subprotocol `imi.resume`) and was refused: its token was unknown, expired or already used (close 4001), the output it missed was no longer kept (4002, the session is closed), its first message was not a valid `resume` message (4003), or the connect rate of its address was exceeded (4013, it may retry). A session\'s token is good once, within wsResumeWindowMs after its connection dropped.',
    howToSolve: 'Expected now and then (a page reconnecting after the window, a stale tab). Many of them from one address suggest someone guessing tokens: they cannot succeed (256 random bits), but firewall the address. A client of your own must present the last token it was given, once, in a binary `{"type":"resume","token":…,"received":…}` message.',
  },
  IMI_WS_BAD_CONTROL: {
    description: 'A WebSocket client speaking `imi.v1` sent a binary message that is not a JSON control message (an object with a `type`); it was ignored and the user stays connected.',
    howToSolve: 'With `imi.v1`, binary messages are control messages (`{"type":"ack","received":N}`, …) and lines are text messages: make the client send its lines as text.',
  },
  IMI_REDIS_DOWN: {
    description: 'Cluster mode: Redis could not be reached (or refused a command). A holder keeps its users connected and queues their input within the usual bounds until Redis is back; a worker stops reading and its leases may expire.',
    howToSolve: 'Check that redis-server runs at the --redis / redis URL and is reachable; the holder and worker reconnect by themselves (docs/cluster.md).',
  },
  IMI_LEASE_LOST: {
    description: 'Cluster mode: a worker lost the lease of a partition (it expired during a pause or an outage, or another worker took it); what it sent for that partition after losing it was dropped, and the new owner gets the unacked input again. Also: a worker does not take such a partition back, for over releaseTimeoutMs, because its app has not acked events it was handed there before (reported once per partition).',
    howToSolve: 'Expected now and then when workers start, stop or stall; frequent reports mean leaseTtlMs is too short for your event-loop pauses (docs/cluster.md). A partition not taken back means a handler that does not finish: it keeps the partition from that worker and, past maxOutstanding events, stops its reading; find it.',
  },
  IMI_BAD_JOURNAL: {
    description: 'Under `imi-server --supervise`, a message between the supervisor and the intermediary it runs (the worker) had the wrong shape, or a session\'s journal record was broken or too big (128 KiB); the message or record was ignored (the previous record of that session is kept; a session never journaled will not survive a crash).',
    howToSolve: 'A bug, or a supervisor and a worker of different versions: run the same imi-server for both (IMI_SUPERVISE_EXEC must point at a matching one). A record too big comes from a huge `state`: keep per-user state small. The log names the field.',
  },
  IMI_WORKER_CRASHED: {
    description: 'Under `imi-server --supervise`, the intermediary (the worker) died: killed, an uncaught error, out of memory. The supervisor kept its TCP and telnet users connected and restarted it; what was only in the dead process\'s memory (lines read but not answered, queued and unacked input, the line being typed) is lost (docs/guarantees.md).',
    howToSolve: 'Find why it died in its last log lines (same stderr) and fix it; a worker that keeps dying makes the supervisor give up (IMI_SUPERVISOR_GAVE_UP).',
  },
  IMI_SUPERVISOR_GAVE_UP: {
    description: 'Under `imi-server --supervise`, the intermediary crashed more than maxRestarts times within restartWindowMs (a crash loop): the supervisor told every user it held (shutdownNotice), closed them and exited 1.',
    howToSolve: 'Read the worker\'s log for why it dies at start (a bad build on disk, a port taken, memory); fix it and start the service again. Raise --max-restarts or lower --restart-window-ms only if the crashes are rare and unrelated.',
  },
} as const satisfies Record<string, { description: string; howToSolve: string }>;

/** A stable `IMI_*` error code: a key of {@link ERROR_TABLE}. */
export type ImiErrorCode = keyof typeof ERROR_TABLE;

/** The codes as an array, in table order (for docs, tests and metrics labels). */
export const ERROR_CODES = Object.keys(ERROR_TABLE) as ImiErrorCode[];

/** Whether a value is one of the known `IMI_*` codes. */
export function isImiErrorCode(value: unknown): value is ImiErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_TABLE, value);
}

/** Options accepted by {@link ImiError} and its subclasses. */
export interface ImiErrorOptions {
  /** The underlying error, kept for logs. */
  cause?: unknown;
  /** The `txn_id` of the message the error is about, when there is one. */
  txnId?: string;
  /** The user id the error is about, when there is one. */
  sessionId?: string;
}

/**
 * Base class of every error imi raises or reports. `code` is stable; the
 * message is for humans and may change.
 */
export class ImiError extends Error {
  /** The stable `IMI_*` code. */
  readonly code: ImiErrorCode;
  /** The `txn_id` of the message this error is about, if any. */
  readonly txnId: string | undefined;
  /** The user id this error is about, if any. */
  readonly sessionId: string | undefined;

  /**
   * @param code - the stable code
   * @param message - a human-readable explanation naming the offending field or limit
   * @param options - cause, txn id and session id
   */
  constructor(code: ImiErrorCode, message: string, options: ImiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImiError';
    this.code = code;
    this.txnId = options.txnId;
    this.sessionId = options.sessionId;
  }
}

/**
 * A frame or message that breaks the wire protocol. Produced by the frame
 * decoder and the message validators; never thrown by them (they return it).
 */
export class ProtocolError extends ImiError {
  /**
   * The `param` of the message at fault, when the frame was read and named a known one (set by
   * `validateAppMessage`): an intermediary tells a bad `hello` from a legacy app's bad first frame by it.
   */
  param: string | undefined = undefined;
  /** The frame was longer than the decoder's `maxFrameBytes` and its bytes were dropped unread (set by `FrameDecoder`). */
  oversized = false;

  /**
   * @param code - `IMI_BAD_FRAME`, `IMI_BAD_MESSAGE` or `IMI_UNKNOWN_PARAM` (or any other code)
   * @param message - what was wrong, naming the field
   * @param options - cause, txn id and session id
   */
  constructor(code: ImiErrorCode, message: string, options: ImiErrorOptions = {}) {
    super(code, message, options);
    this.name = 'ProtocolError';
  }
}

/** A configured limit was hit: always code `IMI_LIMIT`, with the limit's name and value. */
export class LimitError extends ImiError {
  /** The option name of the limit, e.g. `maxLineBytes`. */
  readonly limit: string;
  /** The configured value of the limit. */
  readonly value: number;

  /**
   * @param limit - the option name of the limit
   * @param value - its configured value
   * @param message - what happened
   * @param options - cause, txn id and session id
   */
  constructor(limit: string, value: number, message: string, options: ImiErrorOptions = {}) {
    super('IMI_LIMIT', message, options);
    this.name = 'LimitError';
    this.limit = limit;
    this.value = value;
  }
}
