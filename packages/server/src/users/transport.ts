/**
 * Transports: how users reach the intermediary. A {@link Transport} listens
 * and hands over one {@link UserChannel} per user; the intermediary runs
 * every user the same way over that small interface, whatever carries them
 * (plain TCP lines, telnet, TLS, WebSocket, or a transport of your own).
 *
 * @module
 */
import type { ImiError, RemoteAddress, TelnetInfo } from '@imi/core';
import type { MsspTable } from './telnet/mssp.js';
import type { WsResumeSettings } from './ws-resume.js';

/**
 * What a {@link UserChannel} reports to the connection that runs over it
 * (set with {@link UserChannel.attach}).
 */
export interface ChannelSink {
  /**
   * Input bytes, with the transport's framing removed: telnet commands are
   * stripped; a WebSocket message comes followed by a line end. The
   * connection splits them into lines (`maxLineBytes` applies).
   */
  onData(bytes: Buffer): void;
  /**
   * The peer ended its side (a TCP half-close): no more input will come. The
   * connection delivers the unfinished line, waits (bounded by
   * `halfCloseGraceMs`) until the app answered, then closes. The channel must
   * stay writable meanwhile, and report this only after every byte read
   * before it reached the sink.
   */
  onEnd(): void;
  /**
   * The channel failed. `reason` is what the app will be told in
   * `disconnect.data.reason` (`"error"`, `"timeout"`, `"limit"`; see
   * {@link socketErrorReason}); `onClose` follows.
   */
  onError(reason: string, error?: Error): void;
  /** The channel is closed: nothing more is read or written. Called once. */
  onClose(): void;
  /** The channel's metadata ({@link UserChannel.telnet}) changed: a resize, GMCP turned on, … */
  onMetadata(): void;
  /**
   * A GMCP message from a telnet client: the package name and its JSON text
   * (`''` when none). `protocol` is `"msdp"` for an MSDP variable (its
   * name, its value as JSON).
   */
  onGmcp(packageName: string, json: string, protocol?: 'msdp'): void;
  /**
   * The user threw away the line they were typing (Ctrl-C on an SSH
   * terminal, where the server does the line editing): what was read of it
   * is dropped, as if never typed. Optional for sinks of other channels.
   */
  onDiscardLine?(): void;
  /**
   * The user's client broke its protocol and the channel recovered (a
   * telnet subnegotiation without its end, …): counted and logged, the
   * user stays connected. Optional for sinks of other channels.
   */
  onFault?(error: ImiError): void;
}

/**
 * One user's connection as a transport carries it. The intermediary
 * attaches a sink, writes text, corks the writes of one tick together,
 * pauses reading (rate limits, the `connect` hook) and closes it.
 */
export interface UserChannel {
  /** The transport's name, told to the app in `connect.data.transport`: `"tcp"`, `"tls"`, `"telnet"`, `"telnet+tls"`, `"ws"`, `"ws+tls"`, … */
  readonly transport: string;
  /** The peer's address. */
  readonly remote: RemoteAddress;
  /** For telnet channels: what the client negotiated (sent to the app in `connect.data.telnet`). */
  readonly telnet: Readonly<TelnetInfo> | undefined;
  /** Bytes written and not yet handed to the kernel (what `maxOutputBufferBytes` bounds). */
  readonly writableLength: number;
  /** Whether the channel is closed or failed. */
  readonly destroyed: boolean;
  /**
   * Starts the channel: from now on it reports to `sink`. A transport that
   * negotiates first (telnet) returns a promise that resolves once the
   * opening negotiation is over (or gave up waiting); the user is announced
   * to the app after it.
   */
  attach(sink: ChannelSink): Promise<void> | void;
  /** Writes text (one WebSocket message per call on `ws`). */
  write(text: string): void;
  /** Holds writes until {@link uncork} so the writes of one tick leave together. */
  cork(): void;
  /** Lets corked writes go. */
  uncork(): void;
  /** Stops reading (input stops reaching the sink; bytes pile up in the peer). */
  pause(): void;
  /** Reads again. */
  resume(): void;
  /** Closes after what was written is flushed. */
  end(): void;
  /** Closes at once, dropping unwritten output. */
  destroy(): void;
  /** Telnet (and WebSocket peers speaking the `imi.v1` subprotocol): hides (`false`) or shows (`true`) what the user types. Returns whether the transport can. */
  setEcho?(visible: boolean): boolean;
  /**
   * Stream transports: starts the checks that notice a peer whose network
   * vanished — TCP keepalive after `keepAliveMs` of silence, and on telnet an
   * `IAC NOP` every `probeMs` (each 0: off). A dead peer then fails the
   * channel ({@link ChannelSink.onError}). Called when the user is let in; a
   * later call replaces the probe (`watchPeer(0, 0)` stops it: a handover's commit).
   */
  watchPeer?(keepAliveMs: number, probeMs: number): void;
  /** Telnet only: sends a GMCP message (or MSDP variable: see `protocol` of the app's `gmcp` message). Returns false when neither is on for this user. */
  sendGmcp?(packageName: string, json: string | undefined, protocol?: 'gmcp' | 'msdp'): boolean;
  /**
   * Marks the text just written as a prompt (the app's `output` with
   * `prompt: true`). Telnet: `IAC EOR` when the client agreed to EOR
   * (RFC 885), else `IAC GA` unless suppress-go-ahead is on (RFC 858).
   * Channels without it just have the text written.
   */
  markPrompt?(): void;
}

