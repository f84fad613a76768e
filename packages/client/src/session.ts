/**
 * The app-side handle of one connected user.
 *
 * @module
 */
import type { ConnectMessage, JsonObject, JsonValue, RemoteAddress, TelnetInfo } from '@imi/core';
import type { OutputOptions, SendOptions } from './send-options.js';

/**
 * What a session calls back into: the client's sending methods, and
 * nothing else, so this file does not depend on the client.
 */
export interface SessionOwner {
  send(id: string, text: string, options?: OutputOptions): string;
  setState(id: string, updates: JsonObject, options?: Omit<SendOptions, 'updates'>): string;
  disconnect(id: string, farewell?: string, options?: SendOptions): string;
  setEcho(id: string, visible: boolean, options?: Omit<SendOptions, 'updates'>): string;
  sendGmcp(id: string, packageName: string, value?: JsonValue, options?: Omit<SendOptions, 'updates'> & { protocol?: 'gmcp' | 'msdp' }): string;
}

/** What the client changes on a session over its life; kept out of the public type. */
export interface SessionSlots {
  resumed: boolean;
  state: Readonly<JsonObject>;
  connected: boolean;
  telnet: Readonly<TelnetInfo> | undefined;
}

/**
 * Reads a session's slots (its #private field): set by the class's static
 * block, the one way in from outside the class. A field, not a WeakMap
 * entry per session: a resync makes thousands of sessions at once, and
 * WeakMap entries cost more to make and to collect.
 */
let slotsOf: (session: Session) => SessionSlots;

/** The state of a user for whom apps stored nothing (most new users): one shared frozen object. */
const EMPTY_STATE: Readonly<JsonObject> = Object.freeze({});

/** The address of users of the original Perl intermediary, which never told it. */
const UNKNOWN_REMOTE: Readonly<RemoteAddress> = Object.freeze({ address: '', port: 0 });

/** A plain copy of a session's fields, as {@link Session.toJSON} returns it (for logs). */
export interface SessionSnapshot {
  /** See {@link Session.id}. */
  id: string;
  /** See {@link Session.transport}. */
  transport: string;
  /** See {@link Session.remote}. */
  remote: RemoteAddress;
  /** See {@link Session.connectedAt}. */
  connectedAt: number;
  /** See {@link Session.resumed}. */
  resumed: boolean;
  /** See {@link Session.connected}. */
  connected: boolean;
  /** See {@link Session.state}. */
  state: JsonObject;
  /** See {@link Session.telnet}; only for telnet users. */
  telnet?: TelnetInfo;
}

/** The mutable part of a session, for the client only (not exported from the package). */
export function sessionSlots(session: Session): SessionSlots {
  return slotsOf(session);
}

/** Whether an object has no own enumerable keys (without making an array of them). */
function isEmpty(object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return false;
  return true;
}

/**
 * Merges `updates` into `state` the way the intermediary does: each key is
 * set, a key set to `null` is deleted. Returns a new frozen object so a
 * state the app holds never changes under it.
 */
export function mergeState(state: Readonly<JsonObject>, updates: Readonly<JsonObject>): Readonly<JsonObject> {
  const next: JsonObject = { ...state };
  for (const key of Object.keys(updates)) {
    const value: JsonValue | undefined = updates[key];
    if (value === null || value === undefined) delete next[key];
    else next[key] = value;
  }
  return Object.freeze(next);
}

/**
 * One user connected to the intermediary, as the app sees them. Sessions are
 * created by the {@link Client} (from `connect` and resyncs) and listed in
 * {@link Client.sessions}; an app never constructs one.
 *
 * The methods are shorthands for the client's: `session.send(text)` is
 * `client.send(session.id, text)`.
 */
export class Session {
  /** The user's id (a UUID from the intermediary), stable for the life of their connection. */
  readonly id: string;
  /** How the user is connected: `"tcp"`, `"telnet"`, `"ws"`, … */
  readonly transport: string;
  /**
   * The user's address. The original Perl intermediary never sent one: its
   * users have `{ address: "", port: 0 }`.
   */
  readonly remote: Readonly<RemoteAddress>;
  /**
   * When the user connected to the intermediary, in ms since the epoch (not
   * when this app heard of them). The original Perl intermediary never sent
   * it: for its users this is when this app heard of them.
   */
  readonly connectedAt: number;
  // A #private field: util.inspect then shows the user, not the whole client.
  readonly #client: SessionOwner;
  readonly #slots: SessionSlots;

  static {
    slotsOf = (session) => session.#slots;
  }

