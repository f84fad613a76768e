/**
 * A WebSocket user's `ws` object on a socket handed over by another
 * process, made without loading `ws` at start.
 *
 * @module
 */
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type * as Ws from 'ws';
import type { WebSocket } from 'ws';

/** `ws`, once loaded (see {@link webSocketOnSocket}); a successor restores thousands of sessions through it. */
let wsModule: typeof Ws | undefined;

/**
 * A server-side WebSocket on a socket whose handshake was done by another
 * process (an upgrade passed the socket): what `WebSocketServer` does after
 * the handshake, with the same options the listeners use (no
 * per-message deflate: nothing is kept between messages).
 */
export function webSocketOnSocket(socket: Duplex, protocol: string, maxPayload: number): WebSocket {
  // Loaded here, not at start: the snapshot code that calls this is on every
  // process's path, `ws` only on a WebSocket user's, and every start (an
  // upgrade's successor, a supervised worker's restart) pays for what it
  // loads. The listeners load it themselves.
  wsModule ??= createRequire(import.meta.url)('ws') as typeof Ws;
  const { WebSocket, WebSocketServer } = wsModule;
  // The server's own defaults (autoPong, maxBufferedChunks, …), as handleUpgrade would pass them.
  const options = { ...new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload }).options };
  const ws = new WebSocket(null as unknown as string, undefined, options);
  (ws as unknown as { _protocol: string })._protocol = protocol;
  (ws as unknown as { setSocket(socket: Duplex, head: Buffer, options: object): void }).setSocket(socket, Buffer.alloc(0), options);
  return ws;
}

