/**
 * The imi wire protocol, v1: the messages each side sends, as TypeScript
 * types. docs/protocol.md is the prose version of the same contract.
 *
 * Field names keep the vocabulary of the Perl IO::Multiplex::Intermediary
 * (`param`, `data.id`, `data.value`, `txn_id`, `dep_txns`, `updates`) so apps
 * written against it keep working.
 *
 * @module
 */
import type { ImiErrorCode } from './errors.js';

/** The protocol version this package speaks (sent in `hello.protocol`). */
export const PROTOCOL_VERSION = 1;

/** Any value JSON can carry. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object: what per-user `state` and `updates` are. */
export type JsonObject = { [key: string]: JsonValue };

/** Where a user connects from. */
export interface RemoteAddress {
  /** The peer's IP address as Node reports it (IPv6 form for `::ffff:` mapped addresses). */
  address: string;
  /** The peer's TCP port. */
  port: number;
}

/** Fields every intermediary → app message may carry besides `param` and `data`. */
export interface IntermediaryEnvelope {
  /** A UUID naming this message; an app may list it in `dep_txns`. */
  txn_id: string;
  /** Present on `connect`, `input` and `disconnect` once the app said `acks: true`: grows by one per message over the intermediary's lifetime. Acknowledge with `ack`. */
  seq?: number;
  /** `true` when this message was already sent to an earlier app that did not ack it. */
  redelivered?: boolean;
}

/** A user is connected (or, with `resumed: true`, is still connected after an app (re)connect). */
export interface ConnectMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'connect';
  /** The user. */
  data: {
    /** The user's session id (a UUID), stable for the life of the connection. */
    id: string;
    /** How the user is connected: `"tcp"`, `"telnet"`, `"ws"`, `"tls"`, … */
    transport: string;
    /** The user's peer address. Absent only from the original Perl intermediary, which never sent it. */
    remote?: RemoteAddress;
    /** When the user connected, in ms since the epoch. Absent only from the original Perl intermediary. */
    connectedAt?: number;
    /**
     * `true` when sent as part of a resync to an app that (re)connected.
     * Absent only from the original Perl intermediary: then a user announced
     * before the end of the resync is a resumed one.
     */
    resumed?: boolean;
    /** What apps stored for this user with `updates`; `{}` for a new user. */
    state: JsonObject;
    /**
     * For telnet users (`transport` `"telnet"` or `"telnet+tls"`): what the
     * client negotiated. Absent for other transports.
     */
    telnet?: TelnetInfo;
  };
}

/**
 * What a telnet client negotiated with the intermediary (RFC 854/855 and the
 * MUD standards). The intermediary keeps it for the life of the connection,
 * so an app that restarts gets it again in `connect.data.telnet` without the
 * client renegotiating; changes arrive as `telnet` messages.
 */
export interface TelnetInfo {
  /** The client's window size (NAWS, RFC 1073), once it sent one; 0 means unknown. */
  naws?: {
    /** Columns. */
    width: number;
    /** Rows. */
    height: number;
  };
  /**
   * Terminal types (TTYPE, RFC 1091), in the order the client gave them. A
   * client that speaks MTTS gives its name, its terminal type, then
   * `"MTTS <bits>"`; others give one type.
   */
  ttype?: string[];
  /** The MTTS bit field (1 ANSI, 2 VT100, 4 UTF-8, 8 256 colours, 256 truecolor, …), when the client sent `MTTS <n>`. */
  mtts?: number;
  /** Whether the user's typing is shown (false while the app hides it, e.g. at a password prompt). */
  echo: boolean;
  /** Whether suppress-go-ahead (SGA) is on. */
  sga: boolean;
  /** Whether GMCP is on: the app may send `gmcp` to this user and receives theirs. */
  gmcp: boolean;
  /** The client's GMCP `Core.Hello` (`{"client": …, "version": …}`), once sent. */
  gmcpHello?: JsonObject;
  /** The GMCP packages the client supports (`Core.Supports.Set/Add/Remove`), e.g. `["Char 1", "Room 1"]`. */
  gmcpSupports?: string[];
  /** Whether output to this user is compressed (MCCP2). */
  mccp2: boolean;
  /** Whether the client agreed to EOR (RFC 885): prompts end with `IAC EOR` rather than `IAC GA`. */
  eor: boolean;
  /**
   * Whether MSDP is on (the client agreed to the intermediary's `WILL MSDP`):
   * its MSDP variables arrive as `gmcp` messages with `protocol: "msdp"`,
   * and `gmcp` messages can be sent to it as MSDP. Present on telnet
   * listeners that offer MSDP (their `msdp` option, on by default).
   */
  msdp?: boolean;
  /**
   * SSH users (`transport` `"ssh"`): the name they logged in with, and the
   * SHA-256 fingerprint of the public key they authenticated with (absent
   * when they logged in without one).
   */
  ssh?: SshLogin;
}