  /**
   * @internal Sessions are made by the client.
   * @param client - the client that owns it (its sending methods)
   * @param data - the `data` of the `connect` message that announced the user
   * @param resumed - announced in a resync (the intermediary's `data.resumed`, or the client's guess when it has none)
   */
  constructor(client: SessionOwner, data: ConnectMessage['data'], resumed: boolean) {
    this.#client = client;
    this.id = data.id;
    this.transport = data.transport;
    const remote = data.remote;
    this.remote = remote === undefined ? UNKNOWN_REMOTE : Object.freeze({ address: remote.address, port: remote.port });
    this.connectedAt = data.connectedAt ?? Date.now();
    const state = data.state;
    this.#slots = {
      resumed,
      state: state === undefined || isEmpty(state) ? EMPTY_STATE : Object.freeze({ ...state }),
      connected: true,
      telnet: data.telnet === undefined ? undefined : Object.freeze({ ...data.telnet }),
    };
  }

  /**
   * `true` when this app first heard of the user in a resync (the user was
   * already connected when the app started or restarted): greet them back
   * rather than anew, and find what you stored in {@link state}.
   */
  get resumed(): boolean {
    return sessionSlots(this).resumed;
  }

  /**
   * What the app stored for this user with {@link setState}, kept by the
   * intermediary across app restarts. Updated locally at once by
   * `setState`; a frozen snapshot.
   */
  get state(): Readonly<JsonObject> {
    return sessionSlots(this).state;
  }

  /** `false` once the user is gone (after the `disconnect` event) or the client closed. */
  get connected(): boolean {
    return sessionSlots(this).connected;
  }

  /**
   * For telnet users: what their client negotiated (window size, terminal
   * types, GMCP, echo, …), kept current by `telnet` events. Undefined for
   * other transports.
   */
  get telnet(): Readonly<TelnetInfo> | undefined {
    return sessionSlots(this).telnet;
  }

  /**
   * Telnet: hides (`false`) or shows (`true`) what this user types, e.g.
   * around a password prompt. Does nothing for other transports.
   *
   * @param visible - whether the user's typing is shown
   * @returns the message's txn id
   * @throws ImiError as {@link Client.setEcho}
   */
  setEcho(visible: boolean): string {
    return this.#client.setEcho(this.id, visible);
  }

  /**
   * Telnet with GMCP or MSDP: sends this user's MUD client a GMCP message
   * (as the MSDP variable `packageName` to a client with MSDP and no GMCP).
   *
   * @param packageName - e.g. `"Char.Vitals"`, or an MSDP variable such as `"HEALTH"`
   * @param value - the payload, sent as JSON (as MSDP: text, arrays, tables); none when undefined
   * @param protocol - `"gmcp"` or `"msdp"` only; default: GMCP when on, else MSDP
   * @returns the message's txn id
   * @throws ImiError as {@link Client.sendGmcp}
   */
  sendGmcp(packageName: string, value?: JsonValue, protocol?: 'gmcp' | 'msdp'): string {
    return this.#client.sendGmcp(this.id, packageName, value, protocol === undefined ? undefined : { protocol });
  }

  /**
   * Sends text to this user, verbatim (add your own `\r\n`).
   *
   * @param text - what to write
   * @param options - ordering (`after`), state `updates` carried with it, and `prompt`
   * @returns the message's txn id, for another message's `after`
   * @throws ImiError `IMI_LINK_DOWN`, `IMI_LIMIT` or `IMI_CLOSED`; see {@link Client.send}
   */
  send(text: string, options?: OutputOptions): string {
    return this.#client.send(this.id, text, options);
  }

  /**
   * Sends a prompt (`HP 10> `, `Password: `): the text, marked so that a
   * telnet user's MUD client shows it at once without a line end
   * (`IAC EOR` or `IAC GA` after it; see {@link OutputOptions.prompt}).
   * The same as `send(text, { ...options, prompt: true })`.
   *
   * @param text - the prompt, usually without a line end
   * @param options - ordering (`after`) and state `updates` carried with it
   * @returns the message's txn id
   * @throws ImiError as {@link send}
   */
  prompt(text: string, options?: SendOptions): string {
    return this.#client.send(this.id, text, { ...options, prompt: true });
  }

  /**
   * Stores `updates` in this user's state on the intermediary (a key set to
   * `null` is deleted). The state outlives app restarts: it comes back in
   * {@link state} of the resumed session.
   *
   * @param updates - keys to set or (with `null`) delete
   * @param options - ordering (`after`)
   * @returns the message's txn id
   * @throws ImiError `IMI_LINK_DOWN`, `IMI_LIMIT` or `IMI_CLOSED`; see {@link Client.send}
   */
  setState(updates: JsonObject, options?: Omit<SendOptions, 'updates'>): string {
    return this.#client.setState(this.id, updates, options);
  }

  /**
   * Closes this user's connection once what was sent before is written.
   *
   * @param farewell - a last text written before closing
   * @param options - ordering (`after`) and state `updates` carried with it
   * @returns the message's txn id
   * @throws ImiError `IMI_LINK_DOWN`, `IMI_LIMIT` or `IMI_CLOSED`; see {@link Client.send}
   */
  disconnect(farewell?: string, options?: SendOptions): string {
    return this.#client.disconnect(this.id, farewell, options);
  }

  /** A plain summary, so logging a session does not dump the client. */
  toJSON(): SessionSnapshot {
    return {
      id: this.id,
      transport: this.transport,
      remote: { ...this.remote },
      connectedAt: this.connectedAt,
      resumed: this.resumed,
      connected: this.connected,
      state: { ...this.state },
      ...(this.telnet === undefined ? {} : { telnet: structuredClone(this.telnet) as TelnetInfo }),
    };
  }
}
