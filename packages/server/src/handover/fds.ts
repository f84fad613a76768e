/**
 * Sockets as file descriptors: what an upgrade passes to the successor, and
 * how reading is stopped in the kernel (not only in the stream) so bytes not
 * read yet stay in the socket for whichever process reads next.
 *
 * Node has no public API for a socket's descriptor or for stopping the
 * kernel read of a stream that still has a `data` listener, so this reads
 * `_handle` (a libuv stream: `fd`, `readStart`, `readStop`, and the `reading`
 * flag `net` keeps next to them). Everything that does lives in this file.
 *
 * @module
 */
import net, { type Server, type Socket } from 'node:net';

/** The part of a libuv stream handle used here. */
interface RawHandle {
  fd?: number;
  reading?: boolean;
  readStart?(): number;
  readStop?(): number;
}

function handleOf(target: Socket | Server): RawHandle | undefined {
  return (target as unknown as { _handle?: RawHandle | null })._handle ?? undefined;
}

/**
 * The libuv handle under a plain TCP socket or a listening server, to send
 * over IPC as a bare handle (`process.send(message, handle)`): the receiver
 * gets a duplicate descriptor it neither reads nor accepts on, and the
 * sender keeps its own (what `--supervise` needs: a copy that waits).
 */
export function rawHandle(target: Socket | Server): object | undefined {
  return fdOf(target) === undefined ? undefined : (handleOf(target) as object);
}

/** The descriptor under a plain TCP socket or a listening server; undefined for a TLS socket (its state is in this process) or a closed one. */
export function fdOf(target: Socket | Server): number | undefined {
  const fd = handleOf(target)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Stops reading a socket at the kernel: what the peer sends from now on
 * waits in the socket. Bytes the stream had buffered (a paused socket) are
 * read out first — to its `data` listeners if it has any — and returned.
 */
export function stopReading(socket: Socket): Buffer {
  const chunks: Buffer[] = [];
  if (socket.readableLength > 0) {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) chunks.push(chunk);
  }
  const handle = handleOf(socket);
  if (handle?.readStop !== undefined && !socket.destroyed) {
    handle.reading = false;
    handle.readStop();
  }
  return Buffer.concat(chunks);
}

/** Undoes {@link stopReading}: reads again, unless the stream itself is paused (then its `resume()` will). */
export function resumeReading(socket: Socket): void {
  const handle = handleOf(socket);
  if (handle?.readStart === undefined || handle.reading === true || socket.destroyed || socket.isPaused()) return;
  handle.reading = true;
  handle.readStart();
}

/**
 * A socket on a descriptor inherited from the predecessor, not reading yet:
 * nothing is taken from the kernel until `resume()`, so a successor that is
 * killed before it takes over has consumed nothing.
 */
export function adoptSocket(fd: number): Socket {
  // pauseOnCreate is what net.Server's pauseOnConnect uses: the handle is created stopped.
  return new net.Socket({ fd, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts);
}