/** How an SSH user logged in ({@link TelnetInfo.ssh}). */
export interface SshLogin {
  /** The user name given to `ssh` (`ssh play@host`: `"play"`). */
  user: string;
  /** `SHA256:…` (as `ssh-keygen -l` prints it) of the key they authenticated with; absent without one. */
  keyFingerprint?: string;
}

/** A user sent a line. */
export interface InputMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'input';
  /** The line. */
  data: {
    /** The user's session id. */
    id: string;
    /** The line, UTF-8 decoded, end-of-line stripped. */
    value: string;
  };
}

/** Why a user's connection ended, as sent in `disconnect.data.reason`. */
export type DisconnectReason = 'closed' | 'timeout' | 'kicked' | 'error' | 'shutdown' | 'slow' | 'limit' | (string & {});

/** A user is gone. */
export interface UserDisconnectMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'disconnect';
  /** The user who left. */
  data: {
    /** The user's session id. */
    id: string;
    /** Why: `"closed"` (they left), `"timeout"`, `"kicked"` (the app or an admin), `"error"`, `"shutdown"`, `"slow"`, `"limit"`. */
    reason: DisconnectReason;
  };
}

/** End of a resync: every live user has been announced with `connect` (or, with `known`, is held by the app already). */
export interface SyncedMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'synced';
  /** The resync's size. */
  data: {
    /** How many users are connected (announced now, or known to the app as it said in `hello.known`). */
    count: number;
    /** The app's `hello.known` was honoured: the users it listed and was not told left are connected. */
    known?: boolean;
    /** The intermediary's `maxFrameBytes` (bytes): how long the app's frames (its next `hello.known`) may be. */
    maxFrameBytes?: number;
    /** The peer takes per-event acks (`done`): only the cluster worker's gateway says so, as Redis acks entry by entry (docs/protocol.md). */
    eventAcks?: boolean;
  };
}

/** A liveness probe: answer with `pong` carrying the same `ts`. */
export interface PingMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'ping';
  /** The probe. */
  data: {
    /** The intermediary's clock when it sent the ping (ms since the epoch). */
    ts: number;
  };
}

/** The app sent something wrong, or is refused. */
export interface ErrorMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'error';
  /** What went wrong. */
  data: {
    /** The stable `IMI_*` code. */
    code: ImiErrorCode;
    /** A human-readable explanation. */
    message: string;
    /** The `txn_id` of the app message at fault, when it had one. */
    txn_id?: string;
  };
}

/**
 * The `reason` of a `shutdown` that ends the app link because a successor process takes over the intermediary's
 * sockets in an upgrade (`imi-server upgrade`, SIGUSR2, `POST /upgrade`). The successor already holds the app port's
 * listening socket (a connection made now waits in its accept queue), so an app reconnects at once instead of after
 * its reconnect policy's first delay (`@imi/client` does): that delay was most of the time users waited for the app
 * after an upgrade of a small intermediary. A planned restart under `--supervise` says `restart` instead: its
 * supervisor turns apps away until the next worker listens.
 */
export const HANDOVER_SHUTDOWN_REASON = 'handover';

/** The intermediary is stopping. */
export interface ShutdownMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'shutdown';
  /** Why. */
  data: {
    /** E.g. `"SIGTERM"`, `"close"`, {@link HANDOVER_SHUTDOWN_REASON} (`"handover"`: an upgrade's successor takes over), or `"restart"` (a planned restart under `--supervise`). */
    reason: string;
  };
}

