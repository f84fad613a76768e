/**
 * What the app side needs of the users side: who is connected, by id, and a
 * way to write to all of them. The users side implements it; the app side
 * never imports it.
 *
 * @module
 */
import type { Connection } from '../users/connection.js';

/** The live users, as the app side sees them. */
export interface UserDirectory {
  /** Admitted users, in the order they were let in. */
  live(): IterableIterator<Connection>;
  /** An admitted user by id. */
  get(id: string): Connection | undefined;
  /**
   * Writes text to every admitted user but those in `except`.
   *
   * @returns how many users it was written to
   */
  broadcast(text: string, except?: ReadonlySet<string>): number;
  /** The app sent this user `output` (a half-closed user waits for it). */
  replied(connection: Connection): void;
  /** The app acked input (a half-closed user may have all theirs acked now). */
  inputAcked(): void;
}
