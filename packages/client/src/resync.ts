/**
 * The end of a resync: after `synced` the app's view of who is online is
 * the intermediary's. Users this process knew but the resync did not list
 * leave, frames kept while the link was down go out, and once the `connect`
 * handlers of the users announced anew have run, `synced` and `linkUp` are
 * emitted and the first `connect()` resolves.
 *
 * @module
 */
import type { Dispatcher } from './dispatch.js';
import type { Outbox } from './outbox.js';
import { sessionSlots } from './session.js';
import type { ClientState } from './state.js';
import type { Link } from './types.js';

/** Finishes resyncs. */
export class Resync {
  /**
   * @param state - what the parts share
   * @param outbox - holds the frames kept while the link was down
   * @param dispatcher - runs the departures, and knows whose handlers still run
   * @param onUp - the link is up (the reconnect schedule starts again from its first attempt)
   */
  constructor(
    private readonly state: ClientState,
    private readonly outbox: Outbox,
    private readonly dispatcher: Dispatcher,
    private readonly onUp: () => void,
  ) {}

  /** `synced` from the intermediary: `count` users were announced. */
  finish(link: Link, count: number): void {
    const state = this.state;
    if (link.state !== 'resyncing') return;
    // Users this process knew but the resync did not list left while the
    // link was down (or the intermediary restarted). They leave `sessions`
    // now, so it matches the intermediary; their `disconnect` event runs
    // after what is queued for them (a departure the intermediary reported
    // with its real reason comes first, and then this one finds nothing).
    const goneIds = new Set<string>();
    for (const [id, session] of state.sessions) {
      if (link.announced.has(id)) continue;
      goneIds.add(id);
      state.sessions.delete(id);
      state.leaving.set(id, session);
      sessionSlots(session).connected = false;
    }
    const announcedNew = link.announcedNew;
    link.announced = new Set();
    link.announcedNew = new Set();
    for (const id of goneIds) this.dispatcher.enqueueGone(id);

    link.state = 'up';
    state.status = 'up';
    this.onUp();
    this.outbox.sendPending(goneIds);

    const waits: Promise<void>[] = [];
    for (const id of announcedNew) {
      const tail = this.dispatcher.userTail(id);
      if (tail !== undefined) waits.push(tail);
    }
    void Promise.all(waits).then(() =>
      state.batchStore.exit(() => {
        if (state.link !== link) return;
        link.announcedUp = true;
        state.emitSafely('synced', [count]);
        state.emitSafely('linkUp', []);
        state.connectDeferred?.resolve();
      }),
    );
  }
}