/** A telnet user's negotiated options changed (window resized, GMCP turned on, …). */
export interface TelnetInfoMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'telnet';
  /** The user and their telnet info. */
  data: {
    /** The user's session id. */
    id: string;
    /** The whole info as it is now (not only what changed). */
    telnet: TelnetInfo;
  };
}

/** A GMCP message from a telnet user's client (a MUD client's structured channel). */
export interface GmcpMessage extends IntermediaryEnvelope {
  /** Discriminant. */
  param: 'gmcp';
  /** The user and the message. */
  data: {
    /** The user's session id. */
    id: string;
    /** The GMCP package and message name, e.g. `"Core.Hello"` or `"Char.Login.Credentials"`. */
    package: string;
    /** The message's JSON payload, parsed; absent when the message had none. */
    value?: JsonValue;
    /**
     * `"msdp"` when it came as MSDP: `package` is the MSDP variable's name
     * and `value` its value (a string, an array for `MSDP_ARRAY`, an object
     * for `MSDP_TABLE`). Absent for GMCP.
     */
    protocol?: 'msdp';
  };
}

/** Every message the intermediary sends to the app, discriminated on `param`. */
export type IntermediaryMessage =
  | ConnectMessage
  | InputMessage
  | UserDisconnectMessage
  | SyncedMessage
  | PingMessage
  | ErrorMessage
  | ShutdownMessage
  | TelnetInfoMessage
  | GmcpMessage;

/** The `param` values of {@link IntermediaryMessage}. */
export type IntermediaryParam = IntermediaryMessage['param'];

/** Fields any app → intermediary message may carry besides `param` and `data`. */
export interface AppEnvelope {
  /** The app's id for this message; other messages may wait for it with `dep_txns`. */
  txn_id?: string;
  /** Hold this message until every listed txn id has been processed (bounded in count and age). */
  dep_txns?: string[];
  /** Merged into the state kept for the user in `data.id`; a key set to `null` is deleted. */
  updates?: JsonObject;
  /** A `seq` acknowledged together with this message (cumulative). */
  ack?: number;
  /** One event's `seq` acknowledged alone (whatever earlier ones still run): only to a peer whose `synced` said `eventAcks`; an intermediary ignores it. */
  done?: number;
}

/** Optional first frame; required when the intermediary has a token. */
export interface HelloMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'hello';
  /** Who the app is and what it wants. */
  data: {
    /** The protocol version the app speaks (1). */
    protocol?: number;
    /** The shared secret, when the intermediary requires one. */
    token?: string;
    /** `true` to receive `seq` on events and have unacked input redelivered. */
    acks?: boolean;
    /** A name for logs and stats. */
    name?: string;
    /**
     * The session ids this process holds, when it reconnects: those still connected are not announced again (named
     * ones gone get `disconnect`, changed telnet info a `telnet`; `synced` says `known: true`). Bounded by
     * `maxFrameBytes`; `@imi/client` sends up to {@link MAX_KNOWN_IN_HELLO} ids, none past that. See docs/protocol.md.
     */
    known?: string[];
  };
}

/** Most session ids `@imi/client` lists in `hello.known` (16,384 UUIDs: about 640 KiB of JSON, under the default 1 MiB `maxFrameBytes`); past it, a full resync. */
export const MAX_KNOWN_IN_HELLO = 16_384;

/** Longest id (UTF-16 code units) `hello.known` may name, else the hello is `IMI_BAD_MESSAGE`: UUIDs are 36; the rest is room for other schemes. */
export const MAX_KNOWN_ID_LENGTH = 128;

/** Send text to one user. */
export interface OutputMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'output';
  /** What to write, and to whom. */
  data: {
    /** The user's session id. */
    id: string;
    /**
     * Written to the user (add your own line endings). Plain TCP and
     * WebSocket users get it verbatim; telnet users get it as NVT text
     * (RFC 854: a bare LF becomes CR LF, a bare CR becomes CR NUL, IAC is
     * doubled) unless the listener's `nvtOutput` is off.
     */
    value: string;
    /**
     * The text is a prompt (absent: false): telnet users' clients are told
     * where it ends with `IAC EOR` when they agreed to EOR (RFC 885), else
     * with `IAC GA` unless suppress-go-ahead is on (RFC 858). Other
     * transports just get the text.
     */
    prompt?: boolean;
  };
}

