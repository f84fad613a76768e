/**
 * What the intermediary shows its upgrade code: the listening sockets a
 * successor inherits, the gate that holds back connections arriving while a
 * handover is under way, and the parts a handover reads and sets. Kept apart
 * from `intermediary.ts` so the handover files can import the
 * {@link Intermediary} class without an import circle.
 *
 * @module
 */
import type { Server, Socket } from 'node:net';
import type { AppSide } from '../app/app-side.js';
import type { InputLedger } from '../delivery/ledger.js';
import type { AdminServer } from '../ops/admin.js';
import type { Reporter } from '../ops/reporter.js';
import type { Transport, UserChannel } from '../users/transport.js';
import type { UserSide } from '../users/user-side.js';

/**
 * Listening sockets inherited from the process this one succeeds, as file
 * descriptors: one per user listener (in the order of `listen()`: the
 * `externalPort` one first), the app port's, and the admin port's.
 */
export interface InheritedListeners {
  /** One per user listener, in order. */
  users: number[];
  /** The app port. */
  app: number;
  /** The admin port, when the admin API is on. */
  admin?: number;
}

/**
 * While a handover is being prepared, new connections are not let in: users
 * are held (and passed to the successor, or let in after all if the upgrade
 * fails) and apps are turned away (they reconnect).
 */
export interface HandoverGate {
  /** A new user from the user listener at `listener` (its index in `listen()` order). */
  userArrived(channel: UserChannel, listener: number): void;
  /** A new app connection. */
  appArrived(socket: Socket): void;
}

/** The internals a handover reads (old process) and sets (successor). */
export interface HandoverParts {
  users: UserSide;
  apps: AppSide;
  ledger: InputLedger;
  reporter: Reporter;
  /** The user listeners, in `listen()` order (empty before `listen()`). */
  transports: readonly Transport[];
  appServer: Server | undefined;
  admin: AdminServer | undefined;
}
