/**
 * What the users side needs of the app side: is an app ready, and how the
 * app hears of users and their input. The app side implements it; the users
 * side never imports it.
 *
 * @module
 */
import type { InputEntry } from '../delivery/ledger.js';
import type { Connection } from './connection.js';

/** The app, as the users side sees it. */
export interface AppPort {
  /** The connection id of the app that is connected and synced; 0 while there is none. */
  readonly readyApp: number;
  /** Whether that app acks (its acks, not its output, say when input is answered). */
  readonly readyAppAcks: boolean;
  /** Tells the ready app about a user just let in (`connect`, `resumed: false`). */
  announce(connection: Connection): void;
  /** Sends a line to the ready app (tracked for its ack when the app acks). */
  deliver(entry: InputEntry): void;
  /** Sends the ready app a message that has no `seq` (`telnet`, `gmcp`). */
  notify(param: 'telnet' | 'gmcp', data: object): void;
  /** A user the app may know left: the app is told now, or, if it reconnects, then. */
  userLeft(connection: Connection, reason: string): void;
}
