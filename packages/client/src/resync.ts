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

  /**
   * The link opened: unless `synced` comes (or an imi-style `connect` shows
   * it will), the resync ends `legacySyncWaitMs` after the last message.
   */
  armLegacyWait(link: Link): void {
    const waitMs = this.state.options.legacySyncWaitMs;
    if (waitMs === 0) return;
    link.syncTimer = setTimeout(() => this.onLegacyWaitOver(link), waitMs).unref();
  }

  /** A message arrived while the legacy wait runs (only then: not on the hot path). */
  noteResyncMessage(link: Link, imiConnect: boolean): void {
    if (imiConnect || link.state !== 'resyncing') {
      clearTimeout(link.syncTimer);
      link.syncTimer = undefined;
    } else {
      link.syncTimer?.refresh();
    }
  }

  private onLegacyWaitOver(link: Link): void {
    link.syncTimer = undefined;
    if (this.state.link !== link || link.state !== 'resyncing') return;
    // The original Perl intermediary announced everyone in one batch and
    // says no more: who it announced is who is online.
    this.finish(link, link.announced.size);
  }

  /**
   * `synced` from the intermediary (or the legacy wait ran out): `count` users are online.
   *
   * @param knownKept - the intermediary honoured this link's `hello.known`: the users listed there and not told gone are still online
   */
  finish(link: Link, count: number, knownKept = false): void {
    const state = this.state;
    if (link.state !== 'resyncing') return;
    clearTimeout(link.syncTimer);
    link.syncTimer = undefined;
    // Users this process knew but the resync did not list left while the
    // link was down (or the intermediary restarted). They leave `sessions`
    // now, so it matches the intermediary; their `disconnect` event runs
    // after what is queued for them (a departure the intermediary reported
    // with its real reason comes first, and then this one finds nothing).
    const goneIds = new Set<string>();
    const kept = knownKept ? link.knownSent : undefined;
    for (const [id, session] of state.sessions) {
      if (link.announced.has(id) || kept?.has(id) === true) continue;
      goneIds.add(id);
      state.sessions.delete(id);
      state.leaving.set(id, session);
      sessionSlots(session).connected = false;
    }
    const announcedNew = link.announcedNew;
    link.announced = new Set();
    link.announcedNew = new Set();
    link.knownSent = undefined;
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