/** A sink that drops everything: what a channel reports to before it is attached (or when the user is refused). */
export const NULL_SINK: ChannelSink = {
  onData() {},
  onEnd() {},
  onError() {},
  onClose() {},
  onMetadata() {},
  onGmcp() {},
};

/** Where a transport listens, as {@link Transport.listen} reports it. */
export interface TransportAddress {
  /** The transport's name for its users (`"telnet"`, `"ws+tls"`, …). */
  transport: string;
  /** The port it listens on (the real one when 0 was asked). */
  port: number;
  /** The address it binds to. */
  host: string;
  /** WebSocket transports: the path upgrades are accepted on (any path when absent). */
  path?: string;
  /** Whether it serves the browser client page (at `/`). */
  web?: boolean;
}

/**
 * A listener for users. Give one to {@link IntermediaryOptions.listeners}
 * to plug in a transport of your own; the built-in ones are described by
 * {@link ListenerOptions}.
 */
export interface Transport {
  /**
   * Binds and starts accepting. Each new user is handed over with `accept`,
   * before anything is read from them.
   *
   * @param accept - the intermediary's entry point for new users
   * @param backlog - the listen backlog to use
   * @param fd - a listening socket inherited from the process this one
   *   succeeds (an upgrade): listen on it rather than bind the port. A
   *   transport that ignores it cannot be handed over.
   * @returns where it listens
   * @throws the listen error (e.g. `EADDRINUSE`, a bad TLS certificate); nothing stays bound then
   */
  listen(accept: (channel: UserChannel) => void, backlog: number, fd?: number): Promise<TransportAddress>;
  /** Stops accepting. Channels already handed over are not touched (the intermediary closes them). */
  close(): Promise<void>;
}

/** A certificate and its key for a TLS listener: each a PEM text, or the path of a PEM file. */
export interface TlsFiles {
  /** The certificate chain (PEM text, or a file path). */
  cert: string;
  /** The private key (PEM text, or a file path). */
  key: string;
}

/** What every built-in listener has. */
interface BaseListenerOptions {
  /** The port; 0 picks a free one. */
  port: number;
  /** The address to bind to. Default: the intermediary's {@link IntermediaryOptions.host}. */
  host?: string;
  /** Serve over TLS with this certificate and key. */
  tls?: TlsFiles;
}

/** What the stream listeners (`tcp`, `telnet`, with or without TLS) have besides the common options. */
interface StreamListenerOptions extends BaseListenerOptions {
  /**
   * Every connection starts with a PROXY protocol header (v1 or v2, from
   * HAProxy, nginx `stream`, an AWS NLB): the user's address is the one the
   * header gives, for the per-address limits and `connect.data.remote`.
   * Only {@link IntermediaryOptions.proxyTrustedAddresses} may connect. With
   * `tls`, the header comes before the TLS handshake. Default false.
   */
  proxyProtocol?: boolean;
}

