/**
 * The options of the client's sending methods, apart from the client so
 * that {@link Session} can take them without importing the client.
 *
 * @module
 */
import type { JsonObject } from '@imi/core';

/** Options of {@link Client.send} and the other sending methods. */
export interface SendOptions {
  /**
   * Txn ids (returned by earlier sends) that the intermediary must have
   * processed before this message: sent as `dep_txns`. The intermediary
   * holds the message (bounded in count and age) until then.
   */
  after?: string | Iterable<string>;
  /** State updates for the message's user, stored together with it (see {@link Session.setState}). */
  updates?: JsonObject;
}

/** Options of {@link Client.send}, {@link Client.multisend} and {@link Session.send}: {@link SendOptions} and `prompt`. */
export interface OutputOptions extends SendOptions {
  /**
   * The text is a prompt (sent as `prompt: true`): telnet users' clients
   * are told where it ends (`IAC EOR` when they agreed to EOR, else
   * `IAC GA` unless suppress-go-ahead is on), so MUD clients that wait for
   * that show it at once. Other users just get the text. Default false.
   * See {@link Session.prompt}.
   */
  prompt?: boolean;
}

/** Options of {@link Client.broadcast}. */
export interface BroadcastOptions {
  /** Txn ids that must be processed first (`dep_txns`). */
  after?: string | Iterable<string>;
  /** Session ids that do not get the text. */
  except?: string | Iterable<string>;
}
