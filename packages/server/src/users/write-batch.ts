/**
 * Write batches: the writes to users caused by one chunk of app frames
 * leave when the chunk is done, with no `process.nextTick` per user.
 *
 * A connection corks its socket at its first write of a tick, so that
 * every write to the user in that tick leaves in one packet, and must
 * uncork once they are done. Outside a batch that is a `process.nextTick`
 * per user written to; while the app link decodes a chunk (one `output`
 * frame each for hundreds of users under load), the corked connections are
 * listed instead and uncorked together when the chunk has been handled.
 *
 * @module
 */

/** What a batch uncorks. */
export interface Uncorkable {
  /** Ends the cork: what was written leaves. */
  uncorkNow(): void;
}

/** The connections corked in the open batch; undefined while none is open. */
let open: Uncorkable[] | undefined;

/** Uncorks a connection on the next tick (no batch open). */
function uncorkLater(connection: Uncorkable): void {
  connection.uncorkNow();
}

/**
 * Arranges for a connection that just corked to be uncorked: at the end of
 * the open batch, else on the next tick.
 */
export function uncorkSoon(connection: Uncorkable): void {
  if (open !== undefined) open.push(connection);
  else process.nextTick(uncorkLater, connection);
}

/**
 * Runs `work` inside a batch: connections that cork meanwhile are uncorked
 * when it returns (or throws), in the order they corked. A batch inside a
 * batch joins the outer one.
 */
export function inWriteBatch<A>(work: (arg: A) => void, arg: A): void {
  if (open !== undefined) {
    work(arg);
    return;
  }
  const batch: Uncorkable[] = [];
  open = batch;
  try {
    work(arg);
  } finally {
    // Closed before uncorking: what an uncork causes (a slow reader's close) corks on its own.
    open = undefined;
    for (let i = 0; i < batch.length; i++) batch[i]!.uncorkNow();
  }
}