/** Plain lines over TCP (`"tcp"`), or over TLS (`"tls"`) — what netcat and `openssl s_client` speak. */
export interface TcpListenerOptions extends StreamListenerOptions {
  /** Discriminant. */
  kind: 'tcp';
}

/** Telnet (`"telnet"`, or `"telnet+tls"` with `tls`): MUD clients, the `telnet` command. */
export interface TelnetListenerOptions extends StreamListenerOptions {
  /** Discriminant. */
  kind: 'telnet';
  /** Offer MCCP2 (zlib compression of output). Default false. */
  mccp2?: boolean;
  /** Offer GMCP. Default true. */
  gmcp?: boolean;
  /**
   * How long to wait for the client's answers (window size, terminal type)
   * before the app hears of the user, in ms. Default
   * {@link DEFAULT_TELNET_NEGOTIATION_MS}; 0 announces at once (the info then
   * follows in `telnet` messages).
   */
  negotiationMs?: number;
  /**
   * Write the app's text as NVT output (RFC 854): a bare LF becomes
   * `CR LF`, a bare CR `CR NUL` (`CR LF` stays), so Windows telnet and
   * PuTTY do not show a staircase. Default true; false writes it as it is
   * (IAC still doubled).
   */
  nvtOutput?: boolean;
  /** Offer EOR (RFC 885) at connect, so prompts end with `IAC EOR` for clients that agree. Default true. */
  eor?: boolean;
  /**
   * Offer MSSP (telnet option 70): a MUD listing crawler that answers
   * `DO MSSP` gets the server's variables ({@link IntermediaryOptions.msspName},
   * the player count, the uptime, and the app's `mssp` message). Default true.
   */
  mssp?: boolean;
  /** Offer MSDP (telnet option 69): its variables reach the app as `gmcp` messages with `protocol: "msdp"`. Default true. */
  msdp?: boolean;
}

/** WebSocket (`"ws"`, or `"ws+tls"` with `tls`): one text message is one line, each output is one message. */
export interface WsListenerOptions extends BaseListenerOptions {
  /** Discriminant. */
  kind: 'ws';
  /** Accept upgrades on this path only (others get 404). Default: any path; `/ws` when `web` is on. */
  path?: string;
  /** Also serve the browser client page at `/` (a terminal in the browser). Default false. */
  web?: boolean;
  /** Largest message accepted, in bytes; a bigger one closes the connection (1009). Default {@link DEFAULT_WS_MAX_PAYLOAD_BYTES}. */
  maxPayloadBytes?: number;
  /** Interval between pings; a user who has not answered the previous one is dropped (`timeout`). Default {@link DEFAULT_WS_PING_INTERVAL_MS}; 0 disables. */
  pingIntervalMs?: number;
  /**
   * Browser origins whose pages may open a WebSocket here (`Origin` header
   * of the upgrade); others get 403 and `IMI_BAD_ORIGIN`. Entries:
   * `"https://example.com"` (scheme, host, port if not the default),
   * `"self"` (the origin the request names: the listener's scheme and the
   * `Host` header; `https` too on a plain listener behind a TLS proxy),
   * `"*"` (any). An upgrade without `Origin` (not a browser) is always
   * let in. Default `["self"]` with `web`, `["*"]` without.
   */
  allowedOrigins?: string[];
}

/**
 * SSH (`"ssh"`): `ssh -p 2222 play@host` gets the session a telnet user
 * gets (window size and terminal type from the pty request, in
 * `connect.data.telnet`; the server echoes unless the app hides input).
 * SSH sessions cannot be handed to a successor process (their crypto state
 * lives in this one), like TLS.
 */