/** Close a user's connection after flushing what was sent before (and an optional last text). */
export interface KickMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'disconnect';
  /** Whom to disconnect. */
  data: {
    /** The user's session id. */
    id: string;
    /** A last text written before closing. */
    value?: string;
  };
}

/**
 * The original Perl client's answer to a user's `disconnect`
 * (`{"param":"disconnect","data":{"success":1}}`, no `id`): accepted and ignored.
 */
export interface LegacyDisconnectAck extends AppEnvelope {
  /** Discriminant. */
  param: 'disconnect';
  /** No `id`: that is how it is told apart from {@link KickMessage}. */
  data: {
    /** Always 1 from the Perl client. */
    success?: JsonValue;
    /** Never present. */
    id?: undefined;
  };
}

/** Send text to every user. */
export interface BroadcastMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'broadcast';
  /** What to write, and to whom not. */
  data: {
    /** Written to every user verbatim. */
    value: string;
    /** Session ids that do not get it. */
    except?: string[];
  };
}

/** Only stores `updates` for the user in `data.id`. */
export interface StateMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'state';
  /** Whose state. */
  data: {
    /** The user's session id. */
    id: string;
  };
}

/** Cumulative acknowledgement: every message up to and including `seq` is handled. */
export interface AckMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'ack';
  /** How far. */
  data: {
    /** The highest handled `seq`. */
    seq: number;
  };
}

/** Answer to `ping`. */
export interface PongMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'pong';
  /** Echo of the ping. */
  data: {
    /** The `ts` of the ping being answered. */
    ts?: number;
  };
}

/** Nothing to do: the original client's answer to events it does not handle. */
export interface NullMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'null';
  /** Ignored. */
  data?: JsonValue;
}

/** Changes a telnet user's terminal settings. For users on other transports it does nothing. */
export interface TelnetControlMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'telnet';
  /** Whom, and what to change. */
  data: {
    /** The user's session id. */
    id: string;
    /**
     * `false` hides what the user types (a password prompt: the intermediary
     * says WILL ECHO, so the client stops echoing), `true` shows it again.
     */
    echo?: boolean;
  };
}

/** Sends a GMCP message to a telnet user's client; dropped when GMCP is not on for them. */
export interface SendGmcpMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'gmcp';
  /** Whom, and what. */
  data: {
    /** The user's session id. */
    id: string;
    /** The GMCP package and message name, e.g. `"Char.Vitals"`: no spaces, at most 128 characters. */
    package: string;
    /** The payload, sent as JSON; absent for a message without one. */
    value?: JsonValue;
    /**
     * Which protocol carries it: `"gmcp"` (only to users with GMCP on),
     * `"msdp"` (only to users with MSDP on: `package` is the variable name,
     * `value` its value as MSDP), or absent: GMCP when the user has it on,
     * else MSDP when that is on, else dropped.
     */
    protocol?: 'gmcp' | 'msdp';
  };
}

/** A value of an MSSP variable: text, a number (sent as its decimal text), or several values for one variable (`PORT`, `CODEBASE`, …). */
export type MsspValue = string | number | Array<string | number>;

/**
 * Sets the app's MSSP variables (MUD Server Status Protocol), which the
 * intermediary answers MUD listing crawlers with. It keeps the last set
 * across app restarts; each message replaces the previous set. `NAME`,
 * `PLAYERS` and `UPTIME` are filled in by the intermediary (an app's `NAME`
 * replaces the configured one; its `PLAYERS` and `UPTIME` are ignored).
 */
export interface MsspMessage extends AppEnvelope {
  /** Discriminant. */
  param: 'mssp';
  /** The variables. */
  data: {
    /** Variable names (the MSSP spec's, e.g. `"GENRE"`, `"CODEBASE"`, `"PORT"`) to values. */
    variables: { [name: string]: MsspValue };
  };
}

/** Every message an app sends to the intermediary, discriminated on `param`. */
export type AppMessage =
  | HelloMessage
  | OutputMessage
  | KickMessage
  | LegacyDisconnectAck
  | BroadcastMessage
  | StateMessage
  | AckMessage
  | PongMessage
  | NullMessage
  | TelnetControlMessage
  | SendGmcpMessage
  | MsspMessage;

/** The `param` values of {@link AppMessage}. */
export type AppParam = AppMessage['param'];