export interface SshListenerOptions {
  /** Discriminant. */
  kind: 'ssh';
  /** The port; 0 picks a free one. */
  port: number;
  /** The address to bind to. Default: the intermediary's {@link IntermediaryOptions.host}. */
  host?: string;
  /**
   * The host key file: read at `listen()`, or made (Ed25519) and written
   * there, mode 0600, when it does not exist, so clients see the same host
   * key after a restart. Default {@link DEFAULT_SSH_HOST_KEY_FILE}.
   */
  hostKeyFile?: string;
  /**
   * Only users whose public key is listed in this file (OpenSSH
   * `authorized_keys` format) may log in; the key's fingerprint reaches the
   * app in `connect.data.telnet.ssh.keyFingerprint`. Default: anyone, with
   * any user name and no password (the app does its own login).
   */
  authorizedKeysFile?: string;
}

/** A built-in listener, as given in {@link IntermediaryOptions.listeners} (or a config file). */
export type ListenerOptions = TcpListenerOptions | TelnetListenerOptions | WsListenerOptions | SshListenerOptions;

/** Default {@link SshListenerOptions.hostKeyFile}: `imi-ssh-host-key` in the working directory. */
export const DEFAULT_SSH_HOST_KEY_FILE = 'imi-ssh-host-key';

/** Default {@link TelnetListenerOptions.negotiationMs}: how long a telnet user's opening negotiation may take before the app hears of them. */
export const DEFAULT_TELNET_NEGOTIATION_MS = 500;
/** Default {@link WsListenerOptions.maxPayloadBytes}: 64 KiB (lines longer than `maxLineBytes` are still cut and reported). */
export const DEFAULT_WS_MAX_PAYLOAD_BYTES = 64 * 1024;
/** Default {@link WsListenerOptions.pingIntervalMs}: 30 s. */
export const DEFAULT_WS_PING_INTERVAL_MS = 30_000;

/**
 * What the app is told when a user's socket fails: `"timeout"` when the
 * kernel gave up on a silent peer (`ETIMEDOUT`: keepalive probes or
 * retransmissions unanswered — the network vanished), `"error"` otherwise
 * (a reset, a broken pipe).
 */
export function socketErrorReason(error: NodeJS.ErrnoException): 'timeout' | 'error' {
  return error.code === 'ETIMEDOUT' ? 'timeout' : 'error';
}

/** Whether a `listeners` entry is a {@link Transport} object rather than {@link ListenerOptions}. */
export function isTransport(value: ListenerOptions | Transport): value is Transport {
  return typeof (value as Partial<Transport>).listen === 'function';
}

/** The name users of a built-in listener get in `connect.data.transport`. */
export function transportName(options: ListenerOptions): string {
  if (options.kind === 'ssh') return 'ssh';
  if (options.kind === 'tcp') return options.tls === undefined ? 'tcp' : 'tls';
  return options.tls === undefined ? options.kind : `${options.kind}+tls`;
}

/** How the listeners with `proxyProtocol` read the PROXY header (from the intermediary's options). */
export interface ProxyProtocolSettings {
  /** {@link IntermediaryOptions.proxyTrustedAddresses}: addresses and subnets that may send a header. */
  trustedAddresses: readonly string[];
  /** {@link IntermediaryOptions.proxyHeaderTimeoutMs}: how long a header may take to arrive. */
  headerTimeoutMs: number;
  /** Counts and logs a connection refused before it became a user (`IMI_BAD_PROXY_HEADER`, `IMI_PROXY_UNTRUSTED`). */
  report(error: ImiError): void;
}

/** What the built-in transports need from the intermediary besides their own options. */
export interface TransportContext {
  /** Where to bind when the listener names no host. */
  host: string;
  /** Reports an error of the listener itself (not of a user's connection), for the log. */
  onListenerError(error: Error): void;
  /** Counts and logs a refused peer that never became a user (`IMI_BAD_ORIGIN`), like the intermediary's own reports. */
  report?(error: ImiError): void;
  /** For listeners with `proxyProtocol`. Default: the defaults of the intermediary's options, refusals not reported. */
  proxy?: ProxyProtocolSettings;
  /** The MSSP variables to answer crawlers with, as they are now (telnet listeners with `mssp`). Default: only `NAME`. */
  mssp?: () => MsspTable;
  /** For WebSocket listeners: resume tokens and their options. Default: no resumes. */
  wsResume?: WsResumeSettings;
}
